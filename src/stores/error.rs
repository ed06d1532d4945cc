//! Why a store could not be installed, started or stopped.

/// Why a store could not be used (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A program the store needs is not installed.
    #[error("`{program}` not found ({what}); {fix}")]
    Missing {
        /// The program.
        program: String,
        /// What needs it.
        what: String,
        /// How to get it: `install it with: apt-get install -y ...`.
        fix: String,
    },
    /// The store did not come up.
    #[error("the store did not come up: {0}")]
    Down(String),
    /// The lab failed (a server could not be spawned or recorded).
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// Remote hosts failed (starting the store over SSH).
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// A file of the store's (a config, a data directory).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// An I/O error's mapper, naming what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Io { context, source }
    }
}

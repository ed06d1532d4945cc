//! A store's client with the rules every store shares.

use std::time::Duration;

use tokio::time::Instant;

use super::{Client, ClientError, Completion, Operation};

/// A client as a worker (or the final reads) uses it: operations with a
/// timeout, and after a transport error the shared rules of
/// [`Client::shared_error_rules`].
pub struct Session {
    client: Box<dyn Client>,
}

impl Session {
    /// Wraps a store's client.
    pub fn new(client: Box<dyn Client>) -> Session {
        Session { client }
    }

    /// Makes sure the client can send within `timeout`. An error means
    /// nothing was sent.
    pub async fn ready(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.client.ready(Instant::now() + timeout).await
    }

    /// Drops every connection.
    pub fn reset(&mut self) {
        self.client.reset();
    }

    /// The node that an operation `f` goes to.
    pub fn target(&self, f: &str) -> String {
        self.client.target(f)
    }

    /// Performs `op` within `timeout`. Errors: definite (`fail`) or
    /// indefinite (`info`); for most stores a read that got no answer is
    /// definite, since a read has no effect.
    pub async fn call(
        &mut self,
        op: Operation<'_>,
        timeout: Duration,
    ) -> Result<Completion, ClientError> {
        let r = self.client.call(op, Instant::now() + timeout).await;
        if !self.client.shared_error_rules() {
            return r;
        }
        match r {
            Err(ClientError::Indefinite(e)) if op.f == "read" => {
                self.client.reset();
                Err(ClientError::Definite(e))
            }
            Err(e) => {
                self.client.reset();
                Err(e)
            }
            ok => ok,
        }
    }
}

//! `--db-opt KEY=VALUE`s, taken one by one into a store's typed options.
//! Every option must be taken: one left over is an error naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// An option whose value is one of a few words (an enum). Implement it for
/// the enum, listing each word once, in the order error messages name them.
pub trait Choice: Copy + Sized + 'static {
    /// Every value and its word.
    const CHOICES: &'static [(&'static str, Self)];

    /// The value of `word`, if it is one.
    fn from_word(word: &str) -> Option<Self> {
        Self::CHOICES
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, c)| *c)
    }

    /// The word of this value.
    fn word(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::CHOICES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(w, _)| w)
    }
}

/// Serializes a [`Choice`] as its word (for `results.json`).
pub fn serialize_word<S: serde::Serializer, T: Choice + PartialEq>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.word())
}

/// The `--db-opt`s of one `--db`, not yet taken.
#[derive(Debug)]
pub struct DbOpts {
    db: String,
    opts: BTreeMap<String, String>,
}

impl DbOpts {
    /// The options given for `--db db`.
    pub fn new(db: &str, opts: BTreeMap<String, String>) -> DbOpts {
        DbOpts {
            db: db.to_string(),
            opts,
        }
    }

    /// Whether `key` was given (and not taken yet).
    pub fn has(&self, key: &str) -> bool {
        self.opts.contains_key(key)
    }

    /// Takes `key` as it was given.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.opts.remove(key)
    }

    /// Takes `key` as a non-blank text.
    pub fn take_text(&mut self, key: &str) -> Option<String> {
        self.take(key).filter(|v| !v.trim().is_empty())
    }

    /// Takes `key` as a directory path.
    pub fn take_path(&mut self, key: &str) -> Option<PathBuf> {
        self.take(key).map(PathBuf::from)
    }

    /// Takes `key` as one of `T`'s words (`default` when absent); another
    /// word is an error listing the words: `expected a or b`.
    pub fn take_choice<T: Choice>(&mut self, key: &str, default: T) -> Result<T, String> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => T::from_word(&v).ok_or_else(|| {
                let words: Vec<&str> = T::CHOICES.iter().map(|(w, _)| *w).collect();
                format!("--db-opt {key}={v}: expected {}", words.join(" or "))
            }),
        }
    }

    /// Takes `key` as a yes/no flag (`true|on|yes`, `false|off|no`).
    pub fn take_flag(&mut self, key: &str, default: bool) -> Result<bool, String> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("true" | "on" | "yes") => Ok(true),
            Some("false" | "off" | "no") => Ok(false),
            Some(v) => Err(format!("--db-opt {key}={v}: expected true or false")),
        }
    }

    /// Takes `key` as a comma-separated list (blank items dropped).
    pub fn take_list(&mut self, key: &str) -> Vec<String> {
        self.take(key)
            .map(|p| {
                p.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first option not taken, if any.
    pub fn left(&self) -> Option<&str> {
        self.opts.keys().next().map(String::as_str)
    }

    /// An error if an option was not taken, naming it and the store's
    /// `known` options.
    pub fn finish(self, known: &str) -> Result<(), String> {
        match self.left() {
            Some(k) => Err(format!(
                "--db-opt {k}: --db {} has no such option ({known})",
                self.db
            )),
            None => Ok(()),
        }
    }
}

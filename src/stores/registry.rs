//! Every store `--db` can name: one line per store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DbOpts, Store, builtin, etcd, external, galera, nats, postgres, redis, zookeeper};

/// The stores, in the order `faultline doctor` and error messages list them.
pub const STORES: &[Entry] = &[
    builtin::ENTRY,
    etcd::ENTRY,
    redis::ENTRY,
    postgres::ENTRY,
    nats::ENTRY,
    zookeeper::ENTRY,
    galera::ENTRY,
    external::ENTRY,
];

/// A store's registry entry.
pub struct Entry {
    /// The `--db` name.
    pub name: &'static str,
    /// Takes the store's options (every one, or an error naming the one
    /// it does not know) and gives the store.
    pub parse: fn(DbOpts) -> Result<Arc<dyn Store>, String>,
    /// The programs `faultline doctor` looks for.
    pub doctor: &'static [Requirement],
}

/// A program a store uses, as `faultline doctor` reports it.
pub struct Requirement {
    /// What `doctor` calls it, e.g. `etcd (--db etcd)`.
    pub what: &'static str,
    /// The program.
    pub program: &'static str,
    /// The command that installs it.
    pub install: &'static str,
    /// A directory to look in when it is not on the usual paths.
    pub also_in: Option<fn() -> Option<PathBuf>>,
}

impl Requirement {
    /// Where the program is, if installed.
    pub fn find(&self) -> Option<PathBuf> {
        crate::lab::sys::find_tool(self.program)
            .or_else(|| Some(self.also_in?()?.join(self.program)))
    }
}

/// The store `--db db` names, with its `--db-opt`s taken.
pub fn parse(db: &str, opts: BTreeMap<String, String>) -> Result<Arc<dyn Store>, String> {
    match STORES.iter().find(|e| e.name == db) {
        Some(e) => (e.parse)(DbOpts::new(db, opts)),
        None => {
            let names: Vec<&str> = STORES.iter().map(|e| e.name).collect();
            Err(format!(
                "--db {db}: unknown store (available: {})",
                names.join(", ")
            ))
        }
    }
}

/// For the stores' unit tests: `--db db` with `--db-opt`s given as pairs.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::stores::Store;

    /// The store `--db db --db-opt K=V ...` names, through [`super::parse`].
    pub(crate) fn store(db: &str, opts: &[(&str, &str)]) -> Result<Arc<dyn Store>, String> {
        let opts = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        super::parse(db, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use super::testing::store;

    fn recorded(s: &Arc<dyn Store>) -> serde_json::Value {
        #[derive(serde::Serialize)]
        struct Config<'a> {
            #[serde(serialize_with = "crate::stores::serialize")]
            db: &'a Arc<dyn Store>,
        }
        serde_json::to_value(Config { db: s }).expect("serializes")["db"].take()
    }

    #[test]
    fn options_are_recorded_as_before() {
        let cases = [
            (
                store("builtin", &[("mode", "quorum"), ("r", "1"), ("w", "all")]),
                json!({"db": "builtin", "mode": "quorum", "r": "1", "w": "all"}),
                "builtin-quorum",
            ),
            (
                store("etcd", &[("reads", "serializable")]),
                json!({"db": "etcd", "reads": "serializable", "bindir": null}),
                "etcd-serializable",
            ),
            (
                store("redis", &[("failover", "sentinel"), ("wait", "2")]),
                json!({"db": "redis", "failover": "sentinel", "reads": "primary", "wait": 2, "bindir": null}),
                "redis-sentinel-primary",
            ),
            (
                store("builtin", &[("mode", "quorum"), ("timestamps", "wall")]),
                json!({"db": "builtin", "mode": "quorum", "r": "quorum", "w": "quorum", "timestamps": "wall"}),
                "builtin-quorum-wall",
            ),
            (
                store("postgres", &[("reads", "standby"), ("sync", "apply")]),
                json!({"db": "postgres", "reads": "standby", "sync": "apply", "bindir": null, "isolation": "serializable"}),
                "postgres-standby",
            ),
            (
                store(
                    "external",
                    &[("command", "python3 a.py"), ("server", "builtin")],
                ),
                json!({"db": "external", "command": "python3 a.py", "server": "builtin", "mode": "primary", "handshake": true, "primaries": []}),
                "external",
            ),
        ];
        for (s, want, label) in cases {
            let s = s.expect("parses");
            assert_eq!(recorded(&s), want);
            assert_eq!(s.label(), label);
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: [Case; 10] = [
            (
                "mongo",
                &[],
                "--db mongo: unknown store (available: builtin, etcd, redis, postgres, nats, zookeeper, galera, external)",
            ),
            (
                "builtin",
                &[("mode", "raft")],
                "--db-opt mode=raft: expected primary, async or quorum",
            ),
            (
                "builtin",
                &[("mode", "quorum"), ("r", "0")],
                "--db-opt r=0: expected a number >= 1, one, quorum or all",
            ),
            (
                "builtin",
                &[("r", "1")],
                "--db-opt r: only means something with mode=quorum (this run has mode=primary)",
            ),
            (
                "builtin",
                &[("timestamps", "wall")],
                "--db-opt timestamps: only means something with mode=quorum (this run has mode=primary)",
            ),
            (
                "builtin",
                &[("mode", "quorum"), ("timestamps", "hlc")],
                "--db-opt timestamps=hlc: expected lamport or wall",
            ),
            (
                "etcd",
                &[("reads", "sometimes")],
                "--db-opt reads=sometimes: expected linearizable or serializable",
            ),
            (
                "redis",
                &[("wait", "9")],
                "--db-opt wait=9: expected a number of replicas, 0 to 8",
            ),
            (
                "postgres",
                &[("colour", "red")],
                "--db-opt colour: --db postgres has no such option (reads, sync, bindir, isolation)",
            ),
            (
                "external",
                &[],
                "--db external: needs --db-opt command=\"PROGRAM ARGS\" (the adapter)",
            ),
        ];
        for (db, opts, want) in cases {
            assert_eq!(store(db, opts).expect_err(want), want);
        }
    }
}

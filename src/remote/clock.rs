//! Clock faults on remote hosts, as in the lab ([`crate::lab::fake_clock`],
//! [`crate::nemesis::clock`]): the servers faultline starts on a host run
//! with libfaketime preloaded ([`Remote::clock_env`]), reading their wall
//! clock from `<node dir>/faketime.rc` on the host, which a clock fault
//! rewrites over SSH (a temporary file renamed over it, with
//! [`Host::write_file`]). Before any server starts, the host's own binaries
//! are checked for libfaketime ([`check_program`]: their ELF imports, read
//! over SSH), the host's libfaketime is found (or given), and the run's
//! shared objects are made in the host's `/dev/shm` (so a SIGKILLed server
//! leaks none); `faultline clean --hosts` removes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

use super::cluster::Remote;
use super::host::Host;
use super::{RemoteError, Result, sh_quote};
use crate::lab::fake_clock::{
    self, FakeClock, LIBRARY_PLACES, TIMESTAMP_FILE, offset_text, shared_name,
};
use crate::nemesis::clock::{ClockMode, validate};

/// The faked clocks of a run's hosts.
#[derive(Debug, Default)]
pub struct Clocks {
    /// Per node: the host's libfaketime (set once prepared).
    libraries: BTreeMap<String, String>,
    /// Per node: the offset its timestamp file holds, in ms.
    offsets: BTreeMap<String, i64>,
    /// A strobe in progress: its stop flag and task.
    strobe: Option<(Arc<AtomicBool>, tokio::task::JoinHandle<Result<()>>)>,
}

/// The script that finds libfaketime on a host (the path given on its
/// stdin, else Debian's and `make install`'s places) and makes the run's
/// shared objects: a 4096-byte shared memory object and a POSIX named
/// semaphore with the count 1 (glibc's `sem_t` is 32 bytes, the count in
/// its first word), both readable by every user, as the lab's
/// `FakeClock::prepare` makes them with `shm_open` and `sem_open`.
fn prepare_script(shared: &str) -> String {
    let places: Vec<String> = LIBRARY_PLACES.iter().map(|p| sh_quote(p)).collect();
    let name = &shared[1..];
    format!(
        "read -r given\n\
         if [ -n \"$given\" ]; then lib=$given; [ -f \"$lib\" ] || {{ echo \"libfaketime: no file $lib on the host (--db-opt libfaketime)\" >&2; exit 2; }}\n\
         else lib=; for p in {places}; do [ -f \"$p\" ] && {{ lib=$p; break; }}; done\n\
           [ -n \"$lib\" ] || {{ echo \"clock faults need libfaketime on the host (looked for libfaketimeMT.so.1 in {list}; or give --db-opt libfaketime=PATH); install it with: {install}\" >&2; exit 2; }}\n\
         fi\n\
         shm=/dev/shm/{name}; sem=/dev/shm/sem.{name}\n\
         [ -f \"$shm\" ] || {{ head -c 4096 /dev/zero > \"$shm\" && chmod 666 \"$shm\"; }} || exit 1\n\
         [ -f \"$sem\" ] || {{ {{ printf '\\001'; head -c 31 /dev/zero; }} > \"$sem\" && chmod 666 \"$sem\"; }} || exit 1\n\
         echo \"$lib\"\n",
        places = places.join(" "),
        list = LIBRARY_PLACES.join(", "),
        install = fake_clock::INSTALL,
    )
}

/// The script that removes a run's shared objects from a host, printing
/// what it removed.
pub fn remove_script(shared: &str) -> String {
    let name = &shared[1..];
    format!(
        "for f in /dev/shm/{name} /dev/shm/sem.{name}; do [ -e \"$f\" ] && rm -f \"$f\" && echo \"$f\"; done; true\n"
    )
}

/// Why libfaketime cannot fake the clock of `program` on `host` (see
/// [`fake_clock::check_elf`]), read over SSH: only its ELF header, section
/// table and dynamic sections. Scripts (`#!`) pass: what they run is
/// checked on its own.
pub async fn check_program(host: &Host, program: &str) -> std::result::Result<(), String> {
    let on = |e: String| format!("{e} (on {})", host.spec.destination);
    let head = host
        .read_bytes(program, 0, 2)
        .await
        .map_err(|e| on(e.to_string()))?;
    if head == b"#!" {
        return Ok(());
    }
    let handle = tokio::runtime::Handle::current();
    let r = tokio::task::block_in_place(|| {
        fake_clock::check_elf(program, &mut |offset, len| {
            handle
                .block_on(host.read_bytes(program, offset, len))
                .map_err(|e| e.to_string())
        })
    });
    r.map_err(on)
}

impl Remote {
    fn lock_clocks(&self) -> std::sync::MutexGuard<'_, Clocks> {
        self.clocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name of this run's libfaketime shared objects on the hosts.
    fn shared(&self) -> String {
        shared_name(&self.state().id)
    }

    /// Before servers start with faked clocks (their programs checked
    /// with [`check_program`]): finds libfaketime on every host (`library`,
    /// or the usual places), and makes the run's shared objects there
    /// (recorded first).
    pub async fn prepare_clocks(&self, library: Option<&str>) -> Result<()> {
        let names = self.names();
        self.touch(&names, |t| t.clock = true)?;
        let script = prepare_script(&self.shared());
        let input = format!("{}\n", library.unwrap_or(""));
        let found = join_all(
            self.hosts
                .iter()
                .map(|h| h.run_with_input("preparing libfaketime", &script, input.as_bytes())),
        )
        .await;
        let mut c = self.lock_clocks();
        for (h, lib) in self.hosts.iter().zip(found) {
            let lib = lib?.trim().to_string();
            c.libraries.insert(h.spec.name.clone(), lib);
        }
        Ok(())
    }

    /// The timestamp file of `node`'s servers on its host.
    fn clock_file(&self, node: &str) -> String {
        format!("{}/{TIMESTAMP_FILE}", self.node_dir(node))
    }

    /// The environment of a server on `node` whose clock clock faults move
    /// (its timestamp file written at offset 0 first); an error if
    /// [`Remote::prepare_clocks`] did not run.
    pub async fn clock_env(&self, node: &str) -> Result<Vec<(String, String)>> {
        let lib = self.lock_clocks().libraries.get(node).cloned();
        let Some(library) = lib else {
            return Err(RemoteError::Fault(format!(
                "{node}: libfaketime was not prepared on the host"
            )));
        };
        let file = self.clock_file(node);
        self.create_dir(node, &self.node_dir(node)).await?;
        self.set_offset(node, 0).await?;
        let id = self.state().id;
        Ok(FakeClock {
            library: library.into(),
        }
        .env(&id, std::path::Path::new(&file)))
    }

    /// Sets `node`'s faked clock to the real time plus `ms`.
    async fn set_offset(&self, node: &str, ms: i64) -> Result<()> {
        let h = self.host(node)?;
        h.write_file(&self.clock_file(node), offset_text(ms).as_bytes())
            .await?;
        self.lock_clocks().offsets.insert(node.to_string(), ms);
        Ok(())
    }

    fn faked(&self, nodes: &[String]) -> Result<()> {
        let c = self.lock_clocks();
        match nodes.iter().find(|n| !c.offsets.contains_key(*n)) {
            Some(n) => Err(RemoteError::Fault(format!(
                "node {n} has no faked clock: faultline starts the servers with libfaketime only when the run has clock faults and it starts the store"
            ))),
            None => Ok(()),
        }
    }

    /// A clock fault on `nodes`: bump (from the offset each has), skew, or
    /// a strobe (a task flipping the offsets until [`Remote::clock_reset`];
    /// each flip is one SSH write, so flips come at most once per round
    /// trip).
    pub async fn clock_fault(
        &self,
        nodes: &[String],
        mode: ClockMode,
        ms: i64,
        period_ms: u64,
    ) -> Result<()> {
        validate(mode, ms, period_ms).map_err(|e| RemoteError::Fault(e.to_string()))?;
        self.faked(nodes)?;
        match mode {
            ClockMode::Bump => {
                for n in nodes {
                    let from = self.lock_clocks().offsets.get(n).copied().unwrap_or(0);
                    self.set_offset(n, from.saturating_add(ms)).await?;
                }
                Ok(())
            }
            ClockMode::Skew => {
                first_err(join_all(nodes.iter().map(|n| self.set_offset(n, ms))).await)
            }
            ClockMode::Strobe => {
                self.stop_strobe().await?;
                let stop = Arc::new(AtomicBool::new(false));
                // Each node's host (a handle on the same SSH session, which
                // the task can own) and timestamp file.
                let flips: Vec<(Host, String)> = nodes
                    .iter()
                    .map(|n| {
                        let h = self.host(n)?;
                        Ok((h.with_spec(&h.spec), self.clock_file(n)))
                    })
                    .collect::<Result<_>>()?;
                let s = stop.clone();
                let task = tokio::spawn(async move {
                    let period = Duration::from_millis(period_ms);
                    let mut off = true;
                    while !s.load(Ordering::Relaxed) {
                        let text = offset_text(if off { ms } else { 0 });
                        let t0 = tokio::time::Instant::now();
                        first_err(
                            join_all(flips.iter().map(|(h, f)| h.write_file(f, text.as_bytes())))
                                .await,
                        )?;
                        off = !off;
                        tokio::time::sleep_until(t0 + period).await;
                    }
                    Ok(())
                });
                self.lock_clocks().strobe = Some((stop, task));
                Ok(())
            }
        }
    }

    async fn stop_strobe(&self) -> Result<()> {
        let s = self.lock_clocks().strobe.take();
        match s {
            Some((stop, task)) => {
                stop.store(true, Ordering::Relaxed);
                task.await
                    .map_err(|e| RemoteError::Fault(format!("the clock strobe: {e}")))?
            }
            None => Ok(()),
        }
    }

    /// Sets `nodes`' clocks back to the real time (a strobe stopped first).
    pub async fn clock_reset(&self, nodes: &[String]) -> Result<()> {
        self.stop_strobe().await?;
        first_err(join_all(nodes.iter().map(|n| self.set_offset(n, 0))).await)
    }

    /// Every faked clock back to the real time (healing).
    pub async fn heal_clocks(&self) -> Result<()> {
        let faked: Vec<String> = self.lock_clocks().offsets.keys().cloned().collect();
        self.clock_reset(&faked).await
    }

    /// Forgets the faked clocks (their servers are stopped and their
    /// timestamp files removed).
    pub(super) fn forget_clocks(&self) {
        self.lock_clocks().offsets.clear();
    }

    /// Removes the run's shared objects from the hosts (the end of the run).
    pub async fn remove_clocks(&self) -> Result<()> {
        let s = self.state();
        let hosts: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| s.touched.get(&h.spec.name).is_some_and(|t| t.clock))
            .collect();
        if hosts.is_empty() {
            return Ok(());
        }
        let script = remove_script(&self.shared());
        first_err(
            join_all(
                hosts
                    .iter()
                    .map(|h| h.run("removing libfaketime's shared objects", &script)),
            )
            .await,
        )?;
        let names: Vec<String> = hosts.iter().map(|h| h.spec.name.clone()).collect();
        self.touch(&names, |t| t.clock = false)
    }
}

fn first_err<T>(results: Vec<Result<T>>) -> Result<()> {
    results.into_iter().try_for_each(|r| r.map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_objects_are_the_runs_own() {
        let shared = shared_name("run-12-34");
        let p = prepare_script(&shared);
        assert!(
            p.contains("shm=/dev/shm/faultline-run-12-34-faketime"),
            "{p}"
        );
        assert!(
            p.contains("sem=/dev/shm/sem.faultline-run-12-34-faketime"),
            "{p}"
        );
        assert!(p.contains("libfaketimeMT.so.1"), "{p}");
        let r = remove_script(&shared);
        assert!(
            r.contains(
                "/dev/shm/faultline-run-12-34-faketime /dev/shm/sem.faultline-run-12-34-faketime"
            ),
            "{r}"
        );
    }
}

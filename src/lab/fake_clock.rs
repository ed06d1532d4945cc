//! Faked clocks for the servers of a node, with libfaketime (Debian
//! `libfaketime`): a server started with [`FakeClock::env`] has
//! `libfaketimeMT.so.1` preloaded and reads its wall clock as the real one
//! plus the offset in its node's timestamp file ([`timestamp_file`]), which
//! [`write_offset`] rewrites atomically. Only `CLOCK_REALTIME` (and
//! `time`, `gettimeofday`) is faked: `FAKETIME_DONT_FAKE_MONOTONIC=1`, as a
//! real clock jump (`date -s`, Jepsen's clock nemesis) leaves the monotonic
//! clock alone.
//!
//! libfaketime works through `LD_PRELOAD`, so it fakes only programs that
//! are dynamically linked and read the clock through libc:
//! [`check_binary`] says which (Go binaries such as etcd and nats-server
//! read it through the vDSO and are not applicable).
//!
//! libfaketime keeps a semaphore and a shared-memory object per process
//! tree in `/dev/shm`, named after the pid, and leaves them behind when the
//! process is SIGKILLed. Servers here attach instead to one pair per lab
//! (`FAKETIME_SHARED`), created by [`FakeClock::prepare`] and removed by
//! [`remove_shared`] when the lab is torn down.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::{LabError, Result};

/// Where Debian and a `make install` put the thread-safe library (looked
/// for on remote hosts too).
pub const LIBRARY_PLACES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
];

/// The install command named in errors.
pub const INSTALL: &str = "apt-get install -y faketime libfaketime";

/// The name of a node's timestamp file, in the node's directory.
pub const TIMESTAMP_FILE: &str = "faketime.rc";

/// The timestamp file of the node whose directory is `node_dir`.
pub fn timestamp_file(node_dir: &Path) -> PathBuf {
    node_dir.join(TIMESTAMP_FILE)
}

/// The libfaketime library, found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeClock {
    /// `libfaketimeMT.so.1`.
    pub library: PathBuf,
}

/// The name (for `sem_open` and `shm_open`) of a lab's shared objects (of a
/// remote run's, on its hosts).
pub fn shared_name(lab: &str) -> String {
    format!("/faultline-{lab}-faketime")
}

impl FakeClock {
    /// Finds libfaketime, or the one-line error with the install command.
    pub fn find() -> Result<FakeClock> {
        LIBRARY_PLACES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .map(|library| FakeClock { library })
            .ok_or_else(|| {
                LabError::FakeClock(format!(
                    "clock faults need libfaketime (looked for libfaketimeMT.so.1 in {}); install it with: {INSTALL}",
                    LIBRARY_PLACES.join(", ")
                ))
            })
    }

    /// Creates the lab's semaphore and shared memory that every faked
    /// server attaches to (idempotent).
    pub fn prepare(&self, lab: &str) -> Result<()> {
        let name = CString::new(shared_name(lab))
            .map_err(|_| LabError::FakeClock(format!("lab name {lab:?}")))?;
        let err = |what: &str| {
            LabError::io(
                format!("creating libfaketime's {what} {}", shared_name(lab)),
                std::io::Error::last_os_error(),
            )
        };
        // SAFETY: plain libc calls on a NUL-terminated name; the returned
        // handles are closed here.
        unsafe {
            let sem = libc::sem_open(name.as_ptr(), libc::O_CREAT, 0o600, 1);
            if sem == libc::SEM_FAILED {
                return Err(err("semaphore"));
            }
            libc::sem_close(sem);
            let fd = libc::shm_open(name.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600);
            if fd < 0 {
                return Err(err("shared memory"));
            }
            // libfaketime maps 16 bytes (`struct ft_shared_s`). Servers that
            // drop root (PostgreSQL runs as `postgres`) must open both, or
            // they make (and leak) objects of their own.
            let ok = libc::ftruncate(fd, 4096) == 0 && libc::fchmod(fd, 0o666) == 0;
            libc::close(fd);
            if !ok {
                return Err(err("shared memory"));
            }
        }
        let sem_file = format!("/dev/shm/sem.{}", &shared_name(lab)[1..]);
        std::fs::set_permissions(
            &sem_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .map_err(|e| LabError::io(format!("opening {sem_file} to every user"), e))?;
        Ok(())
    }

    /// The environment of a server whose clock is read from `file`.
    pub fn env(&self, lab: &str, file: &Path) -> Vec<(String, String)> {
        let shared = shared_name(lab);
        vec![
            ("LD_PRELOAD".into(), self.library.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
            // Read the file on every call: a strobe flips it every few ms.
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ("FAKETIME_SHARED".into(), format!("{shared} {shared}")),
        ]
    }
}

/// The environment that fakes the clock of a server on `node`: finds
/// libfaketime, creates the lab's shared objects and the node's timestamp
/// file (at offset 0) if they do not exist yet.
pub fn server_env(lab: &super::Lab, node: &super::NodeState) -> Result<Vec<(String, String)>> {
    let clock = FakeClock::find()?;
    clock.prepare(lab.name())?;
    let file = timestamp_file(&lab.node_dir(node)?);
    if !file.exists() {
        write_offset(&file, 0)?;
    }
    Ok(clock.env(lab.name(), &file))
}

/// The labs that have libfaketime objects in `/dev/shm` (for `faultline
/// clean`, which removes those no state file records).
pub fn shared_labs() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let n = n.strip_prefix("sem.").unwrap_or(&n).to_string();
            let lab = n.strip_prefix("faultline-")?.strip_suffix("-faketime")?;
            super::validate_name(lab).is_ok().then(|| lab.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Removes a lab's libfaketime semaphore and shared memory (nothing if
/// they do not exist).
pub fn remove_shared(lab: &str) {
    if let Ok(name) = CString::new(shared_name(lab)) {
        // SAFETY: unlinking names; a missing one is ENOENT, ignored.
        unsafe {
            libc::sem_unlink(name.as_ptr());
            libc::shm_unlink(name.as_ptr());
        }
    }
}

/// The timestamp file's text for an offset of `ms` milliseconds:
/// libfaketime's relative offset in seconds (`+1.500`, `-0.200`, `+0`).
pub fn offset_text(ms: i64) -> String {
    if ms == 0 {
        return "+0\n".into();
    }
    let sign = if ms < 0 { '-' } else { '+' };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}\n", a / 1000, a % 1000)
}

/// Parses what [`offset_text`] writes back into milliseconds.
pub fn parse_offset(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, rest) = match t.as_bytes().first()? {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => return None,
    };
    let (secs, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let s: i64 = secs.parse().ok()?;
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    let ms = s.checked_mul(1000)?.checked_add(f)?;
    Some(if neg { -ms } else { ms })
}

/// Sets the faked clock of the servers reading `file` to the real clock
/// plus `ms` milliseconds: writes a temporary file beside it and renames it
/// over (a server never reads half a line). The one place a clock fault
/// touches a node; over SSH it becomes the same write on the remote host.
pub fn write_offset(file: &Path, ms: i64) -> Result<()> {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, offset_text(ms))
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| LabError::io(format!("writing {}", file.display()), e))
}

/// The offset in `file` now, in milliseconds (0 when there is none).
pub fn read_offset(file: &Path) -> i64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| parse_offset(&t))
        .unwrap_or(0)
}

/// Reads up to `len` bytes at `offset` of a program's file (fewer at its
/// end): the file here, or on a remote host over SSH.
pub type ReadAt<'a> = dyn FnMut(u64, usize) -> std::result::Result<Vec<u8>, String> + 'a;

/// The most bytes [`check_elf`] reads at once (a section table or a
/// dynamic symbol table); a file that claims more is malformed.
const MAX_READ: usize = 64 << 20;

/// Why libfaketime cannot fake `program`'s clock, if it cannot: it must be
/// a dynamically linked ELF file that imports `clock_gettime`,
/// `gettimeofday` or `time` from libc (Go binaries, even dynamically linked
/// ones, read the clock through the vDSO), and must not load jemalloc
/// (whose start-up calls `clock_gettime` while libfaketime 0.9.10 is still
/// starting: the server deadlocks before it serves, as Debian's
/// redis-server does).
pub fn check_binary(program: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(program)
        .map_err(|e| format!("cannot read {}: {e}", program.display()))?;
    check_elf(&program.display().to_string(), &mut |offset, len| {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(format!("cannot read {}: {e}", program.display())),
            }
        }
        buf.truncate(got);
        Ok(buf)
    })
}

/// [`check_binary`] on the file `read` reads (`program` names it in
/// messages): only the ELF header, the section table and the dynamic
/// sections are read, so a remote host's binary is checked over SSH
/// without copying it.
pub fn check_elf(program: &str, read: &mut ReadAt<'_>) -> std::result::Result<(), String> {
    let dynamic = elf_dynamic(read).map_err(|why| format!("{program}: {why}"))?;
    let Some(d) = dynamic else {
        return Err(format!(
            "not applicable: {program} is statically linked, and libfaketime works through LD_PRELOAD"
        ));
    };
    const CLOCK: &[&str] = &["clock_gettime", "gettimeofday", "time", "ftime"];
    if !d.imports.iter().any(|n| CLOCK.contains(&n.as_str())) {
        return Err(format!(
            "not applicable: {program} imports none of clock_gettime, gettimeofday and time from libc (Go binaries read the clock through the vDSO; a launcher such as java loads the code that reads it later), so faultline cannot tell that libfaketime would fake its time"
        ));
    }
    if let Some(j) = d.needed.iter().find(|n| n.starts_with("libjemalloc")) {
        return Err(format!(
            "not applicable: {program} loads {j}, which reads the clock while libfaketime starts, and the server deadlocks before it serves"
        ));
    }
    Ok(())
}

/// Whether `program` is a script (`#!`): the interpreter runs programs that
/// are checked on their own.
pub fn is_script(program: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(program)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"#!")
}

fn le(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

/// What the dynamic linker reads in an ELF file.
struct Dynamic {
    /// Undefined (imported) dynamic symbols, without their versions.
    imports: Vec<String>,
    /// The libraries it needs (`DT_NEEDED`).
    needed: Vec<String>,
}

/// The string at `at` in the section `strtab`.
fn c_string(strtab: &[u8], at: usize) -> Option<String> {
    let rest = strtab.get(at..)?;
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// The dynamic symbols and needed libraries of a 64-bit little-endian ELF
/// file `read` reads; `None` when it has no dynamic symbol table
/// (statically linked).
fn elf_dynamic(read: &mut ReadAt<'_>) -> std::result::Result<Option<Dynamic>, String> {
    let b = read(0, 64)?;
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF executable".into());
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "malformed ELF section table".to_string();
    let shoff = le(&b, 0x28, 8).ok_or_else(bad)?;
    let shentsize = le(&b, 0x3a, 2).ok_or_else(bad)? as usize;
    let shnum = le(&b, 0x3c, 2).ok_or_else(bad)? as usize;
    let mut region = |off: u64, size: usize| -> std::result::Result<Vec<u8>, String> {
        if size > MAX_READ {
            return Err(bad());
        }
        let r = read(off, size)?;
        if r.len() != size {
            return Err(bad());
        }
        Ok(r)
    };
    let table = region(shoff, shnum.checked_mul(shentsize).ok_or_else(bad)?)?;
    // (type, offset, size, link, entry size) of section `i`.
    let section = |i: usize| -> Option<(u64, u64, usize, usize, usize)> {
        let h = i.checked_mul(shentsize)?;
        Some((
            le(&table, h + 4, 4)?,
            le(&table, h + 24, 8)?,
            le(&table, h + 32, 8)? as usize,
            le(&table, h + 40, 4)? as usize,
            le(&table, h + 56, 8)? as usize,
        ))
    };
    const SHT_DYNAMIC: u64 = 6;
    const SHT_DYNSYM: u64 = 11;
    const DT_NEEDED: u64 = 1;
    let mut imports = None;
    let mut needed = Vec::new();
    for i in 0..shnum {
        let (kind, off, size, link, ent) = section(i).ok_or_else(bad)?;
        if kind != SHT_DYNSYM && kind != SHT_DYNAMIC {
            continue;
        }
        let data = region(off, size)?;
        let (_, str_off, str_size, _, _) = section(link).ok_or_else(bad)?;
        let strtab = region(str_off, str_size)?;
        let default = if kind == SHT_DYNSYM { 24 } else { 16 };
        let ent = if ent == 0 { default } else { ent };
        let mut names = Vec::new();
        for e in (0..size).step_by(ent) {
            if kind == SHT_DYNSYM {
                let name = le(&data, e, 4).ok_or_else(bad)? as usize;
                let shndx = le(&data, e + 6, 2).ok_or_else(bad)?;
                if shndx == 0 && name != 0 {
                    names.push(c_string(&strtab, name).ok_or_else(bad)?);
                }
            } else if le(&data, e, 8).ok_or_else(bad)? == DT_NEEDED {
                let at = le(&data, e + 8, 8).ok_or_else(bad)? as usize;
                needed.push(c_string(&strtab, at).ok_or_else(bad)?);
            }
        }
        if kind == SHT_DYNSYM {
            imports = Some(names);
        }
    }
    Ok(imports.map(|imports| Dynamic { imports, needed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_in_libfaketime_syntax() {
        assert_eq!(offset_text(0), "+0\n");
        assert_eq!(offset_text(1500), "+1.500\n");
        assert_eq!(offset_text(-200), "-0.200\n");
        assert_eq!(offset_text(-60_000), "-60.000\n");
        for ms in [0, 1, -1, 999, -1000, 1500, -200, 86_400_000] {
            assert_eq!(parse_offset(&offset_text(ms)), Some(ms), "{ms}");
        }
        assert_eq!(parse_offset("+2"), Some(2000));
        assert_eq!(parse_offset("-1.5"), Some(-1500));
        assert_eq!(parse_offset("2"), None);
        assert_eq!(parse_offset("+1.2345"), None);
        assert_eq!(parse_offset(""), None);
    }

    #[test]
    fn the_atomic_write_replaces_the_offset() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = timestamp_file(d.path());
        assert_eq!(read_offset(&f), 0);
        write_offset(&f, -1234).expect("write");
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "-1.234\n");
        assert_eq!(read_offset(&f), -1234);
        write_offset(&f, 0).expect("reset");
        assert_eq!(read_offset(&f), 0);
        // Only the file itself is left (the temporary was renamed).
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 1);
    }

    #[test]
    fn binaries_that_read_the_clock_through_libc_are_applicable() {
        // This test binary is Rust, linked to glibc: std's clocks go
        // through clock_gettime.
        let me = std::env::current_exe().expect("exe");
        check_binary(&me).expect("a Rust binary reads the clock through libc");
        let d = tempfile::tempdir().expect("tempdir");
        let text = d.path().join("script");
        std::fs::write(&text, "#!/bin/sh\n").expect("write");
        let e = check_binary(&text).unwrap_err();
        assert!(e.contains("not an ELF"), "{e}");
        assert!(is_script(&text));
        assert!(!is_script(&me));
        // An ELF header with no section carrying dynamic symbols: static.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let stat = d.path().join("static");
        std::fs::write(&stat, &elf).expect("write");
        let e = check_binary(&stat).unwrap_err();
        assert!(e.contains("statically linked"), "{e}");
    }
}

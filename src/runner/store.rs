//! The store directory: `store/<test-name>/<UTC timestamp>/` with the
//! history, the results, the node logs, and `store/latest` pointing at the
//! newest run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYYMMDDTHHMMSSZ` for a time since the epoch (UTC, no leap seconds).
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Creates `<store>/<name>/<stamp>/` (and `nodes/`), and points
/// `<store>/latest` at it. Two runs in the same second get `-2`, `-3`...
pub fn create_run_dir(store: &Path, name: &str) -> std::io::Result<PathBuf> {
    let stamp = utc_stamp(SystemTime::now());
    let parent = store.join(name);
    std::fs::create_dir_all(&parent)?;
    let mut dir = parent.join(&stamp);
    let mut n = 2;
    while dir.exists() {
        dir = parent.join(format!("{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir_all(dir.join("nodes"))?;
    let latest = store.join("latest");
    let target = Path::new(name).join(dir.file_name().unwrap_or_default());
    let tmp = store.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)?;
    std::fs::rename(&tmp, &latest)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_854_781); // 2026-11-28
        assert_eq!(utc_stamp(t), "20261128T083301Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_stamp(leap), "20000229T000000Z");
    }

    #[test]
    fn run_dirs_and_latest() {
        let store = tempfile::tempdir().expect("tempdir");
        let a = create_run_dir(store.path(), "t").expect("a");
        let b = create_run_dir(store.path(), "t").expect("b");
        assert_ne!(a, b);
        assert!(a.join("nodes").is_dir());
        let latest = std::fs::canonicalize(store.path().join("latest")).expect("latest");
        assert_eq!(latest, std::fs::canonicalize(&b).expect("b"));
    }
}

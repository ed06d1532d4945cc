//! Differential test against Porcupine itself, the reference implementation
//! (issue 10). Runs only where Go and a checkout of the Porcupine module are
//! available: `FAULTLINE_PORCUPINE_DIR=/path/to/porcupine` and `go` on the
//! PATH. Otherwise it says loudly that it was skipped (and fails when
//! `FAULTLINE_REQUIRE_PORCUPINE=1`). See docs/porcupine-differential.md.
//!
//! It builds `tests/porcupine/` (a Go program printing Porcupine's verdict
//! for faultline JSON Lines) against the checkout, generates at least 5,000
//! small random histories with `faultline synth` (register, cas-register
//! and kv with put/get/append; `info`, `fail`; values unique or written
//! many times; some with an injected anomaly; some cut short so that
//! operations stay pending), and asserts that faultline and Porcupine give
//! the same verdict on every one, with both verdicts well represented.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_common::{faultline, stderr};
use serde_json::Value;

/// The Porcupine checkout and the Go toolchain, or why the test cannot run.
fn porcupine() -> Result<PathBuf, String> {
    let dir = std::env::var("FAULTLINE_PORCUPINE_DIR")
        .map_err(|_| "FAULTLINE_PORCUPINE_DIR is not set".to_string())?;
    let dir = PathBuf::from(dir);
    if !dir.join("go.mod").is_file() {
        return Err(format!("{} has no go.mod", dir.display()));
    }
    match Command::new("go").arg("version").output() {
        Ok(o) if o.status.success() => Ok(dir),
        _ => Err("`go` is not on the PATH (apt-get install golang-go)".into()),
    }
}

/// Builds the harness against the checkout; returns the binary.
fn build_harness(porcupine: &Path, work: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/porcupine");
    let build = work.join("harness");
    std::fs::create_dir_all(&build).expect("mkdir");
    std::fs::copy(src.join("main.go"), build.join("main.go")).expect("copy main.go");
    let module = std::fs::read_to_string(src.join("go.mod")).expect("go.mod");
    let module = format!(
        "{module}\nreplace github.com/anishathalye/porcupine => {}\n",
        porcupine.display()
    );
    std::fs::write(build.join("go.mod"), module).expect("write go.mod");
    let bin = build.join("porcupine-harness");
    let o = Command::new("go")
        .args(["build", "-mod=mod", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&build)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", work.join("gocache"))
        .output()
        .expect("runs go build");
    assert!(
        o.status.success(),
        "go build of the harness failed: {}",
        stderr(&o)
    );
    bin
}

/// Small random histories: (path, model name).
fn histories(dir: &Path, n: usize) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for seed in 0..n {
        let model = ["register", "cas-register", "kv"][seed % 3];
        let path = dir.join(format!("h{seed}.jsonl")).display().to_string();
        let ops = (4 + seed % 9).to_string();
        let s = seed.to_string();
        let mut args = vec![
            "synth",
            "--model",
            model,
            "--ops",
            &ops,
            "--processes",
            "3",
            "--keys",
            "1",
            "--info",
            "0.15",
            "--fail",
            "0.1",
            "--seed",
            &s,
            "-o",
            &path,
        ];
        match seed % 4 {
            0 => args.extend(["--values", "3"]),
            1 => args.extend(["--inject", "stale-read"]),
            2 => args.extend(["--inject", "lost-write"]),
            _ => {}
        }
        if faultline(&args).status.code() != Some(0) {
            // No place for the injection: the clean history instead.
            args.truncate(args.len() - 2);
            let o = faultline(&args);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        }
        // One in three cut short: the operations in flight stay pending.
        if seed % 3 == 1 {
            let text = std::fs::read_to_string(&path).expect("read");
            let lines: Vec<&str> = text.lines().collect();
            let keep = lines.len() * 2 / 3;
            std::fs::write(&path, lines[..keep].join("\n") + "\n").expect("write");
        }
        out.push((path, model));
    }
    out
}

#[test]
fn faultline_agrees_with_porcupine() {
    let porcupine = match porcupine() {
        Ok(p) => p,
        Err(why) => {
            let msg = format!(
                "\n*** SKIPPED faultline_agrees_with_porcupine: {why}.\n*** The Porcupine \
                 differential test did NOT run (docs/porcupine-differential.md).\n"
            );
            assert!(
                std::env::var("FAULTLINE_REQUIRE_PORCUPINE").as_deref() != Ok("1"),
                "{msg}"
            );
            // Straight to the terminal: the test harness does not capture it.
            let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = build_harness(&porcupine, dir.path());
    let cases = histories(dir.path(), 5100);
    let (mut ok, mut illegal) = (0, 0);
    for model in ["register", "cas-register", "kv"] {
        let files: Vec<&str> = cases
            .iter()
            .filter(|c| c.1 == model)
            .map(|c| c.0.as_str())
            .collect();
        for chunk in files.chunks(200) {
            let o = Command::new(&harness)
                .args(chunk)
                .output()
                .expect("runs the harness");
            assert!(o.status.success(), "harness: {}", stderr(&o));
            let theirs: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            let mut args = vec![
                "check",
                "--json",
                "--checks",
                "linearizable",
                "--model",
                model,
            ];
            args.extend_from_slice(chunk);
            let o = faultline(&args);
            let ours: Vec<Value> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            assert_eq!(ours.len(), chunk.len(), "{}", stderr(&o));
            assert_eq!(theirs.len(), chunk.len());
            for ((file, our), their) in chunk.iter().zip(&ours).zip(&theirs) {
                let our = match &our["valid"] {
                    Value::Bool(true) => "ok",
                    Value::Bool(false) => "illegal",
                    _ => "unknown",
                };
                assert_eq!(our, their, "{file}: faultline {our}, Porcupine {their}");
                if our == "ok" {
                    ok += 1;
                } else {
                    illegal += 1;
                }
            }
        }
    }
    eprintln!(
        "{} histories: {ok} linearizable, {illegal} not; faultline and Porcupine agree",
        cases.len()
    );
    assert!(ok > 1000 && illegal > 1000, "ok {ok}, illegal {illegal}");
}

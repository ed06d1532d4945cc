//! Helpers of the report tests: headless Chromium (Debian's `chromium`,
//! installed by scripts/test-all) and a JUnit XML validator (python3's
//! xml.etree). Both are required: a missing one fails the test loudly.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The Chromium binary, or a loud failure.
pub fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "the report tests need Debian's chromium: apt-get install -y chromium (scripts/test-all installs it)"
    );
}

/// What the headless browser saw of a page.
pub struct Page {
    /// The DOM after the page's scripts ran.
    pub dom: String,
    /// Console messages (errors, warnings, logs) and uncaught exceptions.
    pub console: Vec<String>,
    /// Wall-clock milliseconds of the whole browser process.
    pub wall_ms: f64,
}

impl Page {
    /// An attribute of `<body>`.
    pub fn body_attr(&self, name: &str) -> Option<String> {
        let start = self.dom.find("<body")?;
        let end = start + self.dom[start..].find('>')?;
        let tag = &self.dom[start..end];
        let key = format!("{name}=\"");
        let i = tag.find(&key)? + key.len();
        let j = i + tag[i..].find('"')?;
        Some(tag[i..j].to_string())
    }

    /// A numeric attribute of `<body>`, or a panic naming it.
    pub fn num(&self, name: &str) -> f64 {
        self.body_attr(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("<body {name}> missing; console: {:?}", self.console))
    }
}

fn flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1400,1500",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Opens `html` headless and dumps the DOM after its scripts ran.
pub fn load(html: &Path) -> Page {
    load_url(&format!("file://{}", html.display()))
}

/// Opens `html` with `#selftest`: the page drives its own zoom, pan, hover,
/// click and links once, and says whether anything threw.
pub fn selftest(html: &Path) -> Page {
    let page = load_url(&format!("file://{}#selftest", html.display()));
    assert_clean_render(&page, "selftest");
    assert_eq!(
        page.body_attr("data-selftest").as_deref(),
        Some("ok"),
        "the interactions threw: {:?}",
        page.body_attr("data-errors")
    );
    page
}

/// Opens a URL headless and dumps the DOM after its scripts ran.
pub fn load_url(url: &str) -> Page {
    let profile = tempfile::tempdir().expect("profile dir");
    let t = Instant::now();
    let o = Command::new(chromium())
        .args(flags(profile.path()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("runs chromium");
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let stderr = String::from_utf8_lossy(&o.stderr);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    assert!(o.status.success(), "chromium failed: {stderr}");
    Page {
        dom: String::from_utf8_lossy(&o.stdout).to_string(),
        console,
        wall_ms,
    }
}

/// Takes a screenshot of `html` into `png`.
pub fn screenshot(html: &Path, png: &Path) {
    let profile = tempfile::tempdir().expect("profile dir");
    let o = Command::new(chromium())
        .args(flags(profile.path()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("runs chromium");
    assert!(
        o.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bytes = std::fs::read(png).expect("the screenshot");
    assert!(
        bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG screenshot",
        png.display()
    );
}

/// Counts of a validated JUnit file.
#[derive(Debug, PartialEq, Eq)]
pub struct Junit {
    /// Test cases.
    pub tests: u64,
    /// Failed test cases.
    pub failures: u64,
    /// Errors (unknown verdicts).
    pub errors: u64,
}

const VALIDATE: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
T = F = E = 0
assert len(root) >= 1, "no testsuite"
for s in root:
    assert s.tag == "testsuite", s.tag
    assert s.get("name"), "testsuite without name"
    cases = [c for c in s if c.tag == "testcase"]
    assert all(c.tag in ("testcase", "properties", "system-out", "system-err") for c in s), [c.tag for c in s]
    f = e = sk = 0
    for c in cases:
        assert c.get("name") and c.get("classname"), c.attrib
        float(c.get("time", "0"))
        for x in c:
            assert x.tag in ("failure", "error", "skipped", "system-out", "system-err"), x.tag
            if x.tag == "failure":
                assert x.get("message"), "failure without message"
                assert (x.text or "").strip(), "failure without witness text"
                f += 1
            if x.tag == "error": e += 1
            if x.tag == "skipped": sk += 1
    assert int(s.get("tests")) == len(cases), (s.get("tests"), len(cases))
    assert int(s.get("failures")) == f and int(s.get("errors")) == e and int(s.get("skipped", "0")) == sk
    float(s.get("time", "0"))
    T += len(cases); F += f; E += e
assert int(root.get("tests")) == T and int(root.get("failures")) == F and int(root.get("errors")) == E
print(T, F, E)
"#;

/// Parses `path` as JUnit XML (testsuites/testsuite/testcase/failure) with
/// python3's XML parser and checks that every count agrees.
pub fn validate_junit(path: &Path) -> Junit {
    let o = Command::new("python3")
        .arg("-c")
        .arg(VALIDATE)
        .arg(path)
        .output()
        .expect("the JUnit validation needs python3 (apt-get install -y python3)");
    assert!(
        o.status.success(),
        "{} is not valid JUnit XML: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let n: Vec<u64> = out
        .split_whitespace()
        .map(|x| x.parse().expect("count"))
        .collect();
    Junit {
        tests: n[0],
        failures: n[1],
        errors: n[2],
    }
}

/// Asserts that the page rendered with no console message and no error.
pub fn assert_clean_render(page: &Page, what: &str) {
    assert!(
        page.console.is_empty(),
        "{what}: console messages: {:#?}",
        page.console
    );
    assert_eq!(page.body_attr("data-errors"), None, "{what}: script errors");
    assert_eq!(
        page.body_attr("data-rendered").as_deref(),
        Some("1"),
        "{what}: the report did not finish rendering"
    );
}

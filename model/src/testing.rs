//! The rule every test suite of the workspace follows when something it
//! needs is missing (root, PostgreSQL, S3, a tmpfs mount, an init system):
//! on a developer's machine the test says so and does nothing; under CI it
//! fails, since CI provides everything (docs/decisions.md, "A test never
//! skips in CI"). Here so that the agent's, the server's and the end-to-end
//! tests share one implementation; not an API.

/// Whether CI runs the tests: `CI` set to anything but empty, `false` or `0`
/// (`.ci/run` sets it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "false" | "0"))
}

/// `present`, or else the test is to return early: it says so on stderr
/// (and in the file `CM_TEST_SKIPPED` names, which tests/cluster/providers.sh
/// reads), or fails under CI. `missing` says what is missing and how to get it.
pub fn require(present: bool, missing: &str) -> bool {
    if present {
        return true;
    }
    assert!(!in_ci(), "{missing} (CI is set: a test may not skip)");
    eprintln!("skipped: {missing}");
    if let Ok(log) = std::env::var("CM_TEST_SKIPPED") {
        // libtest names each test's thread after the test.
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let line = format!("{test}\t{missing}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
        if let Err(e) = written {
            panic!("{log}: {e}");
        }
    }
    false
}

//! Test support shared by the workspace's tests (a dev-dependency only).
//!
//! * [`test_image`]: the images committed in `test-data/` at the repository root (licences and
//!   checksums in `test-data/README.md`), so the tests that need *a* face, not a particular
//!   development image, run on a fresh clone.
//! * [`skip`]: the one way a test skips. A test that cannot run (no `../shared/evaldata`, no
//!   PostgreSQL, no onnxruntime library) calls it and returns; it prints
//!   `SKIPPED: <test>: <reason>` and, when `FACELENS_SKIP_LOG` names a file, appends
//!   `<test>: <reason>` to it. `.ci/run` sets that variable, counts the distinct tests in the
//!   file as skipped (cargo counts them as passed) and lists them with their reasons.
//!
//! docs/testing.md describes what skips where and why.

use std::io::Write;
use std::path::PathBuf;

/// The environment variable naming the skip log (one `<test>: <reason>` line per skip).
pub const SKIP_LOG_ENV: &str = "FACELENS_SKIP_LOG";

/// The committed test images: `test-data/` at the repository root.
pub fn test_data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data"))
}

/// The path of a committed test image, e.g. `test_image("astronaut.jpg")`.
///
/// Panics when the file is missing: the images are part of the repository, so a missing one is a
/// broken checkout, not a reason to skip.
pub fn test_image(name: &str) -> PathBuf {
    let path = test_data_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: the test images are committed in test-data/ (see test-data/README.md)",
        path.display()
    );
    path
}

/// The bytes of a committed test image (see [`test_image`]).
pub fn test_image_bytes(name: &str) -> Vec<u8> {
    let path = test_image(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The name of the running test: `<test binary>::<test function path>`, e.g.
/// `cli_detect::exit_codes`. libtest names each test's thread after the test; when tests run on
/// the main thread (`--test-threads=1`), `fallback` is used instead.
pub fn current_test(fallback: &str) -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Cargo names test binaries `<name>-<16 hex digits>`.
            Some((name, hash))
                if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                name.to_string()
            }
            _ => stem,
        })
        .unwrap_or_default();
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => fallback.to_string(),
    };
    if binary.is_empty() {
        test
    } else {
        format!("{binary}::{test}")
    }
}

/// Record that the running test skips, and why. Call it, then return from the test.
///
/// Prints `SKIPPED: <test>: <reason>` (shown with `--nocapture`) and appends `<test>: <reason>`
/// to the file named by `FACELENS_SKIP_LOG`, when set. Only a test that skips *as a whole* calls
/// this: `.ci/run` subtracts each distinct test in the log from cargo's passed count.
pub fn skip(reason: &str) {
    skip_as("", reason);
}

/// [`skip`] with the test's name given, for tests that may run on the main thread.
pub fn skip_as(test: &str, reason: &str) {
    let test = current_test(test);
    let reason = reason.replace('\n', " ");
    println!("SKIPPED: {test}: {reason}");
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV).filter(|v| !v.is_empty()) {
        let line = format!("{test}: {reason}\n");
        // One write of one line to a file opened for appending: lines from tests running in
        // parallel (and from several test binaries) do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "facelens-testkit: cannot append to {}: {e}",
                std::path::Path::new(&log).display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_images_are_found() {
        for name in [
            "astronaut.jpg",
            "astronaut_crop200.jpg",
            "astronaut_trio.jpg",
            "astronaut_grey64.jpg",
            "camera.jpg",
            "coffee.jpg",
        ] {
            let bytes = test_image_bytes(name);
            // Every one is a JPEG.
            assert_eq!(&bytes[..3], &[0xff, 0xd8, 0xff], "{name}");
        }
    }

    #[test]
    fn the_test_name_comes_from_the_test_thread() {
        let name = current_test("fallback");
        assert!(
            name.ends_with("tests::the_test_name_comes_from_the_test_thread")
                || name.ends_with("fallback"),
            "{name}"
        );
    }

    #[test]
    fn a_skip_is_appended_to_the_log() {
        // Not through the environment (tests share it): the same append, to a file of our own.
        let dir = std::env::temp_dir().join(format!("facelens-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("skips.log");
        let _ = std::fs::remove_file(&log);
        // SAFETY (edition 2024): set_var is unsafe because other threads may read the
        // environment at the same time; only this test reads or writes this variable.
        unsafe { std::env::set_var(SKIP_LOG_ENV, &log) };
        skip("no data\nhere");
        skip("again");
        unsafe { std::env::remove_var(SKIP_LOG_ENV) };
        let text = std::fs::read_to_string(&log).expect("the skip log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(": no data here"), "{text}");
        assert!(lines[1].ends_with(": again"), "{text}");
        assert!(lines[0].contains("a_skip_is_appended_to_the_log"), "{text}");
        std::fs::remove_dir_all(&dir).expect("cleaning up");
    }
}

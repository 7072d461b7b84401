//! The binary's allocator settings: jemalloc runs with the decay that main.rs's `malloc_conf`
//! sets, and an operator's `MALLOC_CONF` still wins over it.
//!
//! jemalloc prints its options and statistics at exit when `stats_print` is on; the binary is
//! run with that and `--version` (which loads nothing), and the printed options are read.

#![cfg(all(feature = "jemalloc", target_os = "linux", target_env = "gnu"))]

use std::process::Command;

/// jemalloc's exit statistics of `facelens --version` with `MALLOC_CONF` set to `conf`.
fn stats(conf: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .arg("--version")
        .env("MALLOC_CONF", conf)
        .output()
        .expect("running facelens --version");
    assert!(out.status.success(), "facelens --version failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value jemalloc reports for `opt.<name>`.
fn opt(stats: &str, name: &str) -> Option<String> {
    let key = format!("opt.{name}: ");
    stats.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix(&key)?;
        Some(rest.split_whitespace().next()?.to_string())
    })
}

#[test]
fn jemalloc_runs_with_the_built_in_decay() {
    let s = stats("stats_print:true");
    assert_eq!(
        opt(&s, "dirty_decay_ms").as_deref(),
        Some("1000"),
        "jemalloc's exit statistics:\n{s}"
    );
    assert_eq!(opt(&s, "muzzy_decay_ms").as_deref(), Some("0"));
    assert_eq!(opt(&s, "background_thread").as_deref(), Some("true"));
}

#[test]
fn malloc_conf_from_the_environment_wins() {
    let s = stats("stats_print:true,dirty_decay_ms:5000");
    assert_eq!(
        opt(&s, "dirty_decay_ms").as_deref(),
        Some("5000"),
        "jemalloc's exit statistics:\n{s}"
    );
}

//! The admin commands on a fresh SQLite data dir, as an operator runs them.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn facelens(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("FACELENS_DATABASE_URL")
        .output()
        .expect("run facelens");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let (ok, out, err) = facelens(dir, args);
    assert!(ok, "{args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

#[test]
fn keys_ips_api_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let created = json(
        d,
        &[
            "keys",
            "create",
            "--name",
            "partner",
            "--daily-quota",
            "100",
            "--expires",
            "+30d",
            "--allow-ip",
            "10.0.0.0/8,192.0.2.7",
            "--json",
        ],
    );
    let key = created["key"].as_str().expect("key");
    assert_eq!(key.len(), 32);
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["daily_quota"], 100);
    assert_eq!(created["status"], "active");

    let list = json(d, &["keys", "list", "--json"]);
    let listed = &list.as_array().expect("array")[0];
    assert_eq!(listed["name"], "partner");
    assert!(listed.get("key").is_none(), "the secret is never listed");
    assert!(!serde_json::to_string(&list).expect("json").contains(key));

    let updated = json(
        d,
        &[
            "keys",
            "update",
            &id.to_string(),
            "--daily-quota",
            "none",
            "--test",
            "true",
            "--json",
        ],
    );
    assert!(updated["daily_quota"].is_null());
    assert_eq!(updated["test"], true);
    let banned = json(d, &["keys", "ban", &id.to_string(), "--json"]);
    assert_eq!(banned["status"], "banned");
    let unbanned = json(d, &["keys", "unban", &id.to_string(), "--json"]);
    assert_eq!(unbanned["status"], "active");
    let shown = json(d, &["keys", "show", &id.to_string(), "--json"]);
    assert_eq!(shown["used_today"], 0);

    let (ok, _, _) = facelens(d, &["ips", "ban", "203.0.113.0/24", "--reason", "abuse"]);
    assert!(ok);
    let ips = json(d, &["ips", "list", "--json"]);
    assert_eq!(ips[0]["net"], "203.0.113.0/24");
    let (ok, _, _) = facelens(d, &["ips", "unban", "203.0.113.0/24"]);
    assert!(ok);
    let (ok, _, err) = facelens(d, &["ips", "ban", "not-an-ip"]);
    assert!(!ok && err.contains("not-an-ip"), "{err}");

    let (ok, _, _) = facelens(d, &["api", "maintenance", "on"]);
    assert!(ok);
    let states = json(d, &["api", "status", "--json"]);
    assert_eq!(states["faceDetect"], "maintenance");
    let (ok, _, _) = facelens(d, &["api", "maintenance", "off"]);
    assert!(ok);

    let usage = json(d, &["usage", "--days", "3", "--json"]);
    assert!(usage.as_array().expect("array").is_empty());

    let (ok, out, _) = facelens(d, &["keys", "delete", &id.to_string()]);
    assert!(ok, "{out}");
    let (ok, _, err) = facelens(d, &["keys", "show", &id.to_string()]);
    assert!(!ok && err.contains("no key"), "{err}");
}

//! `facelens serve` as a user runs it: a fresh data dir, the first key printed once, ready on
//! /healthz, a contract call with that key, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn post_form(addr: &str, body: &str) -> String {
    http(
        addr,
        &format!(
            "POST /faceDetect/index HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn serve_prints_a_first_key_and_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("FACELENS_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn facelens serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut key = None;
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(k) = line.split("keep it): ").nth(1) {
            key = Some(k.trim().to_string());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let key = key.expect("the first key is printed");
    let addr = addr.expect("the address is printed");
    assert_eq!(key.len(), 32, "{key}");
    let health = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    eprintln!("ready after {:?}", start.elapsed());

    let answer = post_form(&addr, &format!("image=aGVsbG8%3D&key={key}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"error_code\":200204"), "{answer}");
    let wrong = post_form(
        &addr,
        "image=aGVsbG8%3D&key=00000000000000000000000000000000",
    );
    assert!(wrong.contains("\"error_code\":10001"), "{wrong}");

    // SIGTERM: a clean, prompt exit.
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second start with the same data dir creates no new key.
    let mut again = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn again");
    let out = again.stdout.take().expect("stdout");
    let mut saw_key = false;
    for line in BufReader::new(out).lines() {
        let line = line.expect("line");
        saw_key |= line.contains("keep it)");
        if line.contains("listening on") {
            break;
        }
    }
    let _ = again.kill();
    let _ = again.wait();
    assert!(!saw_key, "the first key is created only once");
}

/// Start `serve` with `env` on a free port; returns the child, its address and the first key.
fn spawn_serve(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facelens"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("FACELENS_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn facelens serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut key = String::new();
    let mut addr = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(k) = line.split("keep it): ").nth(1) {
            key = k.trim().to_string();
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            break;
        }
    }
    assert!(!addr.is_empty(), "the address is printed");
    (child, addr, key)
}

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn sigterm_finishes_in_flight_requests_and_refuses_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr, key) = spawn_serve(dir.path(), &[("FACELENS_SHUTDOWN_GRACE_SECS", "20")]);
    // A request in flight: its head and half its body are sent before the signal.
    let body = format!("key={key}&image=aGVsbG8%3D");
    let mut inflight = TcpStream::connect(&addr).expect("connect");
    inflight
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        inflight,
        "POST /faceDetect/index HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .expect("write head");
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    // New connections are refused once the listener is closed.
    let t = Instant::now();
    loop {
        match TcpStream::connect(&addr) {
            Err(_) => break,
            Ok(mut s) => {
                // Accepted just before the close, or by the kernel backlog: it must not be served.
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.is_empty() {
                    break;
                }
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "new connections are still served after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The in-flight request finishes and gets its answer.
    inflight
        .write_all(&body.as_bytes()[10..])
        .expect("rest of body");
    let mut answer = String::new();
    let _ = inflight.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"error_code\":200204"), "{answer}");
    // Then the process exits cleanly, well within the grace period.
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "serve did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shutdown_grace_bounds_the_wait_for_stuck_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr, key) = spawn_serve(
        dir.path(),
        &[
            ("FACELENS_SHUTDOWN_GRACE_SECS", "1"),
            ("FACELENS_BODY_TIMEOUT_MS", "60000"),
        ],
    );
    // A client that never finishes its body.
    let mut stuck = TcpStream::connect(&addr).expect("connect");
    write!(
        stuck,
        "POST /faceDetect/index HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nkey={key}&image="
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the grace period did not bound the shutdown"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stuck);
}

#[test]
fn logs_hold_no_keys_and_no_image_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr, key) = spawn_serve(dir.path(), &[("FACELENS_LOG", "trace")]);
    let mut stderr = child.stderr.take().expect("stderr");
    let image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
    let other_key = "feedfacefeedfacefeedfacefeedface";
    for body in [
        format!(
            "key={key}&image={}",
            image.replace('+', "%2B").replace('/', "%2F")
        ),
        format!(
            "key={other_key}&image={}",
            image.replace('+', "%2B").replace('/', "%2F")
        ),
        format!("key={key}&image=not-base64-{other_key}"),
        format!("key={key}&image=http%3A%2F%2F10.0.0.1%2F{other_key}.jpg&image_type=2"),
    ] {
        let answer = post_form(&addr, &body);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let answer = http(
        &addr,
        &format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    sigterm(&child);
    let _ = child.wait();
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).expect("read logs");
    assert!(logs.contains("request"), "trace logging was on: {logs}");
    for secret in [key.as_str(), other_key, &image[..24], "iVBORw0KGgo"] {
        assert!(!logs.contains(secret), "the logs hold {secret:?}:\n{logs}");
    }
}

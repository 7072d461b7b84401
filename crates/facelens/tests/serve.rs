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

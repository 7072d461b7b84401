//! The request path under pressure: the byte budget refuses at once in each protocol's shape
//! and the refused client still reads its answer; internal failures never show their cause.
//! (The burst with hundreds of clients is scripts/burst.py; these are its rules, one by one.)

mod common;

use common::{b64, code, flat_png, start};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const KIB: usize = 1024;

/// A form body of about `size` bytes: a small faceless image and padding in a field of its own.
fn padded_form(key: &str, size: usize) -> String {
    let image = b64(&flat_png(64, 64));
    let mut form = format!("key={key}&image={}", urlencode(&image));
    let pad = size.saturating_sub(form.len() + 5);
    form.push_str("&pad=");
    form.push_str(&"x".repeat(pad));
    form
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

async fn bytes_in_flight(s: &common::TestServer) -> u64 {
    let v: Value = s.get_json("/readyz").await;
    v["bytes_in_flight"].as_u64().expect("bytes_in_flight")
}

/// POST `body` as a form to the Juhe endpoint and read its answer.
async fn post_juhe(s: &common::TestServer, body: impl Into<reqwest::Body>) -> Value {
    common::juhe_body(
        s.client
            .post(s.url("/faceDetect/index"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the Juhe client reads its answer"),
    )
    .await
}

/// Open a request that declares `declared` bytes of body and sends only the head: it holds
/// that share of the byte budget while the server waits for the rest.
async fn hold_budget(addr: &str, declared: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /faceDetect/index HTTP/1.1\r\nHost: test\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {declared}\r\n\r\nkey="
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spent_byte_budget_answers_busy_at_once_and_the_client_reads_it() {
    let s = start(|c| {
        c.max_image_bytes = 256 * KIB;
        c.max_body_bytes = 1024 * KIB;
        c.max_bytes_in_flight = 1024 * KIB;
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let body = padded_form(&s.key, 600 * KIB);
    // With room, the padded request is analysed (a flat image: no face).
    let v: Value = post_juhe(&s, body.clone()).await;
    assert_eq!(code(&v), 200216, "{v}");
    assert_eq!(bytes_in_flight(&s).await, 0, "given back after the answer");

    // A slow upload declares 700 KiB and holds them.
    let slow = hold_budget(&addr, 700 * KIB).await;
    let t = Instant::now();
    while bytes_in_flight(&s).await < 700 * KIB as u64 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the slow upload holds its share"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Now a 600 KiB body does not fit: busy at once, in each protocol's shape, and each client
    // reads the whole answer after sending its whole body (no reset).
    let t = Instant::now();
    let v = post_juhe(&s, body.clone()).await;
    assert_eq!(code(&v), 200217, "{v}");
    assert!(t.elapsed() < Duration::from_secs(5), "answered at once");

    let native = s
        .client
        .post(s.url("/v1/detect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .expect("the native client reads its answer");
    assert_eq!(native.status(), 503);
    assert_eq!(
        native.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let v: Value = native.json().await.expect("json");
    assert_eq!(v["error"]["code"], 200217, "{v}");
    assert_eq!(v["error"]["slug"], "busy");

    let baidu: Value = s
        .client
        .post(s.url("/rest/2.0/face/v3/detect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .expect("the Baidu client reads its answer")
        .json()
        .await
        .expect("json");
    assert_eq!(baidu["error_code"], 222901, "{baidu}");

    // Refused bodies were discarded, not kept: only the slow upload holds bytes.
    assert_eq!(bytes_in_flight(&s).await, 700 * KIB as u64);
    // A chunked body declares no length and is counted as the largest allowed: refused too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"key=x&image=y".to_vec()), Ok(vec![b'z'; 10])];
    let v = post_juhe(
        &s,
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(code(&v), 200217, "{v}");

    // The slow client gives up: its share comes back and the same request is served again.
    drop(slow);
    let t = Instant::now();
    while bytes_in_flight(&s).await > 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "the share came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v = post_juhe(&s, body).await;
    assert_eq!(code(&v), 200216, "{v}");

    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("facelens_request_bytes_refused_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("the refusal counter");
    assert_eq!(refused, 4, "Juhe, native, Baidu and the chunked request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_failures_show_the_request_id_not_their_cause() {
    let s = start(|_| {}).await;
    let image = b64(&flat_png(64, 64));
    // The store fails under every request from now on.
    s.store.close().await;

    let resp = s
        .client
        .post(s.url("/faceDetect/index"))
        .header("x-request-id", "req-internal-1")
        .form(&[("key", s.key.as_str()), ("image", image.as_str())])
        .send()
        .await
        .expect("send");
    let detail = resp
        .headers()
        .get("x-facelens-detail")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let v: Value = resp.json().await.expect("json");
    assert_eq!(code(&v), 10014);
    assert_eq!(v["reason"], "系统内部异常");
    assert!(detail.contains("req-internal-1"), "{detail}");
    assert!(!detail.to_lowercase().contains("pool"), "{detail}");

    let resp = s
        .client
        .post(s.url("/v1/detect"))
        .header("x-request-id", "req-internal-2")
        .bearer_auth(&s.key)
        .json(&serde_json::json!({"image": image}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], 10014);
    assert_eq!(v["request_id"], "req-internal-2");
    let detail = v["error"]["detail"].as_str().expect("detail");
    assert!(detail.contains("req-internal-2"), "{detail}");
    assert!(!detail.to_lowercase().contains("pool"), "{detail}");

    let resp = s
        .client
        .post(s.url("/rest/2.0/face/v3/detect"))
        .header("x-request-id", "req-internal-3")
        .form(&[
            ("access_token", s.key.as_str()),
            ("image", image.as_str()),
            ("image_type", "BASE64"),
        ])
        .send()
        .await
        .expect("send");
    let detail = resp
        .headers()
        .get("x-facelens-detail")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error_code"], 1, "{v}");
    assert_eq!(v["error_msg"], "Unknown error");
    assert!(!detail.to_lowercase().contains("pool"), "{detail}");
}

//! The embedded pages (`/`, `/docs` and their assets) and `/metrics` on a real server: content
//! types, security headers, and counters that move with the requests they count. Uses only
//! synthetic images, so it always runs.

mod common;

use common::*;
use std::collections::HashMap;

/// One sample of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parse the Prometheus text format (enough of it: comments, names, quoted labels, values);
/// panics on a line it cannot read, which is a test failure.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a value after the series");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), HashMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = HashMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "quoted label in {line:?}");
                    let mut val = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => val.push(chars.next().expect("escaped char")),
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    labels.insert(key, val);
                }
                (name.to_string(), labels)
            }
        };
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "metric name {name:?}"
        );
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the sample `name` whose labels include all of `want` (0 when absent).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(s: &TestServer) -> (String, Vec<Sample>) {
    let resp = s.client.get(s.url("/metrics")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let ctype = header(&resp, "content-type");
    assert!(
        ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
        "{ctype}"
    );
    let text = resp.text().await.expect("text");
    let samples = parse(&text);
    (text, samples)
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Whether an attribute like ` onclick=` appears (an inline handler the CSP would block).
fn has_inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let csp = header(resp, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: CSP {csp:?}");
    assert!(csp.contains("script-src 'self'"), "{what}: CSP {csp:?}");
    assert!(!csp.contains("unsafe-inline"), "{what}: CSP {csp:?}");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(header(resp, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(resp, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(resp, "referrer-policy"), "no-referrer", "{what}");
}

#[tokio::test]
async fn pages_and_assets_are_served_with_security_headers() {
    let s = start(|_| {}).await;
    let cases: &[(&str, &str, &str)] = &[
        ("/", "text/html", "id=\"canvas\""),
        ("/docs", "text/html", "/assets/docs.js"),
        ("/assets/app.js", "text/javascript", "/v1/detect"),
        ("/assets/docs.js", "text/javascript", "/openapi.json"),
        ("/assets/style.css", "text/css", ".topbar"),
        ("/assets/favicon.svg", "image/svg+xml", "<svg"),
    ];
    for (path, ctype, needle) in cases {
        let resp = s.client.get(s.url(path)).send().await.expect("send");
        assert_eq!(resp.status(), 200, "{path}");
        assert!(header(&resp, "content-type").starts_with(ctype), "{path}");
        assert!(resp.headers().contains_key("x-request-id"), "{path}");
        assert_security_headers(&resp, path);
        let body = resp.text().await.expect("text");
        assert!(body.contains(needle), "{path} lacks {needle:?}");
        // Offline product: no page or asset refers to another host (an SVG's XML namespace is a
        // name, not something fetched).
        let body = body.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for scheme in ["http://", "https://", "//cdn", "@import"] {
            let mentions = body.matches(scheme).count();
            let allowed = usize::from(*path == "/" && scheme == "https://"); // the URL placeholder
            assert!(
                mentions <= allowed,
                "{path} mentions {scheme} {mentions} times"
            );
        }
    }
    // The HTML loads no inline script or style (the CSP would block them).
    for path in ["/", "/docs"] {
        let body = s
            .client
            .get(s.url(path))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text");
        assert!(!body.contains("<script>"), "{path} has an inline script");
        assert!(!body.contains("style=\""), "{path} has an inline style");
        assert!(
            !has_inline_handler(&body),
            "{path} has an inline event handler"
        );
    }
    // The API reference renders this document.
    let doc: serde_json::Value = s.get_json("/openapi.json").await;
    assert!(doc["paths"]["/v1/detect"]["post"].is_object());
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_code() {
    let s = start(|_| {}).await;
    let (text, before) = scrape(&s).await;
    for family in [
        "facelens_http_requests_total counter",
        "facelens_http_request_duration_seconds histogram",
        "facelens_stage_duration_seconds histogram",
        "facelens_faces_per_image histogram",
        "facelens_inference_queue_depth gauge",
        "facelens_inference_running gauge",
        "facelens_models_loaded gauge",
        "process_start_time_seconds gauge",
        "facelens_uptime_seconds gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "no # TYPE {family}"
        );
    }
    assert_eq!(
        value(&before, "facelens_models_loaded", &[("backend", "rten")]),
        1.0
    );
    assert_eq!(value(&before, "facelens_inference_workers", &[]), 2.0);
    assert!(value(&before, "process_start_time_seconds", &[]) > 1.6e9);

    // A refused call (no key): 401 / 10001 on the route template.
    let unknown = [
        ("endpoint", "/v1/detect"),
        ("method", "POST"),
        ("status", "401"),
        ("code", "10001"),
    ];
    let resp = s
        .client
        .post(s.url("/v1/detect"))
        .json(&serde_json::json!({"image": b64(&flat_png(64, 64))}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    // An analysed image without a face: 200 / 0, and one pipeline run with 0 faces.
    let ok = [("endpoint", "/v1/detect"), ("status", "200"), ("code", "0")];
    let resp = s
        .client
        .post(s.url("/v1/detect"))
        .bearer_auth(&s.key)
        .json(&serde_json::json!({"image": b64(&flat_png(64, 64))}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    // The contract's endpoint: its code is in the body, HTTP is 200.
    let v = s.juhe(&[("image", "not base64 !!")]).await;
    let juhe_code = code(&v).to_string();
    // A raw path that matches no route is counted under one label, not under its own path.
    let resp = s
        .client
        .get(s.url("/no/such/page-12345"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);

    let (text, after) = scrape(&s).await;
    let delta =
        |name: &str, want: &[(&str, &str)]| value(&after, name, want) - value(&before, name, want);
    // Other tests of this binary run servers in the same process: counts only grow by at
    // least what this test did.
    assert!(
        delta("facelens_http_requests_total", &unknown) >= 1.0,
        "{text}"
    );
    assert!(delta("facelens_http_requests_total", &ok) >= 1.0, "{text}");
    assert!(
        delta(
            "facelens_http_requests_total",
            &[
                ("endpoint", "/faceDetect/index"),
                ("status", "200"),
                ("code", juhe_code.as_str())
            ]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        delta(
            "facelens_http_requests_total",
            &[("endpoint", "unmatched"), ("status", "404")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        !text.contains("page-12345"),
        "raw paths never become labels"
    );
    assert!(!text.contains(&s.key), "keys never appear");
    assert!(
        delta(
            "facelens_http_request_duration_seconds_count",
            &[("endpoint", "/v1/detect")]
        ) >= 2.0
    );
    let inf = value(
        &after,
        "facelens_http_request_duration_seconds_bucket",
        &[("endpoint", "/v1/detect"), ("le", "+Inf")],
    );
    let count = value(
        &after,
        "facelens_http_request_duration_seconds_count",
        &[("endpoint", "/v1/detect")],
    );
    assert!((inf - count).abs() < f64::EPSILON, "+Inf bucket = count");
    for stage in ["decode", "detect", "mesh", "attributes", "total"] {
        assert!(
            delta("facelens_stage_duration_seconds_count", &[("stage", stage)]) >= 1.0,
            "stage {stage}"
        );
    }
    assert!(
        value(
            &after,
            "facelens_stage_duration_seconds_sum",
            &[("stage", "detect")]
        ) > 0.0
    );
    assert!(
        delta("facelens_faces_per_image_bucket", &[("le", "0")]) >= 1.0,
        "the faceless image lands in the 0 bucket"
    );
    assert!(delta("facelens_analyses_total", &[]) >= 1.0);
    assert_eq!(value(&after, "facelens_inference_queue_depth", &[]), 0.0);
}

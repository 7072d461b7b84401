//! Prometheus metrics at `/metrics`.
//!
//! A small hand-written registry rather than a metrics crate: the service needs a handful of
//! counters and fixed-bucket histograms, and the text format is simple. It is process-global so
//! that the request middleware and the analysis code can record without a handle threaded
//! through `AppState`; the queue gauges are read from the engine at scrape time instead of
//! being mirrored. Labels are route templates and codes only (never raw paths, keys or
//! addresses), so their number stays bounded whatever clients send.

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use facelens_core::types::Timings;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The endpoint label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Request latency buckets, seconds (inference on CPU takes 50 ms .. seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Faces-per-image buckets.
const FACE_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// Reads one stage's time from the pipeline's timings.
type StageTime = fn(&Timings) -> f32;

/// Pipeline stages as they appear in the `stage` label, with the timing each one reads.
const STAGES: &[(&str, StageTime)] = &[
    ("decode", |t| t.decode_ms),
    ("detect", |t| t.detect_ms),
    ("mesh", |t| t.landmarks_ms),
    ("attributes", |t| t.attributes_ms),
    ("total", |t| t.total_ms),
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c;
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format!("{b}"));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// (endpoint, method, status, code) -> count.
    requests: BTreeMap<(String, String, u16, String), u64>,
    /// endpoint -> latency.
    latency: BTreeMap<String, Histogram>,
    /// stage -> latency.
    stages: BTreeMap<&'static str, Histogram>,
    faces: Option<Histogram>,
    analyses: u64,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));
static START: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Note the process start (called when the state is built; the first call wins).
pub(crate) fn mark_start() {
    LazyLock::force(&START);
}

/// Record one answered request. `endpoint` is the route template (or [`UNMATCHED`]); `code`
/// the error code the handler answered with, when it has one.
pub(crate) fn record_request(
    endpoint: &str,
    method: &str,
    status: u16,
    code: Option<u32>,
    elapsed: Duration,
) {
    let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
    // Clients may send any token as a method; only the standard ones become label values.
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    };
    let mut r = registry();
    *r.requests
        .entry((endpoint.to_string(), method.to_string(), status, code))
        .or_insert(0) += 1;
    r.latency
        .entry(endpoint.to_string())
        .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
        .observe(elapsed.as_secs_f64());
}

/// Record one pipeline run: its per-stage times and how many faces it returned.
pub(crate) fn record_analysis(t: &Timings, faces: usize) {
    let mut r = registry();
    r.analyses += 1;
    for &(stage, read) in STAGES {
        r.stages
            .entry(stage)
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(f64::from(read(t)) / 1e3);
    }
    r.faces
        .get_or_insert_with(|| Histogram::new(FACE_BUCKETS))
        .observe(faces as f64);
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition, Prometheus text format 0.0.4.
fn render(st: &AppState) -> String {
    let mut out = String::with_capacity(8192);
    {
        let r = registry();
        family(
            &mut out,
            "facelens_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method, HTTP status and error code (none when the route has no code).",
        );
        for ((endpoint, method, status, code), n) in &r.requests {
            let _ = writeln!(
                out,
                "facelens_http_requests_total{{endpoint=\"{}\",method=\"{}\",status=\"{status}\",code=\"{}\"}} {n}",
                esc(endpoint),
                esc(method),
                esc(code)
            );
        }
        family(
            &mut out,
            "facelens_http_request_duration_seconds",
            "histogram",
            "Time from receiving a request to answering it, by route template.",
        );
        for (endpoint, h) in &r.latency {
            h.render(
                &mut out,
                "facelens_http_request_duration_seconds",
                &format!("endpoint=\"{}\"", esc(endpoint)),
            );
        }
        family(
            &mut out,
            "facelens_stage_duration_seconds",
            "histogram",
            "Time of each pipeline stage per analysed image (decode, detect, mesh, attributes, total).",
        );
        for (stage, h) in &r.stages {
            h.render(
                &mut out,
                "facelens_stage_duration_seconds",
                &format!("stage=\"{stage}\""),
            );
        }
        family(
            &mut out,
            "facelens_faces_per_image",
            "histogram",
            "Faces returned per analysed image.",
        );
        r.faces
            .clone()
            .unwrap_or_else(|| Histogram::new(FACE_BUCKETS))
            .render(&mut out, "facelens_faces_per_image", "");
        family(
            &mut out,
            "facelens_analyses_total",
            "counter",
            "Images run through the pipeline (token look-ups excluded).",
        );
        let _ = writeln!(out, "facelens_analyses_total {}", r.analyses);
    }
    let gauges: [(&str, &str, usize); 6] = [
        (
            "facelens_request_bytes_in_flight",
            "Request body bytes held now (the byte budget in use).",
            st.budget.used(),
        ),
        (
            "facelens_request_bytes_in_flight_limit",
            "The byte budget: request body bytes that may be held at once.",
            st.budget.limit(),
        ),
        (
            "facelens_inference_queue_depth",
            "Requests waiting for an inference worker.",
            st.engine.queued(),
        ),
        (
            "facelens_inference_running",
            "Images being analysed now.",
            st.engine.running(),
        ),
        (
            "facelens_inference_workers",
            "Inference worker threads.",
            st.engine.workers(),
        ),
        (
            "facelens_inference_queue_capacity",
            "Requests that may wait before the service answers busy.",
            st.engine.capacity(),
        ),
    ];
    for (name, help, v) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    family(
        &mut out,
        "facelens_request_bytes_refused_total",
        "counter",
        "Requests answered busy because the byte budget could not take their body.",
    );
    let _ = writeln!(
        out,
        "facelens_request_bytes_refused_total {}",
        st.budget.refused()
    );
    {
        use std::sync::atomic::Ordering::Relaxed;
        family(
            &mut out,
            "facelens_connections_open",
            "gauge",
            "HTTP connections open now.",
        );
        let open = crate::conn::CONNECTIONS_OPEN.load(Relaxed);
        let _ = writeln!(out, "facelens_connections_open {open}");
        family(
            &mut out,
            "facelens_connections_refused_total",
            "counter",
            "Connections closed at once because max_connections were open.",
        );
        let refused = crate::conn::CONNECTIONS_REFUSED.load(Relaxed);
        let _ = writeln!(out, "facelens_connections_refused_total {refused}");
    }
    family(
        &mut out,
        "facelens_models_loaded",
        "gauge",
        "1 when the embedded models are loaded, labelled with the inference backend and version.",
    );
    let _ = writeln!(
        out,
        "facelens_models_loaded{{backend=\"{}\",version=\"{}\"}} 1",
        esc(&st.backend),
        env!("CARGO_PKG_VERSION")
    );
    let start = START.duration_since(UNIX_EPOCH).unwrap_or_default();
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, seconds.",
    );
    let _ = writeln!(out, "process_start_time_seconds {}", start.as_secs_f64());
    family(
        &mut out,
        "facelens_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    let up = START.elapsed().unwrap_or_default();
    let _ = writeln!(out, "facelens_uptime_seconds {:.3}", up.as_secs_f64());
    out
}

async fn metrics(State(st): State<std::sync::Arc<AppState>>) -> Response {
    let mut resp = (StatusCode::OK, render(&st)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The metrics route.
pub(crate) fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new().route("/metrics", get(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.7, 9.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 1\nx_bucket{a=\"b\",le=\"2\"} 3\n\
             x_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 12.7\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

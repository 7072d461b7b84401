//! Load generator for `facelens serve`: real images sent the contract's way (form-urlencoded,
//! base64), at several concurrency levels, reporting throughput, latency percentiles, answers
//! by error code and the server's memory.
//!
//! Used by `scripts/loadtest.sh` (which starts the server and passes its pid); it can also be
//! pointed at any running server:
//!
//! ```text
//! cargo run --release -p facelens --example loadgen -- --url http://127.0.0.1:8080 \
//!     --images DIR_OR_FILES... [--key KEY] [--fit 640x480] [--concurrency 1,2,8,32] \
//!     [--duration 20] [--warmup 3] [--pid SERVER_PID] [--face-num 1] [--busy-backoff-ms 0] \
//!     [--json OUT]
//! cargo run --release -p facelens --example loadgen -- --url http://127.0.0.1:8080 \
//!     --manifest ../shared/evaldata/detection/manifest.jsonl --labelled-faces 1 --fit 640x480
//! ```
//!
//! `--manifest` reads the images of a detection manifest (JSON lines with `file`, relative to
//! the folder above the manifest's, and `boxes` as `[x, y, w, h]`) instead of `--images`;
//! `--labelled-faces N` keeps the photos with exactly N labelled faces (`1`: the issue's
//! "one-face photo"), and `--fit` then centres its crop on the labelled faces rather than on
//! the image, so that a portrait photo does not lose its face to a centre crop.
//!
//! Each level runs `concurrency` client loops for `duration` seconds after `warmup` seconds
//! whose answers are not counted; every request is answered (a transport error is counted as
//! such, never dropped). Latency is from the first byte sent to the whole body read.
//!
//! `images/s` and the latency percentiles count successes (error_code 0) only; `analysed/s`
//! also counts "no face" answers (200216), which come after the same pipeline work (about a
//! tenth of the WIDER photos refitted to 640x480 have no face large enough).
//!
//! `--busy-backoff-ms N`: a client loop that gets the busy answer (200217) waits N ms (times a
//! random factor in 0.5..1.5) before its next request, as a well-behaved client does. With 0
//! (the default) it retries at once, which on a shared 2-core box also measures the cost of the
//! refusal traffic itself, the client's included.

use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    images: Vec<PathBuf>,
    manifest: Option<PathBuf>,
    labelled_faces: Option<usize>,
    key: Option<String>,
    fit: Option<(u32, u32)>,
    levels: Vec<usize>,
    duration: f64,
    warmup: f64,
    pid: Option<u32>,
    face_num: u32,
    busy_backoff_ms: u64,
    json: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --url URL (--images PATH... | --manifest JSONL [--labelled-faces N]) [--key KEY] [--fit WxH] [--concurrency 1,2,8,32] \
         [--duration SECS] [--warmup SECS] [--pid PID] [--face-num N] [--busy-backoff-ms MS] \
         [--json OUT]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        url: String::new(),
        images: Vec::new(),
        manifest: None,
        labelled_faces: None,
        key: None,
        fit: None,
        levels: vec![1, 2, 8, 32],
        duration: 20.0,
        warmup: 3.0,
        pid: None,
        face_num: 1,
        busy_backoff_ms: 0,
        json: None,
    };
    let mut it = std::env::args().skip(1).peekable();
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--url" => a.url = val().trim_end_matches('/').to_string(),
            "--key" => a.key = Some(val()),
            "--fit" => {
                let v = val();
                let (w, h) = v.split_once('x').unwrap_or_else(|| usage());
                a.fit = Some((
                    w.parse().unwrap_or_else(|_| usage()),
                    h.parse().unwrap_or_else(|_| usage()),
                ));
            }
            "--concurrency" => {
                a.levels = val()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--duration" => a.duration = val().parse().unwrap_or_else(|_| usage()),
            "--warmup" => a.warmup = val().parse().unwrap_or_else(|_| usage()),
            "--pid" => a.pid = Some(val().parse().unwrap_or_else(|_| usage())),
            "--face-num" => a.face_num = val().parse().unwrap_or_else(|_| usage()),
            "--busy-backoff-ms" => a.busy_backoff_ms = val().parse().unwrap_or_else(|_| usage()),
            "--json" => a.json = Some(PathBuf::from(val())),
            "--manifest" => a.manifest = Some(PathBuf::from(val())),
            "--labelled-faces" => {
                a.labelled_faces = Some(val().parse().unwrap_or_else(|_| usage()))
            }
            "--images" => {
                a.images.push(PathBuf::from(val()));
                while let Some(p) = it.next_if(|s| !s.starts_with("--")) {
                    a.images.push(PathBuf::from(p));
                }
            }
            _ => usage(),
        }
    }
    if a.url.is_empty()
        || a.images.is_empty() == a.manifest.is_none()
        || (a.labelled_faces.is_some() && a.manifest.is_none())
        || a.levels.is_empty()
    {
        usage()
    }
    a
}

fn collect_images(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if is_image(&path) {
                        out.push(path);
                    }
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "bmp")
    )
}

/// One image to send, and where its labelled faces are centred (pixels), when known.
struct Source {
    path: PathBuf,
    centre: Option<(f64, f64)>,
}

/// The photos of a detection manifest, those with exactly `faces` labelled faces when given.
fn manifest_sources(manifest: &Path, faces: Option<usize>) -> Vec<Source> {
    let text = std::fs::read_to_string(manifest).unwrap_or_else(|e| {
        eprintln!("{}: {e}", manifest.display());
        std::process::exit(2)
    });
    // `file` is relative to the evaluation data's root, the folder above the manifest's.
    let root = manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(row) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(file), Some(boxes)) = (row["file"].as_str(), row["boxes"].as_array()) else {
            continue;
        };
        if faces.is_some_and(|n| n != boxes.len()) {
            continue;
        }
        // Centre of the labelled faces' union.
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for b in boxes {
            let v: Vec<f64> = b
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            if let [x, y, w, h] = v[..] {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + w), y1.max(y + h));
            }
        }
        let centre = (x0 <= x1).then(|| ((x0 + x1) / 2.0, (y0 + y1) / 2.0));
        out.push(Source {
            path: root.join(file),
            centre,
        });
    }
    out
}

/// Crop to the aspect `w:h` (centred on `centre` when given, else on the image, and kept
/// inside it), resize, re-encode as JPEG quality 90.
fn fit(bytes: &[u8], w: u32, h: u32, centre: Option<(f64, f64)>) -> Option<Vec<u8>> {
    let img = image::load_from_memory(bytes).ok()?.to_rgb8();
    let (iw, ih) = img.dimensions();
    let (cw, ch) = if iw * h > ih * w {
        (ih * w / h, ih)
    } else {
        (iw, iw * h / w)
    };
    let (cx, cy) = centre.unwrap_or((f64::from(iw) / 2.0, f64::from(ih) / 2.0));
    let left = (cx - f64::from(cw) / 2.0).clamp(0.0, f64::from(iw - cw)) as u32;
    let top = (cy - f64::from(ch) / 2.0).clamp(0.0, f64::from(ih - ch)) as u32;
    let cropped = image::imageops::crop_imm(&img, left, top, cw, ch).to_image();
    let resized = image::imageops::resize(&cropped, w, h, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    resized.write_with_encoder(enc).ok()?;
    Some(out)
}

/// application/x-www-form-urlencoded escaping of one value.
fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct Sample {
    ms: f64,
    /// The body's error_code, or a transport failure as "transport", or the HTTP status.
    outcome: String,
}

async fn one_request(client: &reqwest::Client, url: &str, body: &Arc<String>) -> Sample {
    let t = Instant::now();
    let res = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.as_ref().clone())
        .send()
        .await;
    let outcome = match res {
        Err(e) => format!(
            "transport: {}",
            if e.is_timeout() { "timeout" } else { "error" }
        ),
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Err(_) => "transport: body".to_string(),
                Ok(b) => match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => match v.get("error_code") {
                        Some(c) => c.to_string(),
                        None => format!("http {status}"),
                    },
                    Err(_) => format!("http {status} (not JSON)"),
                },
            }
        }
    };
    Sample {
        ms: t.elapsed().as_secs_f64() * 1e3,
        outcome,
    }
}

async fn run_level(args: &Args, bodies: &[Arc<String>], concurrency: usize) -> Value {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap_or_else(|e| panic!("http client: {e}"));
    let url = format!("{}/faceDetect/index", args.url);
    let next = Arc::new(AtomicUsize::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let bodies: Arc<Vec<Arc<String>>> = Arc::new(bodies.to_vec());
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = args.pid.map(|pid| {
        let peak = Arc::clone(&peak_rss);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(k) = rss_kib(pid, "VmRSS:") {
                    peak.fetch_max(k, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next, counting, stop, bodies) = (
            client.clone(),
            url.clone(),
            Arc::clone(&next),
            Arc::clone(&counting),
            Arc::clone(&stop),
            Arc::clone(&bodies),
        );
        let backoff_ms = args.busy_backoff_ms;
        // A small per-loop xorshift for the back-off jitter (no rand dependency needed).
        let mut jitter_state = 0x9E37_79B9_7F4A_7C15_u64 ^ (tasks.len() as u64 + 1);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                let counted = counting.load(Ordering::Relaxed);
                let s = one_request(&client, &url, &bodies[i]).await;
                let busy = s.outcome == "200217";
                // Count a request only if it started and ended inside the measured window.
                if counted && !stop.load(Ordering::Relaxed) {
                    samples.push(s);
                }
                if busy && backoff_ms > 0 {
                    jitter_state ^= jitter_state << 13;
                    jitter_state ^= jitter_state >> 7;
                    jitter_state ^= jitter_state << 17;
                    let factor = 0.5 + (jitter_state % 1000) as f64 / 1000.0;
                    let wait = Duration::from_secs_f64(backoff_ms as f64 * factor / 1e3);
                    tokio::time::sleep(wait).await;
                }
            }
            samples
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            samples.extend(s);
        }
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for s in &samples {
        *by_code.entry(s.outcome.clone()).or_default() += 1;
    }
    let mut ok: Vec<f64> = samples
        .iter()
        .filter(|s| s.outcome == "0")
        .map(|s| s.ms)
        .collect();
    ok.sort_by(f64::total_cmp);
    let n_ok = ok.len();
    // Images that went through the whole pipeline: successes and "no face" (200216), which is
    // answered after the same detection work.
    let n_analysed = n_ok + by_code.get("200216").copied().unwrap_or(0);
    json!({
        "concurrency": concurrency,
        "seconds": window,
        "requests": samples.len(),
        "ok": n_ok,
        "by_code": by_code,
        "images_per_s": n_ok as f64 / window,
        "analysed_per_s": n_analysed as f64 / window,
        "p50_ms": percentile(&ok, 50.0),
        "p95_ms": percentile(&ok, 95.0),
        "p99_ms": percentile(&ok, 99.0),
        "server_rss_peak_mib": args.pid.map(|_| peak_rss.load(Ordering::Relaxed) as f64 / 1024.0),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    // reqwest is built without a default TLS provider (the server picks ring); plain HTTP here.
    facelens_server::fetch::install_crypto_provider();
    let args = parse_args();
    let sources = match &args.manifest {
        Some(m) => manifest_sources(m, args.labelled_faces),
        None => collect_images(&args.images)
            .into_iter()
            .map(|path| Source { path, centre: None })
            .collect(),
    };
    let mut bodies = Vec::new();
    for src in &sources {
        let Ok(bytes) = std::fs::read(&src.path) else {
            continue;
        };
        let bytes = match args.fit {
            Some((w, h)) => match fit(&bytes, w, h, src.centre) {
                Some(b) => b,
                None => continue,
            },
            None => bytes,
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let mut form = format!(
            "image={}&image_type=1&face_num={}",
            form_escape(&b64),
            args.face_num
        );
        if let Some(k) = &args.key {
            form.push_str(&format!("&key={}", form_escape(k)));
        }
        bodies.push(Arc::new(form));
    }
    if bodies.is_empty() {
        eprintln!("no readable images");
        std::process::exit(2);
    }
    eprintln!(
        "{} images, levels {:?}, {} s each after {} s warm-up, busy back-off {} ms",
        bodies.len(),
        args.levels,
        args.duration,
        args.warmup,
        args.busy_backoff_ms
    );
    let mut levels = Vec::new();
    println!(
        "concurrency  images/s  analysed/s   p50 ms   p95 ms   p99 ms  requests  answers by code         server RSS MiB"
    );
    for &c in &args.levels {
        let r = run_level(&args, &bodies, c).await;
        println!(
            "{:>11}  {:>8.2}  {:>10.2}  {:>7.1}  {:>7.1}  {:>7.1}  {:>8}  {:<22}  {}",
            c,
            r["images_per_s"].as_f64().unwrap_or(f64::NAN),
            r["analysed_per_s"].as_f64().unwrap_or(f64::NAN),
            r["p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["p95_ms"].as_f64().unwrap_or(f64::NAN),
            r["p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["requests"],
            r["by_code"].to_string(),
            r["server_rss_peak_mib"]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{v:.0}")),
        );
        levels.push(r);
    }
    let hwm = args
        .pid
        .and_then(|p| rss_kib(p, "VmHWM:"))
        .map(|k| k as f64 / 1024.0);
    if let Some(h) = hwm {
        println!("server peak RSS (VmHWM) over the whole run: {h:.0} MiB");
    }
    if let Some(out) = &args.json {
        let doc = json!({"images": bodies.len(), "labelled_faces": args.labelled_faces, "fit": args.fit.map(|(w, h)| format!("{w}x{h}")),
            "busy_backoff_ms": args.busy_backoff_ms, "levels": levels, "server_vmhwm_mib": hwm});
        if let Err(e) = std::fs::write(out, serde_json::to_string_pretty(&doc).unwrap_or_default())
        {
            eprintln!("cannot write {}: {e}", out.display());
        }
    }
}

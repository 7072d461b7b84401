//! Three `facelens serve` replicas on one PostgreSQL (+ Redis): a key with a quota of 100 and
//! 1,000 concurrent requests spread over the three: exactly 100 succeed (the image has no face,
//! which counts as done work: 200216), 900 get 10012, and the usage table says 100.
//!
//! Runs when FACELENS_TEST_POSTGRES_URL is set (CI sets it); Redis is used when
//! FACELENS_TEST_REDIS_URL is set too.

use base64::Engine as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Replica {
    child: Child,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drops the test's schema when the test ends, passed or failed, so that runs leave nothing
/// behind in the shared database.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
        }
    }
}

fn spawn(pg: &str, redis: Option<&str>, schema: &str) -> Replica {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facelens"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--queue-depth",
        "2000",
    ])
    .env("FACELENS_DATABASE_URL", pg)
    .env("FACELENS_DATABASE_SCHEMA", schema)
    .env("FACELENS_CREATE_FIRST_KEY", "false")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(r) = redis {
        cmd.env("FACELENS_REDIS_URL", r)
            .env("FACELENS_IP_RATE_PER_SECOND", "100000")
            .env("FACELENS_IP_RATE_BURST", "100000");
    }
    let mut child = cmd.spawn().expect("spawn facelens serve");
    let out = child.stdout.take().expect("stdout");
    let mut addr = None;
    for line in BufReader::new(out).lines() {
        let line = line.expect("line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    Replica {
        child,
        addr: addr.expect("replica started"),
    }
}

fn admin(pg: &str, schema: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_facelens"))
        .args(args)
        .env("FACELENS_DATABASE_URL", pg)
        .env("FACELENS_DATABASE_SCHEMA", schema)
        .output()
        .expect("admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_exact_across_three_replicas() {
    let Ok(pg) = std::env::var("FACELENS_TEST_POSTGRES_URL") else {
        facelens_testkit::skip("FACELENS_TEST_POSTGRES_URL not set");
        return;
    };
    let redis = std::env::var("FACELENS_TEST_REDIS_URL").ok();
    let schema = format!(
        "replicas_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let _cleanup = SchemaGuard {
        url: pg.clone(),
        schema: schema.clone(),
    };
    // The first admin call creates the schema and runs the migrations.
    let created = admin(
        &pg,
        &schema,
        &[
            "keys",
            "create",
            "--name",
            "quota",
            "--total-quota",
            "100",
            "--json",
        ],
    );
    let key = created["key"].as_str().expect("key").to_string();
    let id = created["id"].as_i64().expect("id");
    let replicas: Vec<Replica> = (0..3)
        .map(|_| spawn(&pg, redis.as_deref(), &schema))
        .collect();

    // 32x32 flat PNG: decodes, no face (counts against the quota, cheap to analyse).
    let img = image::RgbImage::from_pixel(32, 32, image::Rgb([90, 90, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .expect("png");
    let image = base64::engine::general_purpose::STANDARD.encode(png.into_inner());

    facelens_server::fetch::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .expect("client");
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(150));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let url = format!("http://{}/faceDetect/index", replicas[i % 3].addr);
        let client = client.clone();
        let form = [("image", image.clone()), ("key", key.clone())];
        let sem = std::sync::Arc::clone(&sem);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("permit");
            let v: serde_json::Value = client
                .post(&url)
                .form(&form)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            v["error_code"].as_u64().expect("code")
        }));
    }
    let mut done = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("join") {
            200216 => done += 1,
            10012 => refused += 1,
            other => panic!("unexpected code {other}"),
        }
    }
    assert_eq!(done, 100, "exactly the quota succeeds");
    assert_eq!(refused, 900);
    let usage = admin(&pg, &schema, &["usage", "--key", &id.to_string(), "--json"]);
    let counted: i64 = usage
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["code"] == 200216)
        .map(|r| r["count"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 100, "the usage table says 100: {usage}");
    let shown = admin(&pg, &schema, &["keys", "show", &id.to_string(), "--json"]);
    assert_eq!(shown["total_used"], 100);
    drop(replicas);
}

//! A real server on a loopback port, with its own SQLite store in a temporary folder, and the
//! images the tests send.

#![allow(dead_code)]

use base64::Engine as _;
use facelens_server::{AppState, Config, Server, store_options};
use facelens_store::{NewKey, Store, unix_now};
use facelens_vision::{Models, Pipeline};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub state: Arc<AppState>,
    /// An active key without limits.
    pub key: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub fn pipeline() -> Pipeline {
    let backend =
        facelens_infer::create_backend(facelens_infer::BackendKind::Rten, 1).expect("rten backend");
    let models = Models::load_embedded(backend.as_ref()).expect("embedded models");
    Pipeline::new(models).expect("pipeline")
}

/// Start a server with the default configuration changed by `adjust`.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        workers: 2,
        ..Config::default()
    };
    adjust(&mut cfg);
    cfg.validate().expect("valid test config");
    let store = facelens_store::open(&cfg.store_location(), store_options(&cfg))
        .await
        .expect("store");
    let key = store
        .create_key(
            NewKey {
                name: "test".into(),
                ..NewKey::default()
            },
            unix_now(),
        )
        .await
        .expect("key")
        .secret
        .expose()
        .to_string();
    let state = Arc::new(
        AppState::new(&cfg, pipeline(), "rten", Arc::clone(&store))
            .await
            .expect("state"),
    );
    let server = Server::bind(&cfg, Arc::clone(&state)).await.expect("bind");
    let base = format!("http://{}", server.addr);
    tokio::spawn(server.serve(Duration::from_secs(3600), std::future::pending()));
    TestServer {
        base,
        store,
        state,
        key,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client"),
        _dir: dir,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` and parse the body as JSON (e.g. `/openapi.json`).
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// POST the contract's form (the original way) and return the parsed body; asserts the
    /// contract's transport rules (HTTP 200, JSON, a request id).
    pub async fn juhe_form(&self, fields: &[(&str, &str)]) -> Value {
        let resp = self
            .client
            .post(self.url("/faceDetect/index"))
            .form(fields)
            .send()
            .await
            .expect("send");
        juhe_body(resp).await
    }

    /// The contract's form with this server's key added.
    pub async fn juhe(&self, fields: &[(&str, &str)]) -> Value {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("key", &self.key));
        self.juhe_form(&f).await
    }
}

pub async fn juhe_body(resp: reqwest::Response) -> Value {
    assert_eq!(
        resp.status(),
        200,
        "the contract's endpoint always answers 200"
    );
    assert!(
        resp.headers().contains_key("x-request-id"),
        "every response has a request id"
    );
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    resp.json().await.expect("JSON body")
}

pub fn code(v: &Value) -> u64 {
    v["error_code"].as_u64().expect("error_code")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn evaldata() -> Option<PathBuf> {
    facelens_eval::evaldata_dir().filter(|d| d.join("attributes/manifest.jsonl").is_file())
}

/// The reason every test that needs the development data gives when it skips.
pub const NO_EVALDATA: &str =
    "no development evaluation data (../shared/evaldata or FACELENS_EVALDATA)";

/// A dev image, or `None` after recording that the test skips (`facelens_testkit::skip`); the
/// test then returns.
pub fn dev_image(rel: &str) -> Option<Vec<u8>> {
    let Some(dir) = evaldata() else {
        facelens_testkit::skip(NO_EVALDATA);
        return None;
    };
    Some(std::fs::read(dir.join(rel)).expect("dev image"))
}

/// The bytes of a committed test image (`test-data/`, in every clone).
pub fn test_image(name: &str) -> Vec<u8> {
    facelens_testkit::test_image_bytes(name)
}

/// Committed: one clear frontal face, 200x200 (public-domain NASA portrait, test-data/README.md).
pub const FACE: &str = "astronaut_crop200.jpg";
/// Committed: three faces of three sizes side by side.
pub const TRIO: &str = "astronaut_trio.jpg";
/// Development data: a WIDER FACE crowd with more than five faces.
pub const CROWD: &str = "detection/wider_face_val/images/0--Parade/0_Parade_Parade_0_429.jpg";

/// A PNG of one flat colour (no face in it).
pub fn flat_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([120, 130, 140]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

//! `GET /openapi.json`, generated from the handlers' annotations and the schema types below.
//!
//! The contract's wire types live in facelens-core, which stays free of HTTP concerns; the
//! schema types here describe them for the document, and an integration test checks that
//! every field a real response carries is described.

use axum::Json;
use axum::response::IntoResponse;
use utoipa::{OpenApi, ToSchema};

/// The fields of `/faceDetect/index` (form-urlencoded, query, JSON or multipart).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JuheRequest {
    /// image_type 1: base64 of a jpg/png/bmp (no `data:` header, then url-encoded; ≤ 4 MB);
    /// 2: an http(s) URL; 3: a token_id. Multipart may upload the file instead.
    pub image: String,
    /// 1..10, default 1: the n largest faces.
    pub face_num: Option<u8>,
    /// 1 live photo (default), 2 ID card, 3 watermarked ID photo, 4 certificate photo.
    pub face_type: Option<u8>,
    /// 1 base64 (default), 2 URL, 3 token_id.
    pub image_type: Option<u8>,
    /// The API key.
    pub key: String,
    /// Only for keys bound to an openid.
    pub openid: Option<String>,
}

/// A label and its probability.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LabelSchema {
    #[schema(rename = "type")]
    pub r#type: String,
    pub probability: f64,
}

/// Eye openness, 0 closed .. 1 open.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EyeStatusSchema {
    pub left_eye: f64,
    pub right_eye: f64,
}

/// Baidu's `location`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LocationSchema {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub rotation: i32,
}

/// Baidu's `angle`, degrees.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AngleSchema {
    pub yaw: f64,
    pub pitch: f64,
    pub roll: f64,
}

/// A point.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PointSchema {
    pub x: f64,
    pub y: f64,
}

/// Per-region occlusion 0..1.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OcclusionSchema {
    pub left_eye: f64,
    pub right_eye: f64,
    pub nose: f64,
    pub mouth: f64,
    pub left_cheek: f64,
    pub right_cheek: f64,
    pub chin_contour: f64,
}

/// Baidu's `quality`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct QualitySchema {
    pub blur: f64,
    pub illumination: f64,
    pub completeness: f64,
    pub occlusion: OcclusionSchema,
}

/// One face of the contract's `face_list` (attributes switched off by the operator are
/// omitted).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JuheFaceSchema {
    pub token_id: String,
    pub face_probability: f64,
    pub age: Option<u32>,
    /// 0..100.
    pub beauty: Option<f64>,
    /// none / smile / laugh.
    pub expression: Option<LabelSchema>,
    /// square / triangle / oval / heart / round.
    pub face_shape: Option<LabelSchema>,
    /// male / female.
    pub gender: Option<LabelSchema>,
    /// none / common / sun.
    pub glasses: Option<LabelSchema>,
    pub eye_status: Option<EyeStatusSchema>,
    /// angry / disgust / fear / happy / sad / surprise / neutral.
    pub emotion: Option<LabelSchema>,
    /// yellow / white / black / arabs.
    pub race: Option<LabelSchema>,
    /// human / cartoon.
    pub face_type: Option<LabelSchema>,
    /// Baidu-style extras.
    pub location: LocationSchema,
    pub angle: AngleSchema,
    pub landmark: Vec<PointSchema>,
    pub quality: QualitySchema,
}

/// `result` of a success.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JuheResultSchema {
    pub face_num: usize,
    pub face_list: Vec<JuheFaceSchema>,
}

/// The contract's envelope.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JuheResponse {
    /// "success" or the Chinese message of the error code.
    pub reason: String,
    /// null on error.
    pub result: Option<JuheResultSchema>,
    /// 0 on success, else a code of docs/errors.md.
    pub error_code: u32,
    /// Only with `legacy_resultcode` on.
    pub resultcode: Option<String>,
}

/// A native request (JSON; multipart takes a `file` part instead of `image`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NativeRequest {
    /// Base64 of the image (exactly one of image, url, token, or a multipart file).
    pub image: Option<String>,
    /// An http(s) URL of the image.
    pub url: Option<String>,
    /// A token_id from an earlier answer.
    pub token: Option<String>,
    /// 1..100, default 10.
    pub max_faces: Option<u32>,
    /// 1..4 or LIVE / IDCARD / WATERMARK / CERT.
    pub face_type: Option<String>,
    /// Include the 468-point mesh of each face.
    pub mesh: Option<bool>,
    /// The API key, if not in `Authorization: Bearer` or `X-Api-Key`.
    pub key: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up")))]
#[allow(dead_code)]
fn healthz_doc() {}

/// Readiness: the store answers and the server is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
#[allow(dead_code)]
fn readyz_doc() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Facelens",
        description = "Offline face detection and face attributes: the Juhe faceDetect contract and a native API."
    ),
    paths(
        crate::juhe_api::face_detect,
        crate::native::detect,
        healthz_doc,
        readyz_doc
    ),
    components(schemas(
        JuheRequest,
        JuheResponse,
        NativeRequest,
        crate::native::NativeResponse,
        crate::native::NativeError
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

pub async fn openapi_json() -> impl IntoResponse {
    Json(document())
}

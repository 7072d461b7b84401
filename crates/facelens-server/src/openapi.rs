//! `GET /openapi.json`, generated from the path descriptions and the schema types below.
//!
//! The descriptions live here, not on the handlers, so that the document depends on the
//! protocols' answer types and nothing depends on the document.
//!
//! The contract's wire types live in facelens-core, which stays free of HTTP concerns; the
//! schema types here describe them for the document, and an integration test checks that
//! every field a real response carries is described.

use crate::native::{NativeError, NativeResponse};
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

/// `POST /rest/2.0/face/v3/detect` (JSON, form or query; docs/baidu.md).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BaiduDetectRequest {
    /// Base64 of a jpg/png/bmp (≤ 4 MB), an http(s) URL, or a face_token, per `image_type`.
    pub image: String,
    /// BASE64, URL or FACE_TOKEN.
    pub image_type: String,
    /// Comma-separated: age, beauty, expression, face_shape, gender, glasses, landmark,
    /// landmark72, quality, eye_status, emotion, race, face_type (others are accepted and left
    /// out of the answer).
    pub face_field: Option<String>,
    /// 1..120, default 1.
    pub max_face_num: Option<u32>,
    /// LIVE (default), IDCARD, WATERMARK, CERT or INFRARED.
    pub face_type: Option<String>,
    /// NONE only: Facelens has no liveness check (LOW / NORMAL / HIGH answer 216102).
    pub liveness_control: Option<String>,
    /// 0 (default): largest face first; 1: nearest the centre first.
    pub face_sort_type: Option<u8>,
    /// Only for keys bound to an openid.
    pub openid: Option<String>,
}

/// Baidu's `quality`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BaiduQualitySchema {
    pub occlusion: OcclusionSchema,
    pub blur: f64,
    pub illumination: f64,
    /// 0 or 1: whether the whole face is inside the image.
    pub completeness: u8,
}

/// One face of Baidu's `face_list`: the token, box, probability and angle always; the rest only
/// when asked for in `face_field` (and not switched off by the operator).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BaiduFaceSchema {
    /// A Facelens token_id (usable as `image_type=FACE_TOKEN`).
    pub face_token: String,
    pub location: LocationSchema,
    pub face_probability: f64,
    pub angle: AngleSchema,
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
    /// Four points: the eyes (image left first), the nose tip, the mouth centre.
    pub landmark: Option<Vec<PointSchema>>,
    /// Baidu's 72-point layout, mapped from the face mesh.
    pub landmark72: Option<Vec<PointSchema>>,
    pub quality: Option<BaiduQualitySchema>,
    pub eye_status: Option<EyeStatusSchema>,
    /// angry / disgust / fear / happy / sad / surprise / neutral.
    pub emotion: Option<LabelSchema>,
    /// yellow / white / black / arabs.
    pub race: Option<LabelSchema>,
    /// human / cartoon.
    pub face_type: Option<LabelSchema>,
}

/// `result` of a Baidu success.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BaiduResultSchema {
    pub face_num: usize,
    pub face_list: Vec<BaiduFaceSchema>,
}

/// Baidu's envelope: always HTTP 200, the outcome in `error_code`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BaiduResponse {
    /// 0 on success, else a Baidu code (docs/baidu.md maps each to Facelens's table).
    pub error_code: u32,
    /// "SUCCESS" or Baidu's message.
    pub error_msg: String,
    pub log_id: u64,
    pub timestamp: i64,
    pub cached: u8,
    /// null on error.
    pub result: Option<BaiduResultSchema>,
}

/// `/oauth/2.0/token` fields (query or form).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OAuthTokenRequest {
    /// client_credentials or refresh_token.
    pub grant_type: String,
    /// client_credentials: the key's id or name.
    pub client_id: Option<String>,
    /// client_credentials: the Facelens key itself.
    pub client_secret: Option<String>,
    /// refresh_token: an earlier answer's refresh_token.
    pub refresh_token: Option<String>,
}

/// A token answer (errors are RFC 6749 `{error, error_description}` with 400/401/403/429).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OAuthTokenResponse {
    pub access_token: String,
    /// Seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
    /// Carried for Baidu's SDKs; not used by this API.
    pub session_key: String,
    /// Carried for Baidu's SDKs; not used by this API.
    pub session_secret: String,
}

/// The contract's endpoint (`GET|POST /faceDetect/index`).
#[utoipa::path(
    post,
    path = "/faceDetect/index",
    tag = "contract",
    request_body(content = JuheRequest, content_type = "application/x-www-form-urlencoded",
        description = "The contract's fields; also accepted as a GET query, JSON or multipart"),
    responses((status = 200, description = "Always 200: success or an error code in the body", body = JuheResponse))
)]
#[allow(dead_code)]
fn face_detect_doc() {}

/// The native API (`POST /v1/detect`).
#[utoipa::path(
    post,
    path = "/v1/detect",
    tag = "native",
    request_body(content = NativeRequest, description = "JSON (or multipart with a `file` part and the same fields)"),
    responses(
        (status = 200, description = "Faces found (possibly none)", body = NativeResponse),
        (status = 400, description = "Invalid parameters", body = NativeError),
        (status = 401, description = "Unknown key", body = NativeError),
        (status = 403, description = "Key or source refused", body = NativeError),
        (status = 404, description = "Unknown or expired token", body = NativeError),
        (status = 413, description = "Image too large", body = NativeError),
        (status = 415, description = "Not a jpg, png or bmp", body = NativeError),
        (status = 422, description = "Corrupt image, bad dimensions, URL refused or failed", body = NativeError),
        (status = 429, description = "Rate or quota exceeded", body = NativeError),
        (status = 503, description = "Busy (with Retry-After), maintenance or disabled", body = NativeError),
    ),
    security((), ("bearer" = []))
)]
#[allow(dead_code)]
fn native_detect_doc() {}

/// Baidu Face Detect v3, for Baidu's SDKs: the Juhe endpoint's gate and analysis behind
/// Baidu's fields and codes.
#[utoipa::path(post, path = "/rest/2.0/face/v3/detect", tag = "baidu",
    params(("access_token" = String, Query,
        description = "From /oauth/2.0/token (or a Facelens key sent as is)")),
    request_body(content = BaiduDetectRequest, content_type = "application/json",
        description = "Also accepted form-urlencoded"),
    responses((status = 200, description = "Success or a Baidu error code in the body",
        body = BaiduResponse)))]
#[allow(dead_code)]
fn baidu_detect_doc() {}

/// Baidu's OAuth step: a Facelens key becomes an access token (30 days) and a refresh token.
#[utoipa::path(post, path = "/oauth/2.0/token", tag = "baidu",
    request_body(content = OAuthTokenRequest,
        content_type = "application/x-www-form-urlencoded",
        description = "Or the same fields in the query string of a GET"),
    responses(
        (status = 200, description = "Tokens", body = OAuthTokenResponse),
        (status = 400, description = "invalid_request"),
        (status = 401, description = "invalid_client"),
        (status = 403, description = "invalid_client: banned address"),
        (status = 429, description = "Too many requests from this address")))]
#[allow(dead_code)]
fn oauth_token_doc() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Facelens",
        description = "Offline face detection and face attributes: the Juhe faceDetect contract and a native API."
    ),
    paths(
        face_detect_doc,
        native_detect_doc,
        baidu_detect_doc,
        oauth_token_doc,
        healthz_doc,
        readyz_doc
    ),
    components(schemas(
        JuheRequest,
        JuheResponse,
        NativeRequest,
        NativeResponse,
        NativeError,
        BaiduDetectRequest,
        BaiduResponse,
        OAuthTokenRequest,
        OAuthTokenResponse
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

//! `POST /v1/detect`: the native API.
//!
//! Same work as the contract's endpoint, but with everything Facelens knows about each face
//! (box, rotation, landmarks, optional mesh, pose, quality, attributes, timings) and proper
//! HTTP statuses with a machine-readable error body. No face is a success with an empty list
//! here (it is an error only in the contract). Busy answers 503 with `Retry-After`.
//!
//! Input: JSON `{"image": base64 | "url": ... | "token": ..., "max_faces", "face_type",
//! "mesh"}` or multipart with a `file` part and the same fields. The key comes from
//! `Authorization: Bearer <key>`, `X-Api-Key`, or a `key` field.

use crate::analyze::{Analyzed, Plan};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::FaceType;
use crate::input::{Fields, ImageSource, decode_base64};
use crate::request::{Ctx, Protocol};
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_core::types::{Face, Timings};
use facelens_vision::FaceOrder;
use serde::Serialize;

/// Most faces the native API returns per image.
pub const MAX_FACES: usize = 100;

/// One face of the native answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NativeFace {
    /// Names this face of this image for `token` requests.
    pub token_id: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub face: Face,
}

/// The native answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NativeResponse {
    pub request_id: String,
    /// Upright image size (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation applied (1 = none).
    pub orientation: u8,
    /// Largest face first.
    pub faces: Vec<NativeFace>,
    /// Whether the faces were read from a stored token instead of analysed now.
    pub from_token: bool,
    #[schema(value_type = Object)]
    pub timings: Timings,
}

/// The native error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NativeError {
    pub error: ErrorBody,
    pub request_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The code of the error table (docs/errors.md).
    pub code: u32,
    /// A stable machine name, e.g. `no_face`.
    pub slug: String,
    /// English description.
    pub message: String,
    /// What exactly was wrong, when known.
    pub detail: String,
}

/// Parameters of a native request.
#[derive(Debug)]
struct NativeParams {
    source: ImageSource,
    max_faces: usize,
    face_type: FaceType,
    mesh: bool,
}

/// The native API.
pub struct Native;

/// A native success, before the request id is added.
pub struct NativeAnswer(Analyzed);

impl Protocol for Native {
    const API: &'static str = crate::API_NATIVE_DETECT;
    type Params = ();
    type Answer = NativeAnswer;
    type Error = ApiError;

    fn api_error(e: &ApiError) -> &ApiError {
        e
    }

    fn key<'a>(fields: &'a Fields, headers: &'a HeaderMap) -> Option<&'a str> {
        key_from_headers(headers).or_else(|| fields.get("key"))
    }

    fn parse(fields: &Fields, cfg: &Config) -> Result<((), Plan), ApiError> {
        let p = native_params(fields, cfg.max_image_bytes)?;
        Ok((
            (),
            Plan {
                source: p.source,
                face_type: p.face_type,
                max_faces: p.max_faces,
                mesh: p.mesh,
                order: FaceOrder::Largest,
            },
        ))
    }

    /// No face is a success with an empty list here, recorded as 200216 in the usage.
    fn conclude(_: (), a: Analyzed) -> Result<(NativeAnswer, Option<ErrorCode>), ApiError> {
        let usage = a.faces.is_empty().then_some(ErrorCode::NoFace);
        Ok((NativeAnswer(a), usage))
    }

    fn render(NativeAnswer(a): NativeAnswer, _: &AppState, ctx: &Ctx) -> Response {
        let body = NativeResponse {
            request_id: ctx.request_id.clone(),
            width: a.width,
            height: a.height,
            orientation: a.orientation,
            faces: a
                .faces
                .into_iter()
                .map(|f| NativeFace {
                    token_id: f.token_id,
                    face: f.face,
                })
                .collect(),
            from_token: a.from_token,
            timings: a.timings,
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    fn render_error(e: &ApiError, _: &AppState, ctx: &Ctx) -> Response {
        error_response(e, &ctx.request_id)
    }
}

fn bad(code: ErrorCode, detail: impl Into<String>) -> FaceError {
    FaceError::new(code, detail)
}

fn native_params(f: &Fields, max_image_bytes: usize) -> Result<NativeParams, FaceError> {
    let max_faces = match f.get("max_faces").or_else(|| f.get("face_num")) {
        None => 10,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_FACES).contains(n))
            .ok_or_else(|| {
                bad(
                    ErrorCode::InvalidFaceNum,
                    format!("max_faces={s:?} (1..={MAX_FACES})"),
                )
            })?,
    };
    let face_type = match f.get("face_type") {
        None => FaceType::Live,
        Some(s) => FaceType::parse(s)
            .ok_or_else(|| bad(ErrorCode::InvalidFaceType, format!("face_type={s:?}")))?,
    };
    let mesh = match f.get("mesh") {
        None => false,
        Some(s) => matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
    };
    let given = [
        f.file.is_some(),
        f.get("image").is_some(),
        f.get("url").is_some(),
        f.get("token").is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(bad(
            ErrorCode::MalformedRequest,
            "give exactly one of file, image, url, token",
        ));
    }
    let source = if let Some(bytes) = &f.file {
        if bytes.len() > max_image_bytes {
            return Err(bad(
                ErrorCode::ImageTooLarge,
                format!("{} bytes, the limit is {max_image_bytes}", bytes.len()),
            ));
        }
        ImageSource::Bytes(bytes.clone())
    } else if let Some(b64) = f.get("image") {
        ImageSource::Bytes(decode_base64(b64, max_image_bytes)?.into())
    } else if let Some(url) = f.get("url") {
        ImageSource::Url(url.to_string())
    } else if let Some(tok) = f.get("token") {
        ImageSource::Token(tok.to_string())
    } else {
        return Err(bad(
            ErrorCode::MissingParameter,
            "one of file, image (base64), url or token is required",
        ));
    };
    Ok(NativeParams {
        source,
        max_faces,
        face_type,
        mesh,
    })
}

fn key_from_headers(h: &HeaderMap) -> Option<&str> {
    if let Some(auth) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(k) = auth.strip_prefix("Bearer ")
    {
        return Some(k.trim());
    }
    h.get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The native error answer: HTTP status and body from the error table (an internal failure's
/// cause stays in the log; the body names the request id).
pub fn error_response(e: &ApiError, request_id: &str) -> Response {
    let code = e.code();
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = NativeError {
        error: ErrorBody {
            code: code.code(),
            slug: code.slug().to_string(),
            message: code.english().to_string(),
            detail: e.public_detail(request_id),
        },
        request_id: request_id.to_string(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if code == ErrorCode::Busy {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

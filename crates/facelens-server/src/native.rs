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

use crate::API_NATIVE_DETECT;
use crate::analyze::Analyzed;
use crate::input::FaceType;
use crate::input::{Fields, ImageSource, decode_base64, read_fields};
use crate::server::{AnsweredCode, AppState, RequestId};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_core::types::{Face, Timings};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

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
        ImageSource::Bytes(decode_base64(b64, max_image_bytes)?)
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

fn key_from_headers(h: &HeaderMap) -> Option<String> {
    if let Some(auth) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(k) = auth.strip_prefix("Bearer ")
    {
        return Some(k.trim().to_string());
    }
    h.get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// `POST /v1/detect`.
#[utoipa::path(
    post,
    path = "/v1/detect",
    tag = "native",
    request_body(content = crate::openapi::NativeRequest, description = "JSON (or multipart with a `file` part and the same fields)"),
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
pub async fn detect(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    if let Err(e) = st.refuse_if_busy() {
        crate::input::drain(req.into_body(), st.max_body_bytes).await;
        return error_response(&e, &request_id);
    }
    let caller = st.caller(peer, req.headers());
    let header_key = key_from_headers(req.headers());
    let fields = match read_fields(req, st.max_body_bytes).await {
        Ok(f) => f,
        Err(e) => return error_response(&e, &request_id),
    };
    let key = header_key.or_else(|| fields.get("key").map(str::to_string));
    let admission = match st
        .gate
        .admit(
            API_NATIVE_DETECT,
            key.as_deref(),
            fields.get("openid"),
            &caller,
        )
        .await
    {
        Ok(a) => a,
        Err(e) => return error_response(&e, &request_id),
    };
    let outcome: Result<(Analyzed, bool), FaceError> = async {
        let p = native_params(&fields, st.max_image_bytes)?;
        let mut opts = st.options_for(p.face_type, p.max_faces);
        opts.include_mesh = p.mesh;
        Ok((st.analyze(p.source, opts).await?, p.mesh))
    }
    .await;
    match outcome {
        Ok((a, _mesh)) => {
            let code = if a.faces.is_empty() {
                Some(ErrorCode::NoFace)
            } else {
                None
            };
            if let Err(e) = admission.finish(code).await {
                return error_response(&e, &request_id);
            }
            let body = NativeResponse {
                request_id,
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
            let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
            resp.extensions_mut().insert(AnsweredCode(0));
            resp
        }
        Err(e) => {
            admission.fail(e.code).await;
            error_response(&e, &request_id)
        }
    }
}

/// The native error answer: HTTP status and body from the error table.
pub fn error_response(e: &FaceError, request_id: &str) -> Response {
    if e.code == ErrorCode::Internal {
        tracing::error!(request_id, "internal error: {}", e.detail);
    }
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = NativeError {
        error: ErrorBody {
            code: e.code.code(),
            slug: e.code.slug().to_string(),
            message: e.code.english().to_string(),
            detail: e.detail.clone(),
        },
        request_id: request_id.to_string(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if e.code == ErrorCode::Busy {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp.extensions_mut().insert(AnsweredCode(e.code.code()));
    resp
}

//! Baidu Face Detect v3 compatibility: `/rest/2.0/face/v3/detect` and `/oauth/2.0/token`.
//!
//! So that users of Baidu's SDKs switch by changing the host: the same OAuth step, the same
//! request fields and the same answer (`{error_code, error_msg, log_id, timestamp, cached,
//! result}`, HTTP 200 with the code in the body, as Baidu does). Behind it is the Juhe
//! endpoint's path, unchanged: the same key gate (under the API name `baiduDetect`), the
//! same analysis and the same face tokens (a Baidu `face_token` is a Facelens `token_id`).
//! Every refusal is one row of Facelens's error table, shown to the client as the Baidu code of
//! [`baidu_code`] (the table is in docs/baidu.md); usage and metrics keep the Facelens code.

mod face;
pub mod token;

use crate::API_BAIDU_DETECT;
use crate::access::{Admission, TOTAL_LIMIT_DETAIL};
use crate::analyze::Analyzed;
use crate::input::{FaceType, Fields, ImageSource, decode_base64, read_fields};
use crate::server::{AnsweredCode, AppState, RequestId};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use face::{BaiduFace, FaceFields};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_store::unix_now;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use token::{Kind, TokenError};

/// Baidu's largest `max_face_num`.
pub const MAX_FACE_NUM: usize = 120;

/// Routes of the Baidu-compatible API.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/rest/2.0/face/v3/detect", post(detect))
        .route(
            "/oauth/2.0/token",
            axum::routing::get(oauth_token).post(oauth_token),
        )
}

/// Baidu's code and message for a Facelens error (docs/baidu.md lists this table; a test keeps
/// it in step).
pub fn baidu_code(e: &FaceError) -> (u32, &'static str) {
    use ErrorCode::*;
    match e.code {
        UnknownKey => (110, "Access token invalid or no longer valid"),
        KeyExpired => (111, "Access token expired"),
        KeyNotAllowed | WrongOpenid | KeyPending | SourceNotAllowed | BannedIp | BannedKey => {
            (6, "No permission to access data")
        }
        IpRateLimited => (18, "Open api qps request limit reached"),
        QuotaExceeded | TestKeyLimit if e.detail == TOTAL_LIMIT_DETAIL => {
            (19, "Open api total request limit reached")
        }
        QuotaExceeded | TestKeyLimit => (17, "Open api daily request limit reached"),
        Internal => (1, "Unknown error"),
        Maintenance => (2, "Service temporarily unavailable"),
        ApiDisabled => (3, "Unsupported openapi method"),
        MissingParameter => (222001, "param[] is null"),
        InvalidBase64 => (222013, "param[image] format error"),
        ImageTooLarge | ImageTooSmall | ImageDimensionsTooLarge => (216202, "image size error"),
        UnsupportedFormat => (216201, "image format error"),
        CorruptImage => (222203, "image check fail"),
        InvalidFaceNum => (222016, "param[max_face_num] format error"),
        InvalidFaceType => (222024, "param[face_type] format error"),
        InvalidImageType => (222015, "param[image_type] format error"),
        UrlDownloadFailed | UrlNotAllowed | UrlTimeout | UrlTooLarge => {
            (222204, "image_url_download_fail")
        }
        InvalidToken => (222209, "face token not exist"),
        NoFace => (222202, "pic not has face"),
        Busy => (222901, "system busy"),
        MalformedRequest => (216100, "invalid param"),
    }
}

/// A refusal: the Facelens error (usage, logs, metrics) and what the Baidu client sees.
#[derive(Debug)]
struct Refusal {
    error: FaceError,
    baidu: (u32, String),
}

impl From<FaceError> for Refusal {
    fn from(error: FaceError) -> Self {
        let (code, msg) = baidu_code(&error);
        Self {
            baidu: (code, msg.to_string()),
            error,
        }
    }
}

impl Refusal {
    /// A refusal whose Baidu code is more precise than the table's row for `code`.
    fn exact(
        code: ErrorCode,
        baidu: u32,
        msg: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            error: FaceError::new(code, detail),
            baidu: (baidu, msg.into()),
        }
    }
}

/// Baidu's envelope.
#[derive(Debug, Serialize)]
struct Envelope {
    error_code: u32,
    error_msg: String,
    log_id: u64,
    timestamp: i64,
    cached: u8,
    result: Option<DetectResult>,
}

#[derive(Debug, Serialize)]
struct DetectResult {
    face_num: usize,
    face_list: Vec<BaiduFace>,
}

/// Baidu's numeric `log_id` from the request id (the `X-Request-Id` header carries the same
/// request), kept under 2^53 so JavaScript clients read it exactly.
fn log_id(request_id: &str) -> u64 {
    let from_id = u64::from_str_radix(request_id.get(..16).unwrap_or(request_id), 16).ok();
    let n = from_id.unwrap_or_else(|| {
        let mut r = [0u8; 8];
        let _ = getrandom::fill(&mut r);
        u64::from_le_bytes(r)
    });
    n & ((1 << 53) - 1)
}

fn respond(env: &Envelope, code: u32, detail: Option<&str>) -> Response {
    let body = serde_json::to_vec(env).unwrap_or_else(|_| {
        br#"{"error_code":1,"error_msg":"Unknown error","log_id":0,"timestamp":0,"cached":0,"result":null}"#
            .to_vec()
    });
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(d) = detail.filter(|d| !d.is_empty())
        && let Ok(v) = HeaderValue::from_str(&ascii_only(d))
    {
        resp.headers_mut().insert("x-facelens-detail", v);
    }
    resp.extensions_mut().insert(AnsweredCode(code));
    resp
}

fn ascii_only(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .take(300)
        .collect()
}

fn refuse(r: &Refusal, request_id: &str) -> Response {
    if r.error.code == ErrorCode::Internal {
        tracing::error!(request_id, "internal error: {}", r.error.detail);
    } else {
        tracing::debug!(
            request_id,
            code = r.error.code.code(),
            "refused: {}",
            r.error.detail
        );
    }
    let env = Envelope {
        error_code: r.baidu.0,
        error_msg: r.baidu.1.clone(),
        log_id: log_id(request_id),
        timestamp: unix_now(),
        cached: 0,
        result: None,
    };
    respond(&env, r.error.code.code(), Some(&r.error.detail))
}

/// A validated detect request.
#[derive(Debug)]
struct DetectParams {
    source: ImageSource,
    fields: FaceFields,
    max_face_num: usize,
    face_type: FaceType,
    /// `face_sort_type=1`: faces nearest the image centre first (Baidu's option).
    by_centre: bool,
}

fn null_param(name: &str) -> Refusal {
    Refusal::exact(
        ErrorCode::MissingParameter,
        222001,
        format!("param[{name}] is null"),
        format!("{name} is missing or empty"),
    )
}

fn detect_params(f: &Fields, max_image_bytes: usize) -> Result<DetectParams, Refusal> {
    let image = f.get("image").ok_or_else(|| null_param("image"))?;
    let image_type = f
        .get("image_type")
        .ok_or_else(|| null_param("image_type"))?;
    let fields = FaceFields::parse(f.get("face_field")).map_err(|d| {
        Refusal::exact(
            ErrorCode::MalformedRequest,
            222017,
            "param[face_field] format error",
            d,
        )
    })?;
    let max_face_num = match f.get("max_face_num") {
        None => 1,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_FACE_NUM).contains(n))
            .ok_or_else(|| {
                Refusal::from(FaceError::new(
                    ErrorCode::InvalidFaceNum,
                    format!("max_face_num={s:?} (1..={MAX_FACE_NUM})"),
                ))
            })?,
    };
    let face_type = match f.get("face_type") {
        None => FaceType::Live,
        // Infrared photos are ordinary photos to this detector.
        Some(s) if s.eq_ignore_ascii_case("INFRARED") => FaceType::Live,
        Some(s) => FaceType::parse(s).ok_or_else(|| {
            Refusal::from(FaceError::new(
                ErrorCode::InvalidFaceType,
                format!("face_type={s:?}"),
            ))
        })?,
    };
    match f
        .get("liveness_control")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("NONE") => {}
        // Facelens has no liveness model: answering as if the check had passed would let
        // photos of photos through, so the request is refused instead.
        Some("LOW" | "NORMAL" | "HIGH") => {
            return Err(Refusal::exact(
                ErrorCode::MalformedRequest,
                216102,
                "service not support",
                "liveness_control: Facelens has no liveness check; send NONE",
            ));
        }
        Some(other) => {
            return Err(Refusal::exact(
                ErrorCode::MalformedRequest,
                222020,
                "param[liveness_control] format error",
                format!("liveness_control={other:?}"),
            ));
        }
    }
    let by_centre = match f.get("face_sort_type") {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(Refusal::exact(
                ErrorCode::MalformedRequest,
                216100,
                "invalid param",
                format!("face_sort_type={other:?} (0 or 1)"),
            ));
        }
    };
    let source = match image_type.to_ascii_uppercase().as_str() {
        "BASE64" => ImageSource::Bytes(decode_base64(image, max_image_bytes)?),
        "URL" => ImageSource::Url(image.to_string()),
        "FACE_TOKEN" => ImageSource::Token(image.to_string()),
        _ => {
            return Err(FaceError::new(
                ErrorCode::InvalidImageType,
                format!("image_type={image_type:?} (BASE64, URL or FACE_TOKEN)"),
            )
            .into());
        }
    };
    Ok(DetectParams {
        source,
        fields,
        max_face_num,
        face_type,
        by_centre,
    })
}

/// Who is calling: the `access_token` (ours, or a Facelens key sent as is), checked after the
/// per-IP rate, the API switch and the banned addresses, exactly where the Juhe endpoint checks
/// its key.
async fn admit(
    st: &AppState,
    fields: &Fields,
    caller: &crate::access::Caller,
) -> Result<Admission, Refusal> {
    let gate = &st.gate;
    gate.screen(Some(API_BAIDU_DETECT), caller).await?;
    if !gate.require_key {
        return Ok(Admission::open(Arc::clone(&st.store)));
    }
    let Some(token) = fields.get("access_token") else {
        return Err(Refusal::exact(
            ErrorCode::UnknownKey,
            100,
            "Invalid parameter",
            "access_token is missing",
        ));
    };
    let record = if facelens_store::secret::normalize_key(token).is_some() {
        // A Facelens key used directly as the access token.
        st.store
            .find_key(token)
            .await
            .map_err(|e| FaceError::new(ErrorCode::Internal, e.to_string()))?
            .ok_or_else(|| FaceError::new(ErrorCode::UnknownKey, "unknown key"))?
    } else {
        match token::verify(
            st.store.as_ref(),
            st.baidu_token_secret.as_deref(),
            token,
            Kind::Access,
            unix_now(),
        )
        .await
        {
            Ok(k) => k,
            Err(TokenError::Invalid) => {
                return Err(FaceError::new(ErrorCode::UnknownKey, "invalid access token").into());
            }
            Err(TokenError::Expired) => {
                return Err(Refusal::exact(
                    ErrorCode::KeyExpired,
                    111,
                    "Access token expired",
                    "the access token has expired; fetch a new one",
                ));
            }
            Err(TokenError::Store(e)) => {
                return Err(FaceError::new(ErrorCode::Internal, e).into());
            }
        }
    };
    Ok(gate
        .admit_key(API_BAIDU_DETECT, record, fields.get("openid"), caller)
        .await?)
}

/// `POST /rest/2.0/face/v3/detect?access_token=...`.
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
        return refuse(&e.into(), &request_id);
    }
    let caller = st.caller(peer, req.headers());
    let fields = match read_fields(req, st.max_body_bytes).await {
        Ok(f) => f,
        Err(e) => return refuse(&e.into(), &request_id),
    };
    let admission = match admit(&st, &fields, &caller).await {
        Ok(a) => a,
        Err(r) => return refuse(&r, &request_id),
    };
    let outcome: Result<(Analyzed, FaceFields), Refusal> = async {
        let p = detect_params(&fields, st.max_image_bytes)?;
        // Sorting by distance to the centre needs every face before the cut.
        let analyse_faces = if p.by_centre {
            MAX_FACE_NUM
        } else {
            p.max_face_num
        };
        let mut opts = st.options_for(p.face_type, analyse_faces);
        opts.include_mesh = p.fields.landmark72;
        let mut analyzed = st.analyze(p.source, opts).await?;
        if p.by_centre {
            let (cx, cy) = (analyzed.width as f32 / 2.0, analyzed.height as f32 / 2.0);
            let dist = |f: &crate::analyze::TokenFace| {
                let c = f.face.bbox.center();
                (c.x - cx).powi(2) + (c.y - cy).powi(2)
            };
            analyzed.faces.sort_by(|a, b| dist(a).total_cmp(&dist(b)));
        }
        analyzed.faces.truncate(p.max_face_num);
        if analyzed.faces.is_empty() {
            return Err(FaceError::new(ErrorCode::NoFace, "no face found").into());
        }
        Ok((analyzed, p.fields))
    }
    .await;
    match outcome {
        Ok((analyzed, want)) => {
            if let Err(e) = admission.finish(None).await {
                return refuse(&e.into(), &request_id);
            }
            let face_list: Vec<BaiduFace> = analyzed
                .faces
                .iter()
                .map(|f| BaiduFace::from_face(&f.face, f.token_id.clone(), want))
                .collect();
            let env = Envelope {
                error_code: 0,
                error_msg: "SUCCESS".into(),
                log_id: log_id(&request_id),
                timestamp: unix_now(),
                cached: 0,
                result: Some(DetectResult {
                    face_num: face_list.len(),
                    face_list,
                }),
            };
            respond(&env, 0, None)
        }
        Err(r) => {
            admission.fail(r.error.code).await;
            refuse(&r, &request_id)
        }
    }
}

/// An OAuth error answer (RFC 6749 §5.2, Baidu's bodies).
fn oauth_error(status: StatusCode, error: &str, description: &str, detail: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&ascii_only(detail)) {
        resp.headers_mut().insert("x-facelens-detail", v);
    }
    resp
}

fn invalid_client(description: &str, detail: &str) -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        description,
        detail,
    )
}

/// Random opaque text for Baidu's `session_key` / `session_secret`, which the SDKs carry but
/// never use with this API.
fn opaque(n: usize) -> String {
    let mut r = vec![0u8; n];
    let _ = getrandom::fill(&mut r);
    facelens_store::secret::hex(&r)
}

/// `GET|POST /oauth/2.0/token`: `grant_type=client_credentials&client_id=<key id or name>&
/// client_secret=<Facelens key>`, or `grant_type=refresh_token&refresh_token=...`.
pub async fn oauth_token(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let caller = st.caller(peer, req.headers());
    let fields = match read_fields(req, st.max_body_bytes).await {
        Ok(f) => f,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "invalid request",
                &e.detail,
            );
        }
    };
    // Guessing secrets from one address is slowed and banned addresses are refused, as on the
    // API itself.
    if let Err(e) = st.gate.screen(None, &caller).await {
        return match e.code {
            ErrorCode::IpRateLimited => oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                "too many requests",
                &e.detail,
            ),
            ErrorCode::BannedIp => oauth_error(
                StatusCode::FORBIDDEN,
                "invalid_client",
                "Client authentication failed",
                &e.detail,
            ),
            _ => server_error(&e.detail),
        };
    }
    let now = unix_now();
    let key = match fields.get("grant_type") {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type",
                "grant_type is required",
            );
        }
        Some("client_credentials") => {
            let (Some(id), Some(secret)) = (fields.get("client_id"), fields.get("client_secret"))
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "missing client_id or client_secret",
                    "client_id and client_secret are required",
                );
            };
            let key = match st.store.find_key(secret).await {
                Ok(Some(k)) => k,
                Ok(None) => {
                    return invalid_client(
                        "Client authentication failed",
                        "client_secret is not a Facelens key",
                    );
                }
                Err(e) => return server_error(&e.to_string()),
            };
            if !token::client_id_matches(&key, id) {
                return invalid_client(
                    "unknown client id",
                    "client_id must be the key's id or name",
                );
            }
            key
        }
        Some("refresh_token") => {
            let Some(refresh) = fields.get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "missing refresh_token",
                    "refresh_token is required",
                );
            };
            match token::verify(
                st.store.as_ref(),
                st.baidu_token_secret.as_deref(),
                refresh,
                Kind::Refresh,
                now,
            )
            .await
            {
                Ok(k) => k,
                Err(TokenError::Store(e)) => return server_error(&e),
                Err(TokenError::Invalid | TokenError::Expired) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid refresh token",
                        "the refresh token is not valid",
                    );
                }
            }
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported",
                &format!("grant_type={other:?}"),
            );
        }
    };
    if let Err(code) = token::standing(&key, now) {
        return invalid_client("Client authentication failed", code.english());
    }
    let stored = match st.store.key_with_hash(key.id).await {
        Ok(Some((_, h))) => h,
        Ok(None) => return invalid_client("unknown client id", "the key was just deleted"),
        Err(e) => return server_error(&e.to_string()),
    };
    let secret = st.baidu_token_secret.as_deref();
    let body = json!({
        "refresh_token": token::mint(&stored, secret, Kind::Refresh, key.id, now),
        "expires_in": token::ACCESS_TTL,
        "session_key": opaque(32),
        "access_token": token::mint(&stored, secret, Kind::Access, key.id, now),
        "scope": token::SCOPE,
        "session_secret": opaque(16),
    });
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn server_error(detail: &str) -> Response {
    tracing::error!("issuing a Baidu access token failed: {detail}");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error",
        "internal error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/baidu.md has one row per Facelens code with the Baidu code it becomes.
    #[test]
    fn baidu_doc_matches_the_mapping() {
        let doc = include_str!("../../../../docs/baidu.md");
        for &c in ErrorCode::ALL {
            let (b, _) = baidu_code(&FaceError::from(c));
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {} |", c.code())))
                .unwrap_or_else(|| panic!("docs/baidu.md has no row for {}", c.code()));
            assert!(row.contains(&format!("| {b} ")), "{row} should map to {b}");
        }
        let total = baidu_code(&FaceError::new(
            ErrorCode::QuotaExceeded,
            TOTAL_LIMIT_DETAIL,
        ));
        assert_eq!(total.0, 19);
        assert_eq!(baidu_code(&ErrorCode::QuotaExceeded.into()).0, 17);
    }

    #[test]
    fn log_ids_fit_javascript_numbers() {
        assert_eq!(log_id("00000000000000ff"), 255);
        assert!(log_id("ffffffffffffffff") < 1 << 53);
        assert!(log_id("not-hex") < 1 << 53);
    }
}

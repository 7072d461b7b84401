//! Baidu Face Detect v3 compatibility: `/rest/2.0/face/v3/detect` and `/oauth/2.0/token`.
//!
//! So that users of Baidu's SDKs switch by changing the host: the same OAuth step
//! ([`oauth`]), the same request fields and the same answer (`{error_code, error_msg, log_id,
//! timestamp, cached, result}`, HTTP 200 with the code in the body, as Baidu does). Behind it
//! is the one request path ([`crate::request`]): the same admission (under the API name
//! `baiduDetect`), the same analysis and the same face tokens (a Baidu `face_token` is a
//! Facelens `token_id`). Every refusal is one row of Facelens's error table, shown to the
//! client as the Baidu code of [`baidu_code`] (the table is in docs/baidu.md) or, where Baidu
//! is more precise than the table, as its own code; usage and metrics keep the Facelens code.

mod face;
pub mod oauth;
pub mod token;

use crate::analyze::{Analyzed, Plan};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::{FaceType, Fields, ImageSource, decode_base64};
use crate::request::{Ctx, Protocol};
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use face::{BaiduFace, FaceFields};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_store::{ApiKey, LimitHit, unix_now};
use facelens_vision::FaceOrder;
use serde::Serialize;
use std::future::Future;
use token::{Kind, TokenError};

/// Baidu's largest `max_face_num`.
pub const MAX_FACE_NUM: usize = 120;

/// Baidu's code and message for a Facelens error (docs/baidu.md lists this table; a test keeps
/// it in step).
pub fn baidu_code(e: &ApiError) -> (u32, &'static str) {
    use ErrorCode::*;
    if let ApiError::Limit(hit) = e {
        return match hit {
            LimitHit::Daily | LimitHit::TestDaily => (17, "Open api daily request limit reached"),
            LimitHit::Total | LimitHit::TestTotal => (19, "Open api total request limit reached"),
        };
    }
    match e.code() {
        UnknownKey => (110, "Access token invalid or no longer valid"),
        KeyExpired => (111, "Access token expired"),
        KeyNotAllowed | WrongOpenid | KeyPending | SourceNotAllowed | BannedIp | BannedKey => {
            (6, "No permission to access data")
        }
        IpRateLimited => (18, "Open api qps request limit reached"),
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

/// A Baidu refusal: the Facelens error (usage, logs, metrics) and, where Baidu has a more
/// precise code than the table's row, that code and message.
#[derive(Debug)]
pub struct BaiduError {
    error: ApiError,
    exact: Option<(u32, String)>,
}

impl From<ApiError> for BaiduError {
    fn from(error: ApiError) -> Self {
        Self { error, exact: None }
    }
}

impl From<FaceError> for BaiduError {
    fn from(e: FaceError) -> Self {
        ApiError::from(e).into()
    }
}

impl BaiduError {
    /// A refusal whose Baidu code is more precise than the table's row for `code`.
    fn exact(
        code: ErrorCode,
        baidu: u32,
        msg: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            error: ApiError::new(code, detail),
            exact: Some((baidu, msg.into())),
        }
    }

    /// What the client sees: Baidu's code and message.
    fn wire(&self) -> (u32, String) {
        self.exact.clone().unwrap_or_else(|| {
            let (code, msg) = baidu_code(&self.error);
            (code, msg.to_string())
        })
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
pub struct DetectResult {
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

fn respond(env: &Envelope, detail: Option<&str>) -> Response {
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
    resp
}

pub(crate) use crate::juhe::ascii_only;

/// The Baidu Face Detect v3 API.
pub struct Baidu;

impl Protocol for Baidu {
    const API: &'static str = crate::API_BAIDU_DETECT;
    type Params = DetectParams;
    type Answer = DetectResult;
    type Error = BaiduError;

    fn api_error(e: &BaiduError) -> &ApiError {
        &e.error
    }

    /// The `access_token`: ours, or a Facelens key sent as is.
    fn find_key(
        st: &AppState,
        fields: &Fields,
        _: &HeaderMap,
    ) -> impl Future<Output = Result<ApiKey, BaiduError>> + Send {
        let token = fields.get("access_token").map(str::to_string);
        async move {
            let Some(token) = token else {
                return Err(BaiduError::exact(
                    ErrorCode::UnknownKey,
                    100,
                    "Invalid parameter",
                    "access_token is missing",
                ));
            };
            if facelens_store::secret::normalize_key(&token).is_some() {
                // A Facelens key used directly as the access token.
                return Ok(st.gate.find(&token).await.map_err(ApiError::from)?);
            }
            match token::verify(
                st.store.as_ref(),
                st.baidu_token_secret(),
                &token,
                Kind::Access,
                unix_now(),
            )
            .await
            {
                Ok(k) => Ok(k),
                Err(TokenError::Invalid) => {
                    Err(ApiError::new(ErrorCode::UnknownKey, "invalid access token").into())
                }
                Err(TokenError::Expired) => Err(BaiduError::exact(
                    ErrorCode::KeyExpired,
                    111,
                    "Access token expired",
                    "the access token has expired; fetch a new one",
                )),
                Err(TokenError::Store(e)) => Err(ApiError::internal(e).into()),
            }
        }
    }

    fn parse(fields: &Fields, cfg: &Config) -> Result<(DetectParams, Plan), BaiduError> {
        let mut p = detect_params(fields, cfg.max_image_bytes)?;
        // face_sort_type=1 keeps the faces nearest the centre: chosen before the per-face
        // stages, so at most max_face_num faces are analysed either way.
        let plan = Plan {
            source: std::mem::replace(&mut p.source, ImageSource::Token(String::new())),
            face_type: p.face_type,
            max_faces: p.max_face_num,
            mesh: p.fields.landmark72,
            order: if p.by_centre {
                FaceOrder::NearestCentre
            } else {
                FaceOrder::Largest
            },
        };
        Ok((p, plan))
    }

    fn conclude(
        p: DetectParams,
        analyzed: Analyzed,
    ) -> Result<(DetectResult, Option<ErrorCode>), BaiduError> {
        if analyzed.faces.is_empty() {
            return Err(ApiError::new(ErrorCode::NoFace, "no face found").into());
        }
        let face_list: Vec<BaiduFace> = analyzed
            .faces
            .iter()
            .map(|f| BaiduFace::from_face(&f.face, f.token_id.clone(), p.fields))
            .collect();
        Ok((
            DetectResult {
                face_num: face_list.len(),
                face_list,
            },
            None,
        ))
    }

    fn render(result: DetectResult, _: &AppState, ctx: &Ctx) -> Response {
        let env = Envelope {
            error_code: 0,
            error_msg: "SUCCESS".into(),
            log_id: log_id(&ctx.request_id),
            timestamp: unix_now(),
            cached: 0,
            result: Some(result),
        };
        respond(&env, None)
    }

    fn render_error(e: &BaiduError, _: &AppState, ctx: &Ctx) -> Response {
        let (code, msg) = e.wire();
        let env = Envelope {
            error_code: code,
            error_msg: msg,
            log_id: log_id(&ctx.request_id),
            timestamp: unix_now(),
            cached: 0,
            result: None,
        };
        respond(&env, Some(&e.error.public_detail(&ctx.request_id)))
    }
}

/// A validated detect request.
#[derive(Debug)]
pub struct DetectParams {
    source: ImageSource,
    fields: FaceFields,
    max_face_num: usize,
    face_type: FaceType,
    /// `face_sort_type=1`: faces nearest the image centre first (Baidu's option).
    by_centre: bool,
}

fn null_param(name: &str) -> BaiduError {
    BaiduError::exact(
        ErrorCode::MissingParameter,
        222001,
        format!("param[{name}] is null"),
        format!("{name} is missing or empty"),
    )
}

fn detect_params(f: &Fields, max_image_bytes: usize) -> Result<DetectParams, BaiduError> {
    let image = f.get("image").ok_or_else(|| null_param("image"))?;
    let image_type = f
        .get("image_type")
        .ok_or_else(|| null_param("image_type"))?;
    let fields = FaceFields::parse(f.get("face_field")).map_err(|d| {
        BaiduError::exact(
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
                BaiduError::from(FaceError::new(
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
            BaiduError::from(FaceError::new(
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
            return Err(BaiduError::exact(
                ErrorCode::MalformedRequest,
                216102,
                "service not support",
                "liveness_control: Facelens has no liveness check; send NONE",
            ));
        }
        Some(other) => {
            return Err(BaiduError::exact(
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
            return Err(BaiduError::exact(
                ErrorCode::MalformedRequest,
                216100,
                "invalid param",
                format!("face_sort_type={other:?} (0 or 1)"),
            ));
        }
    };
    let source = match image_type.to_ascii_uppercase().as_str() {
        "BASE64" => ImageSource::Bytes(decode_base64(image, max_image_bytes)?.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/baidu.md has one row per Facelens code with the Baidu code it becomes.
    #[test]
    fn baidu_doc_matches_the_mapping() {
        let doc = include_str!("../../../../docs/baidu.md");
        for &c in ErrorCode::ALL {
            let (b, _) = baidu_code(&ApiError::from(c));
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {} |", c.code())))
                .unwrap_or_else(|| panic!("docs/baidu.md has no row for {}", c.code()));
            assert!(row.contains(&format!("| {b} ")), "{row} should map to {b}");
        }
        assert_eq!(baidu_code(&ApiError::Limit(LimitHit::Total)).0, 19);
        assert_eq!(baidu_code(&ApiError::Limit(LimitHit::TestTotal)).0, 19);
        assert_eq!(baidu_code(&ApiError::Limit(LimitHit::Daily)).0, 17);
        assert_eq!(baidu_code(&ErrorCode::QuotaExceeded.into()).0, 17);
    }

    #[test]
    fn log_ids_fit_javascript_numbers() {
        assert_eq!(log_id("00000000000000ff"), 255);
        assert!(log_id("ffffffffffffffff") < 1 << 53);
        assert!(log_id("not-hex") < 1 << 53);
    }
}

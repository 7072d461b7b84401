//! `/faceDetect/index`: the contract, exactly.
//!
//! Always HTTP 200 with `{reason, result, error_code}` (the code is in the body, as the
//! original does); Chinese reasons from the one error table; faces largest first; no face is
//! error 200216. The order of checks is [`crate::request`]'s, then the contract's fields
//! ([`juhe_params`]). The body has no room for a detail: an `x-facelens-detail` header carries
//! it for humans (never an internal cause).

use crate::analyze::{Analyzed, Plan};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::{FaceType, Fields, ImageSource, check_image_size, decode_base64};
use crate::request::{Ctx, Protocol};
use crate::state::AppState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_core::juhe::{DetectResult, Envelope, JuheFace};
use facelens_vision::FaceOrder;

/// The Juhe contract.
pub struct Juhe;

impl Protocol for Juhe {
    const API: &'static str = crate::API_FACE_DETECT;
    type Params = ();
    type Answer = Envelope<DetectResult>;
    type Error = ApiError;

    fn api_error(e: &ApiError) -> &ApiError {
        e
    }

    fn parse(fields: &Fields, cfg: &Config) -> Result<((), Plan), ApiError> {
        let p = juhe_params(fields, cfg.max_image_bytes)?;
        Ok((
            (),
            Plan {
                source: p.source,
                face_type: p.face_type,
                max_faces: p.face_num,
                mesh: false,
                order: FaceOrder::Largest,
            },
        ))
    }

    fn conclude(
        _: (),
        analyzed: Analyzed,
    ) -> Result<(Envelope<DetectResult>, Option<ErrorCode>), ApiError> {
        if analyzed.faces.is_empty() {
            return Err(ApiError::new(ErrorCode::NoFace, "no face found"));
        }
        let face_list: Vec<JuheFace> = analyzed
            .faces
            .iter()
            .map(|f| JuheFace::from_face(&f.face, f.token_id.clone()))
            .collect();
        let env = Envelope::success(DetectResult {
            face_num: face_list.len(),
            face_list,
        });
        Ok((env, None))
    }

    fn render(env: Envelope<DetectResult>, st: &AppState, _: &Ctx) -> Response {
        respond(st, env)
    }

    fn render_error(e: &ApiError, st: &AppState, ctx: &Ctx) -> Response {
        let mut resp = respond(st, Envelope::error(e.code()));
        let detail = e.public_detail(&ctx.request_id);
        if let Ok(v) = HeaderValue::from_str(&ascii_only(&detail)) {
            resp.headers_mut().insert("x-facelens-detail", v);
        }
        resp
    }
}

/// A header value from any text: non-ASCII and control characters become `?`, at most 300.
pub fn ascii_only(s: &str) -> String {
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

fn respond(st: &AppState, env: Envelope<DetectResult>) -> Response {
    let env = if st.cfg.legacy_resultcode {
        env.with_legacy()
    } else {
        env
    };
    let body = serde_json::to_vec(&env).unwrap_or_else(|_| {
        r#"{"reason":"系统内部异常","result":null,"error_code":10014}"#
            .as_bytes()
            .to_vec()
    });
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A validated `/faceDetect/index` request (the key is checked separately, first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JuheParams {
    pub source: ImageSource,
    pub face_num: usize,
    pub face_type: FaceType,
}

/// Validate the contract's fields, in the documented order: image present, face_num,
/// face_type, image_type, then the image itself (size, base64).
pub fn juhe_params(f: &Fields, max_image_bytes: usize) -> Result<JuheParams, FaceError> {
    let image = f.get("image");
    if image.is_none() && f.file.is_none() {
        return Err(FaceError::new(
            ErrorCode::MissingParameter,
            "image is missing or empty",
        ));
    }
    let face_num = match f.get("face_num") {
        None => 1,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| FaceError::new(ErrorCode::InvalidFaceNum, format!("face_num={s:?}")))?,
    };
    let face_type = match f.get("face_type") {
        None => FaceType::Live,
        Some(s) => FaceType::from_number(s).ok_or_else(|| {
            FaceError::new(ErrorCode::InvalidFaceType, format!("face_type={s:?}"))
        })?,
    };
    let image_type = match f.get("image_type") {
        None => 1,
        Some(s) => s
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=3).contains(n))
            .ok_or_else(|| {
                FaceError::new(ErrorCode::InvalidImageType, format!("image_type={s:?}"))
            })?,
    };
    let source = match (image_type, image, &f.file) {
        // An uploaded file is the image whatever image_type says about `image`.
        (_, _, Some(bytes)) => {
            check_image_size(bytes.len(), max_image_bytes)?;
            ImageSource::Bytes(bytes.clone())
        }
        (1, Some(b64), None) => ImageSource::Bytes(decode_base64(b64, max_image_bytes)?.into()),
        (2, Some(url), None) => ImageSource::Url(url.to_string()),
        (3, Some(tok), None) => ImageSource::Token(tok.to_string()),
        _ => {
            return Err(FaceError::new(
                ErrorCode::MissingParameter,
                "image is missing or empty",
            ));
        }
    };
    Ok(JuheParams {
        source,
        face_num,
        face_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let p = juhe_params(&Fields::of(&[("image", "aGVsbG8=")]), 100).expect("ok");
        assert_eq!(p.face_num, 1);
        assert_eq!(p.face_type, FaceType::Live);
        assert_eq!(
            p.source,
            ImageSource::Bytes(bytes::Bytes::from_static(b"hello"))
        );
        for (k, v, code) in [
            ("face_num", "0", ErrorCode::InvalidFaceNum),
            ("face_num", "11", ErrorCode::InvalidFaceNum),
            ("face_num", "two", ErrorCode::InvalidFaceNum),
            ("face_num", "-1", ErrorCode::InvalidFaceNum),
            ("face_type", "5", ErrorCode::InvalidFaceType),
            ("face_type", "LIVE", ErrorCode::InvalidFaceType),
            ("image_type", "4", ErrorCode::InvalidImageType),
            ("image_type", "0", ErrorCode::InvalidImageType),
        ] {
            let err = juhe_params(&Fields::of(&[("image", "aGVsbG8="), (k, v)]), 100)
                .expect_err("refused");
            assert_eq!(err.code, code, "{k}={v}");
        }
        let p = juhe_params(
            &Fields::of(&[
                ("image", "http://x/y.jpg"),
                ("image_type", "2"),
                ("face_num", "10"),
            ]),
            100,
        )
        .expect("ok");
        assert_eq!(p.source, ImageSource::Url("http://x/y.jpg".into()));
        assert_eq!(p.face_num, 10);
    }

    #[test]
    fn missing_image() {
        for f in [
            Fields::of(&[]),
            Fields::of(&[("image", "  ")]),
            Fields::of(&[("img", "x")]),
        ] {
            let err = juhe_params(&f, 100).expect_err("missing");
            assert_eq!(err.code, ErrorCode::MissingParameter);
        }
    }
}

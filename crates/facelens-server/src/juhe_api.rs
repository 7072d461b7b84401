//! `/faceDetect/index`: the contract, exactly.
//!
//! Always HTTP 200 with `{reason, result, error_code}` (the code is in the body, as the
//! original does); Chinese reasons from the one error table; faces largest first. The order of
//! checks: a full queue answers busy (200217) before the body is parsed (it is read and discarded), then read the fields (200218 / 200203 for an unreadable or oversized body), then the key
//! and the caller (100xx, see [`crate::access`]), then the fields (2002xx), then the work.

use crate::API_FACE_DETECT;
use crate::input::{juhe_params, read_fields};
use crate::server::{AnsweredCode, AppState, RequestId};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_core::juhe::{DetectResult, Envelope, JuheFace};
use std::net::SocketAddr;
use std::sync::Arc;

/// `GET|POST /faceDetect/index`.
#[utoipa::path(
    post,
    path = "/faceDetect/index",
    tag = "contract",
    request_body(content = crate::openapi::JuheRequest, content_type = "application/x-www-form-urlencoded",
        description = "The contract's fields; also accepted as a GET query, JSON or multipart"),
    responses((status = 200, description = "Always 200: success or an error code in the body", body = crate::openapi::JuheResponse))
)]
pub async fn face_detect(
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
        return answer_error(&st, &e, &request_id);
    }
    let caller = st.caller(peer, req.headers());
    let fields = match read_fields(req, st.max_body_bytes).await {
        Ok(f) => f,
        Err(e) => return answer_error(&st, &e, &request_id),
    };
    let admission = match st
        .gate
        .admit(
            API_FACE_DETECT,
            fields.get("key"),
            fields.get("openid"),
            &caller,
        )
        .await
    {
        Ok(a) => a,
        Err(e) => return answer_error(&st, &e, &request_id),
    };
    let outcome = async {
        let params = juhe_params(&fields, st.max_image_bytes)?;
        let opts = st.options_for(params.face_type, params.face_num);
        let analyzed = st.analyze(params.source, opts).await?;
        if analyzed.faces.is_empty() {
            return Err(FaceError::new(ErrorCode::NoFace, "no face found"));
        }
        Ok(analyzed)
    }
    .await;
    match outcome {
        Ok(analyzed) => {
            if let Err(e) = admission.finish(None).await {
                return answer_error(&st, &e, &request_id);
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
            respond(&st, &env, 0)
        }
        Err(e) => {
            // An error answer is right whether or not its outcome could be recorded.
            admission.fail(e.code).await;
            answer_error(&st, &e, &request_id)
        }
    }
}

fn answer_error(st: &AppState, e: &FaceError, request_id: &str) -> Response {
    if e.code == ErrorCode::Internal {
        tracing::error!(request_id, "internal error: {}", e.detail);
    } else {
        tracing::debug!(request_id, code = e.code.code(), "refused: {}", e.detail);
    }
    let env: Envelope<DetectResult> = Envelope::error(e.code);
    let mut resp = respond(st, &env, e.code.code());
    // The contract's body has no room for the detail; a header carries it for humans.
    if !e.detail.is_empty()
        && let Ok(v) = HeaderValue::from_str(&ascii_only(&e.detail))
    {
        resp.headers_mut().insert("x-facelens-detail", v);
    }
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

fn respond(st: &AppState, env: &Envelope<DetectResult>, code: u32) -> Response {
    let env = if st.legacy_resultcode {
        env.clone().with_legacy()
    } else {
        env.clone()
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
    resp.extensions_mut().insert(AnsweredCode(code));
    resp
}

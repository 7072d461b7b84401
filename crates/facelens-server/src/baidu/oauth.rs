//! Baidu's OAuth step, `GET|POST /oauth/2.0/token`: a Facelens key becomes an access token
//! (30 days) and a refresh token (see [`super::token`]), so that Baidu's SDKs, which always
//! fetch a token first, work unchanged.

use super::ascii_only;
use super::token::{self, Kind, TokenError};
use crate::error::ApiError;
use crate::input::read_fields;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use facelens_core::ErrorCode;
use facelens_store::unix_now;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest token request body: its fields are a few short strings.
const MAX_OAUTH_BODY: usize = 64 * 1024;

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
    let fields = match read_fields(req, MAX_OAUTH_BODY).await {
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
    if let Err(e) = st.gate.screen(None, caller.ip).await {
        let e = ApiError::from(e);
        return match e.code() {
            ErrorCode::IpRateLimited => oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                "too many requests",
                &e.public_detail(""),
            ),
            ErrorCode::BannedIp => oauth_error(
                StatusCode::FORBIDDEN,
                "invalid_client",
                "Client authentication failed",
                &e.public_detail(""),
            ),
            _ => server_error(&format!("{e:?}")),
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
                st.baidu_token_secret(),
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
    let secret = st.baidu_token_secret();
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

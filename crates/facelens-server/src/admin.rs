//! The admin HTTP API, `/admin/v1/...`: the admin CLI's operations over HTTP.
//!
//! Off unless `admin_token` is configured (the routes then do not exist: 404). Guarded by
//! `Authorization: Bearer <admin_token>`, compared in constant time; a public API key never
//! grants access. Answers JSON with real HTTP statuses.

use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use facelens_store::{
    ApiState, IpNet, KeyStatus, KeyUpdate, NewKey, StoreError, secret::ct_eq, unix_now,
};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The admin routes, guarded by `token`.
/// Largest admin request body, bytes.
pub const ADMIN_MAX_BODY: usize = 64 * 1024;

pub fn routes(token: String) -> Router<Arc<AppState>> {
    let token = Arc::new(token);
    Router::new()
        .route("/admin/v1/keys", get(list_keys).post(create_key))
        .route(
            "/admin/v1/keys/{id}",
            get(show_key).patch(update_key).delete(delete_key),
        )
        .route("/admin/v1/keys/{id}/ban", post(ban_key))
        .route("/admin/v1/keys/{id}/unban", post(unban_key))
        .route("/admin/v1/ips", get(list_ips).post(ban_ip))
        .route("/admin/v1/ips/unban", post(unban_ip))
        .route("/admin/v1/apis", get(list_apis))
        .route("/admin/v1/apis/{api}", post(set_api))
        .route("/admin/v1/usage", get(usage))
        // Admin bodies are small JSON objects: 64 KiB is plenty and bounds what even a holder
        // of the token can make the server buffer.
        .layer(axum::extract::DefaultBodyLimit::max(ADMIN_MAX_BODY))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let token = Arc::clone(&token);
            async move { guard(&token, req, next).await }
        }))
}

async fn guard(token: &str, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.is_empty() || !ct_eq(presented.as_bytes(), token.as_bytes()) {
        return err(StatusCode::UNAUTHORIZED, "admin token missing or wrong");
    }
    next.run(req).await
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"message": msg.into()}}))).into_response()
}

fn store_err(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => err(StatusCode::NOT_FOUND, e.to_string()),
        StoreError::Invalid(_) => err(StatusCode::BAD_REQUEST, e.to_string()),
        other => err(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// Key settings in a request body (all optional; `null` clears an optional field on update).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    #[serde(default, with = "double_option")]
    expires_at: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    daily_quota: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    total_quota: Option<Option<i64>>,
    test: Option<bool>,
    allowed_ips: Option<Vec<IpNet>>,
    allowed_referers: Option<Vec<String>>,
    allowed_apis: Option<Vec<String>>,
    #[serde(default, with = "double_option")]
    openid: Option<Option<String>>,
    status: Option<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn parse_status(s: Option<&str>) -> Result<Option<KeyStatus>, String> {
    s.map(|s| s.parse::<KeyStatus>().map_err(|e| e.to_string()))
        .transpose()
}

async fn list_keys(State(st): State<Arc<AppState>>) -> Response {
    match st.store.list_keys().await {
        Ok(keys) => Json(keys).into_response(),
        Err(e) => store_err(e),
    }
}

async fn create_key(State(st): State<Arc<AppState>>, Json(b): Json<KeyBody>) -> Response {
    let status = match parse_status(b.status.as_deref()) {
        Ok(s) => s.unwrap_or(KeyStatus::Active),
        Err(m) => return err(StatusCode::BAD_REQUEST, m),
    };
    let new = NewKey {
        name: b.name.unwrap_or_default(),
        expires_at: b.expires_at.flatten(),
        daily_quota: b.daily_quota.flatten(),
        total_quota: b.total_quota.flatten(),
        test: b.test.unwrap_or(false),
        allowed_ips: b.allowed_ips.unwrap_or_default(),
        allowed_referers: b.allowed_referers.unwrap_or_default(),
        allowed_apis: b.allowed_apis.unwrap_or_default(),
        openid: b.openid.flatten(),
        status,
    };
    match st.store.create_key(new, unix_now()).await {
        Ok(c) => {
            let mut v = serde_json::to_value(&c.key).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("key".into(), json!(c.secret.expose()));
            }
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => store_err(e),
    }
}

async fn show_key(State(st): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    let now = unix_now();
    match st.store.get_key(id).await {
        Ok(Some(k)) => {
            let used = st.store.quota_usage(id, now).await.ok();
            let mut v = serde_json::to_value(&k).unwrap_or_default();
            if let (Some(m), Some(u)) = (v.as_object_mut(), used) {
                m.insert("used_today".into(), json!(u.today));
            }
            Json(v).into_response()
        }
        Ok(None) => err(StatusCode::NOT_FOUND, format!("no key {id}")),
        Err(e) => store_err(e),
    }
}

async fn update_key(
    State(st): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Json(b): Json<KeyBody>,
) -> Response {
    let status = match parse_status(b.status.as_deref()) {
        Ok(s) => s,
        Err(m) => return err(StatusCode::BAD_REQUEST, m),
    };
    let u = KeyUpdate {
        name: b.name,
        expires_at: b.expires_at,
        daily_quota: b.daily_quota,
        total_quota: b.total_quota,
        test: b.test,
        allowed_ips: b.allowed_ips,
        allowed_referers: b.allowed_referers,
        allowed_apis: b.allowed_apis,
        openid: b.openid,
        status,
    };
    match st.store.update_key(id, &u, unix_now()).await {
        Ok(k) => Json(k).into_response(),
        Err(e) => store_err(e),
    }
}

async fn delete_key(State(st): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    match st.store.delete_key(id).await {
        Ok(true) => Json(json!({"deleted": id})).into_response(),
        Ok(false) => err(StatusCode::NOT_FOUND, format!("no key {id}")),
        Err(e) => store_err(e),
    }
}

async fn ban_key(State(st): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    match st.store.ban_key(id, unix_now()).await {
        Ok(k) => Json(k).into_response(),
        Err(e) => store_err(e),
    }
}

async fn unban_key(State(st): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    match st.store.unban_key(id, unix_now()).await {
        Ok(k) => Json(k).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct IpBody {
    net: IpNet,
    reason: Option<String>,
}

async fn list_ips(State(st): State<Arc<AppState>>) -> Response {
    match st.store.list_banned_ips().await {
        Ok(l) => Json(l).into_response(),
        Err(e) => store_err(e),
    }
}

async fn ban_ip(State(st): State<Arc<AppState>>, Json(b): Json<IpBody>) -> Response {
    match st
        .store
        .ban_ip(b.net, b.reason.as_deref(), unix_now())
        .await
    {
        Ok(()) => Json(json!({"banned": b.net})).into_response(),
        Err(e) => store_err(e),
    }
}

async fn unban_ip(State(st): State<Arc<AppState>>, Json(b): Json<IpBody>) -> Response {
    match st.store.unban_ip(b.net).await {
        Ok(true) => Json(json!({"unbanned": b.net})).into_response(),
        Ok(false) => err(StatusCode::NOT_FOUND, format!("{} was not banned", b.net)),
        Err(e) => store_err(e),
    }
}

async fn list_apis(State(st): State<Arc<AppState>>) -> Response {
    match st.store.list_api_states().await {
        Ok(l) => {
            let m: serde_json::Map<String, serde_json::Value> =
                l.into_iter().map(|(a, s)| (a, json!(s.as_str()))).collect();
            Json(m).into_response()
        }
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct ApiBody {
    state: String,
}

async fn set_api(
    State(st): State<Arc<AppState>>,
    Path(api): Path<String>,
    Json(b): Json<ApiBody>,
) -> Response {
    let state: ApiState = match b.state.parse() {
        Ok(s) => s,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("{e}")),
    };
    match st.store.set_api_state(&api, state, unix_now()).await {
        Ok(()) => Json(json!({"api": api, "state": state.as_str()})).into_response(),
        Err(e) => store_err(e),
    }
}

#[derive(Deserialize)]
struct UsageQueryParams {
    key: Option<i64>,
    days: Option<u32>,
}

async fn usage(State(st): State<Arc<AppState>>, Query(q): Query<UsageQueryParams>) -> Response {
    match st
        .store
        .usage_last_days(q.key, q.days.unwrap_or(7), unix_now())
        .await
    {
        Ok(rows) => {
            let v: Vec<_> = rows
                .iter()
                .map(|r| json!({"key_id": r.key_id, "date": r.date(), "code": r.code, "count": r.count}))
                .collect();
            Json(v).into_response()
        }
        Err(e) => store_err(e),
    }
}

//! The one request path every detection protocol goes through.
//!
//! The Juhe contract, the native API and the Baidu v3 API differ in how a request is spelled
//! and how an answer looks, not in what happens in between. So each is a [`Protocol`] —
//! parse the fields, say what to analyse, shape a success, shape an error — and [`handle`] does
//! the shared steps once, in this order:
//!
//! 1. **Room.** A full engine, or a byte budget that cannot take this body, is answered "busy"
//!    at once; the body is then discarded as it arrives (never stored), so the client still
//!    reads the answer on a connection that stays usable.
//! 2. **Read.** The body is read into one buffer under its share of the byte budget; form and
//!    JSON bodies are parsed on the blocking pool (megabytes of url-encoded base64 must not
//!    stall the threads that serve every other connection).
//! 3. **Admit.** The admission policy ([`facelens_store::Gate`]: rate, switch, bans, key,
//!    quota) and a slot in the engine, held by an [`Admission`] guard that settles both.
//! 4. **Validate** the protocol's fields (base64 decoding included, on the blocking pool).
//! 5. **Analyse** ([`crate::analyze`]), then let the protocol conclude (sort, cut, "no face").
//! 6. **Settle** the quota with the outcome, then answer.
//!
//! A fourth protocol is one new file: an implementation of [`Protocol`] and a route.

use crate::access::{Admission, Caller};
use crate::analyze::{Analyzed, Plan, analyze};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::{Fields, check_declared, declared_length, drain, expects_continue, read_fields};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use facelens_core::ErrorCode;
use facelens_store::{ApiKey, KeyCheck, unix_now};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The request id of the current request (a request extension set by the router).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The error code a handler answered with (a response extension, for the access log and
/// metrics).
#[derive(Debug, Clone, Copy)]
pub struct AnsweredCode(pub u32);

/// What a protocol's functions know of the request besides its fields.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub request_id: String,
    pub caller: Caller,
}

/// One way of spelling a detection request and its answer.
pub trait Protocol: Send + Sync + 'static {
    /// The API name keys' allow-lists and the API switches use (`faceDetect`, ...).
    const API: &'static str;
    /// A validated request.
    type Params: Send + 'static;
    /// A success, before it is rendered.
    type Answer: Send;
    /// An error, with whatever this protocol adds to the table's row.
    type Error: From<ApiError> + Send + 'static;

    /// The table's row of an error (usage, metrics, logs).
    fn api_error(e: &Self::Error) -> &ApiError;

    /// The key this request presents, for [`Protocol::find_key`]'s default.
    fn key<'a>(fields: &'a Fields, headers: &'a HeaderMap) -> Option<&'a str> {
        let _ = headers;
        fields.get("key")
    }

    /// The caller's key record (checked after the rate, the API switch and the bans). The
    /// default looks up [`Protocol::key`].
    fn find_key(
        st: &AppState,
        fields: &Fields,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<ApiKey, Self::Error>> + Send {
        let key = Self::key(fields, headers).unwrap_or("").to_string();
        async move { Ok(st.gate.find(&key).await.map_err(ApiError::from)?) }
    }

    /// Validate the fields, in the protocol's documented order. Runs on the blocking pool.
    fn parse(fields: &Fields, cfg: &Config) -> Result<(Self::Params, Plan), Self::Error>;

    /// Turn the analysis into the answer (sort, cut, refuse an empty result...), with the
    /// outcome recorded in the key's usage (`None` = success).
    fn conclude(
        params: Self::Params,
        analyzed: Analyzed,
    ) -> Result<(Self::Answer, Option<ErrorCode>), Self::Error>;

    /// The success answer.
    fn render(answer: Self::Answer, st: &AppState, ctx: &Ctx) -> Response;

    /// The error answer.
    fn render_error(e: &Self::Error, st: &AppState, ctx: &Ctx) -> Response;
}

/// The handler of every detection route: `handle::<Juhe>` and so on.
pub async fn handle<P: Protocol>(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let ctx = Ctx {
        request_id,
        caller: st.caller(peer, req.headers()),
    };
    let (outcome, code) = match run::<P>(&st, &ctx, req).await {
        Ok(answer) => (P::render(answer, &st, &ctx), 0),
        Err(e) => {
            let api = P::api_error(&e);
            api.log(&ctx.request_id);
            (P::render_error(&e, &st, &ctx), api.code().code())
        }
    };
    let mut resp = outcome;
    resp.extensions_mut().insert(AnsweredCode(code));
    resp
}

/// Steps 1-6 of the module docs.
async fn run<P: Protocol>(
    st: &Arc<AppState>,
    ctx: &Ctx,
    req: Request,
) -> Result<P::Answer, P::Error> {
    // 1. Room: the engine, then the bytes.
    let max_body = st.cfg.max_body_bytes;
    if st.engine.is_full() {
        discard_body(req, max_body);
        return Err(busy(st, "all workers busy and the queue full").into());
    }
    if let Err(e) = check_declared(req.headers(), max_body) {
        // Over the limit but not absurdly: read the rest too, so the client, still sending,
        // reads the answer instead of a reset. Far over it: close without reading.
        let declared = declared_length(req.headers()).unwrap_or(u64::MAX);
        let allowance = 2 * max_body as u64;
        if declared <= allowance {
            discard_body(req, usize::try_from(declared).unwrap_or(max_body));
        }
        return Err(ApiError::from(e).into());
    }
    let wanted =
        declared_length(req.headers()).map_or(max_body, |n| usize::try_from(n).unwrap_or(max_body));
    let Some(mut permit) = st.budget.try_take(wanted) else {
        discard_body(req, max_body);
        return Err(busy(st, "too many request bytes in flight").into());
    };
    // 2. Read.
    let headers = req.headers().clone();
    let fields = read_fields(req, max_body).await.map_err(ApiError::from)?;
    permit.shrink_to(fields_size(&fields));
    // 3. Admit.
    let mut admission = admit::<P>(st, ctx, &fields, &headers).await?;
    // 4 and 5.
    let outcome = async {
        // Validation decodes base64: on the blocking pool, and the fields (the request's copy
        // of the image) are dropped there as soon as the parameters hold what they need.
        let cfg = Arc::clone(&st.cfg);
        let (params, plan) = tokio::task::spawn_blocking(move || {
            let parsed = P::parse(&fields, &cfg);
            drop(fields);
            parsed
        })
        .await
        .map_err(|e| {
            ApiError::internal(format!("validating the request was interrupted: {e}"))
        })??;
        let slot = admission
            .take_slot()
            .ok_or_else(|| ApiError::internal("the request's engine slot was already used"))?;
        let analyzed = analyze(st, plan, slot).await?;
        P::conclude(params, analyzed)
    }
    .await;
    // 6. Settle.
    match outcome {
        Ok((answer, usage)) => {
            admission.settle(usage).await?;
            drop(permit);
            Ok(answer)
        }
        Err(e) => {
            admission
                .fail(P::api_error(&e).code(), &ctx.request_id)
                .await;
            Err(e)
        }
    }
}

/// The admission policy, then a slot in the engine.
async fn admit<P: Protocol>(
    st: &AppState,
    ctx: &Ctx,
    fields: &Fields,
    headers: &HeaderMap,
) -> Result<Admission, P::Error> {
    let gate = &st.gate;
    gate.screen(Some(P::API), ctx.caller.ip)
        .await
        .map_err(ApiError::from)?;
    let ticket = if gate.require_key {
        let key = P::find_key(st, fields, headers).await?;
        let check = KeyCheck {
            api: P::API,
            ip: ctx.caller.ip,
            referer: ctx.caller.referer.as_deref(),
            openid: fields.get("openid"),
            now: unix_now(),
        };
        Some(gate.admit_key(&key, &check).await.map_err(ApiError::from)?)
    } else {
        None
    };
    let Some(slot) = st.engine.try_slot() else {
        // Refused after all: the unit reserved goes back uncounted.
        if let Some(t) = ticket
            && let Err(e) = st.store.finish(t, unix_now(), Some(ErrorCode::Busy)).await
        {
            tracing::error!(
                request_id = ctx.request_id,
                "recording a busy refusal failed: {e}"
            );
        }
        return Err(busy(st, "all workers busy and the queue full").into());
    };
    Ok(Admission::new(Arc::clone(&st.store), ticket, slot))
}

fn busy(st: &AppState, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Busy,
        format!(
            "{why} ({} workers, {} queued at most)",
            st.engine.workers(),
            st.engine.capacity()
        ),
    )
}

/// Discard a refused request's body as it arrives, after the answer: the client can read
/// the answer, and keeps a usable connection, without the server holding any of the body.
/// A client that waits for `100 Continue` never sends it, so nothing is read then. At most
/// `limit` bytes are read, within the body deadline.
fn discard_body(req: Request, limit: usize) {
    if expects_continue(req.headers()) {
        return;
    }
    let body: Body = req.into_body();
    tokio::spawn(drain(body, limit));
}

/// About how many bytes the fields hold (what the request keeps of its body).
fn fields_size(f: &Fields) -> usize {
    f.file.as_ref().map_or(0, |b| b.len()) + f.text_bytes()
}

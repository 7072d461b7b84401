//! How a request that does not succeed ends: one row of the error table, plus what only the
//! server knows about it.
//!
//! Two things are kept apart here. A *refusal* (a bad parameter, an unknown key, a full queue)
//! carries a detail that helps the client and is shown to it. An *internal* failure (a store
//! or inference error, a panic) carries a detail that helps the operator and may name files,
//! tables or addresses: it is logged with the request id and never leaves the process — the
//! client gets the contract's generic message and the request id to quote. Quota refusals say
//! which limit was hit (daily or total), which the Baidu endpoint tells apart.

use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_store::{LimitHit, Refusal, StoreError};

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Refused with a code of the table; the detail is meant for the client.
    Refused(FaceError),
    /// The key's quota, or a test key's limit, is used up.
    Limit(LimitHit),
    /// Something failed inside (10014); the detail is for the log only.
    Internal(String),
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        FaceError::new(code, detail).into()
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal(detail.into())
    }

    /// The table's row.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Refused(e) => e.code,
            ApiError::Limit(hit) => hit.code(),
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What the client may be told beyond the code's message. An internal failure says only
    /// that it happened and which request id to quote; its cause is in the log.
    pub fn public_detail(&self, request_id: &str) -> String {
        match self {
            ApiError::Refused(e) => e.detail.clone(),
            ApiError::Limit(LimitHit::Daily | LimitHit::TestDaily) => {
                "the daily limit is used up".into()
            }
            ApiError::Limit(LimitHit::Total | LimitHit::TestTotal) => {
                "the total limit is used up".into()
            }
            ApiError::Internal(_) => {
                format!(
                    "internal error; the server log has its cause under request id {request_id}"
                )
            }
        }
    }

    /// Write the error to the log: internal failures as errors with their cause, refusals at
    /// debug level.
    pub fn log(&self, request_id: &str) {
        match self {
            ApiError::Internal(cause) => tracing::error!(request_id, "internal error: {cause}"),
            other => tracing::debug!(
                request_id,
                code = other.code().code(),
                "refused: {}",
                other.public_detail(request_id)
            ),
        }
    }
}

impl From<FaceError> for ApiError {
    /// An error of the table; one that is internal keeps its detail for the log only.
    fn from(e: FaceError) -> Self {
        if e.code == ErrorCode::Internal {
            ApiError::Internal(e.detail)
        } else {
            ApiError::Refused(e)
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        FaceError::from(code).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Refused(code) => code.into(),
            Refusal::Limit(hit) => ApiError::Limit(hit),
            Refusal::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_never_reach_the_client() {
        let e: ApiError = FaceError::new(ErrorCode::Internal, "database /var/x locked").into();
        assert_eq!(e.code(), ErrorCode::Internal);
        let shown = e.public_detail("abc123");
        assert!(!shown.contains("/var/x"), "{shown}");
        assert!(shown.contains("abc123"), "{shown}");
        let e: ApiError = StoreError::Corrupt("table api_keys".into()).into();
        assert!(!e.public_detail("r").contains("api_keys"));
        // A refusal's detail is the client's to see.
        let e = ApiError::new(ErrorCode::InvalidFaceNum, "face_num=\"11\"");
        assert_eq!(e.public_detail("r"), "face_num=\"11\"");
    }

    #[test]
    fn limits_are_told_apart() {
        let daily: ApiError = Refusal::Limit(LimitHit::Daily).into();
        let total: ApiError = Refusal::Limit(LimitHit::TestTotal).into();
        assert_eq!(daily.code(), ErrorCode::QuotaExceeded);
        assert_eq!(total.code(), ErrorCode::TestKeyLimit);
        assert_ne!(daily.public_detail("r"), total.public_detail("r"));
    }
}

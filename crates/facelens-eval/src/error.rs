//! The single error type of the crate.
//!
//! Loader errors carry the 1-based line number (blank lines included) so a broken manifest line
//! can be found directly in the file.

/// Errors from parsing manifests / predictions and from metrics that are undefined on the input.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A line is not valid JSON or does not have the expected shape.
    #[error("{what} line {line}: invalid JSON: {source}")]
    Json {
        what: &'static str,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A line parsed but its content is inconsistent (length mismatch, duplicate, conflict...).
    #[error("{what} line {line}: {msg}")]
    InvalidLine {
        what: &'static str,
        line: usize,
        msg: String,
    },
    /// A caller-supplied argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The metric is mathematically undefined for this input (e.g. AUC without negatives).
    #[error("metric undefined: {0}")]
    Undefined(&'static str),
}

//! Reading a request's fields, whatever way the client sent them, and the image sources.
//!
//! Juhe clients in the wild send the same fields as a form body (the original), a query string,
//! JSON or multipart; all four end up here as one list of name/value pairs plus, for multipart,
//! an uploaded file. Validation then follows each protocol's table in a fixed order, so a
//! request with several problems always gets the same code.
//!
//! Memory: a body is read into one buffer sized by its declared length (no chunk list to
//! concatenate), under the byte budget the request path took for it ([`crate::budget`]).
//! Turning that buffer into fields (url-decoding or JSON-parsing megabytes of base64) is CPU
//! work, so it runs on the blocking pool, never on the threads that answer `/healthz` and every
//! other connection; the buffer is dropped as soon as the fields hold their copy.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, Method, Request, header};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use http_body_util::BodyExt as _;

/// Most fields a request may carry (form pairs, JSON members or multipart parts).
pub const MAX_FIELDS: usize = 64;

/// The fields of one request.
#[derive(Debug, Default)]
pub struct Fields {
    pairs: Vec<(String, String)>,
    /// A file uploaded as multipart (its part name is `image` or `file`).
    pub file: Option<Bytes>,
}

impl Fields {
    /// Fields from string pairs (unit tests).
    #[cfg(test)]
    pub fn of(p: &[(&str, &str)]) -> Self {
        Self {
            pairs: p
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            file: None,
        }
    }

    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Bytes held by the text fields.
    pub fn text_bytes(&self) -> usize {
        self.pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    fn push_all(&mut self, more: Vec<(String, String)>) -> Result<(), FaceError> {
        self.pairs.extend(more);
        self.check_count()
    }

    fn check_count(&self) -> Result<(), FaceError> {
        if self.pairs.len() > MAX_FIELDS {
            return Err(FaceError::new(
                ErrorCode::MalformedRequest,
                format!("more than {MAX_FIELDS} fields"),
            ));
        }
        Ok(())
    }
}

fn malformed(detail: impl Into<String>) -> FaceError {
    FaceError::new(ErrorCode::MalformedRequest, detail)
}

fn parse_query(q: &[u8]) -> Result<Vec<(String, String)>, FaceError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(q)
        .map_err(|e| malformed(format!("form or query string: {e}")))
}

/// Read and discard a request body the answer does not need (a busy refusal), up to
/// `max_body` bytes and within the body deadline, keeping none of it. Answering without reading
/// it would make the server close the connection with the client still sending, and the client
/// would see a reset instead of the answer; reading without keeping costs no memory.
pub async fn drain(body: Body, max_body: usize) {
    let mut body = body;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            seen += data.len();
            if seen > max_body {
                break;
            }
        }
    }
}

/// Whether the client waits for `100 Continue` before it sends its body: then a refusal is
/// answered without reading the body, which the client will not send.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// The body length the client declared, if it declared one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
}

/// Refused before a byte is read: a declared body over `max_body`.
pub fn check_declared(headers: &HeaderMap, max_body: usize) -> Result<(), FaceError> {
    match declared_length(headers) {
        Some(n) if n > max_body as u64 => Err(FaceError::new(
            ErrorCode::ImageTooLarge,
            format!("the request body ({n} bytes) is over {max_body} bytes"),
        )),
        _ => Ok(()),
    }
}

/// Read every field of `req`: the query string, then the body by its content type. Form and
/// JSON bodies are parsed on the blocking pool.
pub async fn read_fields(req: Request<Body>, max_body: usize) -> Result<Fields, FaceError> {
    check_declared(req.headers(), max_body)?;
    let mut fields = Fields::default();
    if let Some(q) = req.uri().query() {
        fields.push_all(parse_query(q.as_bytes())?)?;
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return Ok(fields);
    }
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/form-data") {
        read_multipart(req, max_body, &mut fields).await?;
        return Ok(fields);
    }
    let declared = declared_length(req.headers());
    let body = read_body(req.into_body(), declared, max_body).await?;
    if body.is_empty() {
        return Ok(fields);
    }
    tokio::task::spawn_blocking(move || {
        parse_body(&ctype, &body, &mut fields)?;
        Ok(fields)
    })
    .await
    .map_err(|e| malformed(format!("parsing the body was interrupted: {e}")))?
}

/// The whole body in one buffer, at most `max_body` bytes.
async fn read_body(body: Body, declared: Option<u64>, max_body: usize) -> Result<Bytes, FaceError> {
    let too_big = || {
        FaceError::new(
            ErrorCode::ImageTooLarge,
            format!("the request body is over {max_body} bytes"),
        )
    };
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max_body).min(max_body));
    let mut buf = BytesMut::with_capacity(capacity);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e, max_body))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > max_body {
                return Err(too_big());
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

/// Form (the default without a content type) or JSON fields from a body.
fn parse_body(ctype: &str, body: &[u8], fields: &mut Fields) -> Result<(), FaceError> {
    if ctype.starts_with("application/json") || (ctype.is_empty() && body.first() == Some(&b'{')) {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = v else {
            return Err(malformed("the JSON body must be an object"));
        };
        if map.len() > MAX_FIELDS {
            return Err(malformed(format!("more than {MAX_FIELDS} fields")));
        }
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            let s = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => return Err(malformed(format!("field {k:?} must be a string or number"))),
            };
            pairs.push((k, s));
        }
        fields.push_all(pairs)
    } else {
        // application/x-www-form-urlencoded, and what clients send without a content type.
        if std::str::from_utf8(body).is_err() {
            return Err(malformed("the form body is not UTF-8 text"));
        }
        fields.push_all(parse_query(body)?)
    }
}

fn body_error(e: &axum::Error, max_body: usize) -> FaceError {
    let msg = e.to_string();
    let too_big = std::error::Error::source(e)
        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        || msg.contains("length limit");
    if too_big {
        FaceError::new(
            ErrorCode::ImageTooLarge,
            format!("the request body is over {max_body} bytes"),
        )
    } else {
        malformed(format!("reading the body: {msg}"))
    }
}

async fn read_multipart(
    req: Request<Body>,
    max_body: usize,
    fields: &mut Fields,
) -> Result<(), FaceError> {
    let (parts, body) = req.into_parts();
    let limited = Body::new(http_body_util::Limited::new(body, max_body));
    let req = Request::from_parts(parts, limited);
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| malformed(format!("multipart: {e}")))?;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(&e, max_body)),
        };
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some();
        let data = field
            .bytes()
            .await
            .map_err(|e| multipart_error(&e, max_body))?;
        if is_file || name == "file" {
            if fields.file.is_some() {
                return Err(malformed("more than one file uploaded"));
            }
            fields.file = Some(data);
        } else {
            let value = std::str::from_utf8(&data)
                .map_err(|_| malformed(format!("field {name:?} is not UTF-8 text")))?
                .to_owned();
            drop(data);
            fields.push_all(vec![(name, value)])?;
        }
    }
    Ok(())
}

fn multipart_error(e: &axum::extract::multipart::MultipartError, max_body: usize) -> FaceError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        FaceError::new(
            ErrorCode::ImageTooLarge,
            format!("the request body is over {max_body} bytes"),
        )
    } else {
        malformed(format!("multipart: {}", e.body_text()))
    }
}

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// The file's bytes (base64 decoded, or uploaded).
    Bytes(Bytes),
    /// `image_type=2`.
    Url(String),
    /// `image_type=3`.
    Token(String),
}

/// The contract's `face_type`: what kind of photo it is (it tunes detection, see
/// docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceType {
    /// 1, 生活照: an everyday photo.
    Live,
    /// 2, 身份证照: a photo of an ID card.
    IdCard,
    /// 3, 带水印证件照: a watermarked ID photo.
    Watermark,
    /// 4, 证件照: a certificate (passport-style) photo.
    Cert,
}

impl FaceType {
    pub fn from_number(n: &str) -> Option<Self> {
        match n.parse::<u8>().ok()? {
            1 => Some(Self::Live),
            2 => Some(Self::IdCard),
            3 => Some(Self::Watermark),
            4 => Some(Self::Cert),
            _ => None,
        }
    }

    /// Also Baidu's names (`LIVE`, `IDCARD`, `WATERMARK`, `CERT`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::from_number(s).or_else(|| match s.to_ascii_uppercase().as_str() {
            "LIVE" => Some(Self::Live),
            "IDCARD" => Some(Self::IdCard),
            "WATERMARK" => Some(Self::Watermark),
            "CERT" => Some(Self::Cert),
            _ => None,
        })
    }
}

pub fn check_image_size(len: usize, max: usize) -> Result<(), FaceError> {
    if len > max {
        return Err(FaceError::new(
            ErrorCode::ImageTooLarge,
            format!("{len} bytes, the limit is {max}"),
        ));
    }
    Ok(())
}

/// Decode the contract's base64 image. Accepted leniently, as clients send it: standard or
/// URL-safe alphabet, with or without padding, with line breaks, and with a `data:...;base64,`
/// prefix (the contract says to leave it out; it is harmless to accept).
pub fn decode_base64(s: &str, max_image_bytes: usize) -> Result<Vec<u8>, FaceError> {
    let s = match s.strip_prefix("data:") {
        Some(rest) => match rest.split_once(',') {
            Some((meta, data)) if meta.ends_with(";base64") => data,
            _ => {
                return Err(FaceError::new(
                    ErrorCode::InvalidBase64,
                    "a data: URL must be ;base64",
                ));
            }
        },
        None => s,
    };
    // Base64 is 4/3 of the bytes: refuse before decoding what cannot fit.
    let max_encoded = max_image_bytes.div_ceil(3) * 4;
    // A space is a `+` that a form decoder turned into a space (the client forgot to
    // url-encode); base64 itself never holds spaces. Line breaks are wrapping: dropped.
    let compact: Vec<u8> = s
        .bytes()
        .filter(|b| *b == b' ' || !b.is_ascii_whitespace())
        .map(|b| match b {
            b'-' | b' ' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    if compact.len() > max_encoded + 4 {
        return Err(FaceError::new(
            ErrorCode::ImageTooLarge,
            format!(
                "{} base64 characters encode more than {max_image_bytes} bytes",
                compact.len()
            ),
        ));
    }
    let trimmed = compact
        .strip_suffix(b"==")
        .or_else(|| compact.strip_suffix(b"="))
        .unwrap_or(&compact);
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|e| FaceError::new(ErrorCode::InvalidBase64, e.to_string()))?;
    if bytes.is_empty() {
        return Err(FaceError::new(
            ErrorCode::MissingParameter,
            "image is empty",
        ));
    }
    check_image_size(bytes.len(), max_image_bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_variants() {
        let want = b"\xfb\xff\xbf hello".to_vec();
        for s in [
            "+/+/IGhlbGxv",
            "-_-_IGhlbGxv",
            "+/+/\nIGhl\r\nbGxv",
            " / /IGhlbGxv",
            "data:image/jpeg;base64,+/+/IGhlbGxv",
        ] {
            assert_eq!(decode_base64(s, 100).expect(s), want, "{s}");
        }
        assert_eq!(decode_base64("aGVsbG8", 100).expect("no pad"), b"hello");
        for s in ["a", "aGVsbG8=!", "data:image/jpeg,abc", "%%%%"] {
            let err = decode_base64(s, 100).expect_err(s);
            assert_eq!(err.code, ErrorCode::InvalidBase64, "{s}");
        }
        // 5 bytes over a 4-byte limit.
        let err = decode_base64("aGVsbG8=", 4).expect_err("too big");
        assert_eq!(err.code, ErrorCode::ImageTooLarge);
        // Far too long is refused before decoding.
        let long = "A".repeat(1000);
        let err = decode_base64(&long, 100).expect_err("too long");
        assert_eq!(err.code, ErrorCode::ImageTooLarge);
    }

    #[test]
    fn face_type_names() {
        assert_eq!(FaceType::parse("IDCARD"), Some(FaceType::IdCard));
        assert_eq!(FaceType::parse("4"), Some(FaceType::Cert));
        assert_eq!(FaceType::parse("x"), None);
    }

    #[test]
    fn first_value_wins_and_trims() {
        let f = Fields::of(&[("key", " abc "), ("key", "def")]);
        assert_eq!(f.get("key"), Some("abc"));
        assert_eq!(f.get("nope"), None);
    }
}

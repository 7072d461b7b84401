//! The request parser: `read_fields` on a request whose content type is picked by the first
//! input byte and whose body (or query string) is the rest, then `juhe_params` on what it read.
//!
//! First byte: bits 0..=2 pick the shape (0 form, 1 JSON, 2 multipart with the boundary
//! `FuzzBoundary`, 3 no content type, 4..=7 GET with the rest as the query string); bit 3 picks
//! the body limit (64 KiB or 512 bytes, so the limit paths are reached too); bit 4 adds a
//! `Content-Length` header with the body's real length, bits 4 and 5 together one that claims
//! 1 byte (the body is not framed by hyper here, so the lie reaches the parser).
//! It must never panic; errors are expected. When `juhe_params` accepts, the image it returns
//! must respect the limit it was given.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request, header};
use facelens_server::input::{ImageSource, juhe_params, read_fields};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const BOUNDARY: &str = "FuzzBoundary";
const MAX_IMAGE: usize = 4 * 1024 * 1024;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
    })
}

/// The query string as a valid URI: the bytes as they are when the URI parser takes them,
/// otherwise every byte outside the unreserved/sub-delims set percent-encoded.
fn query_uri(q: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(q) {
        let uri = format!("/faceDetect/index?{s}");
        if uri.parse::<axum::http::Uri>().is_ok() {
            return uri;
        }
    }
    let mut uri = String::from("/faceDetect/index?");
    for &b in q {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let max_body = if sel & 8 == 0 { 64 * 1024 } else { 512 };
    let mut builder = Request::builder();
    let declared = match sel & 0x30 {
        0x10 => Some(rest.len()),
        0x30 => Some(1),
        _ => None,
    };
    if let Some(n) = declared
        && sel & 7 < 4
    {
        builder = builder.header(header::CONTENT_LENGTH, n.to_string());
    }
    let req = match sel & 7 {
        0 => builder
            .method(Method::POST)
            .uri("/faceDetect/index")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(rest.to_vec())),
        1 => builder
            .method(Method::POST)
            .uri("/faceDetect/index")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(rest.to_vec())),
        2 => builder
            .method(Method::POST)
            .uri("/faceDetect/index")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(rest.to_vec())),
        3 => builder
            .method(Method::POST)
            .uri("/faceDetect/index")
            .body(Body::from(rest.to_vec())),
        _ => builder
            .method(Method::GET)
            .uri(query_uri(rest))
            .body(Body::empty()),
    };
    let Ok(req) = req else {
        return;
    };
    let result = runtime().block_on(read_fields(req, max_body));
    if sel & 7 < 4
        && declared.is_some_and(|n| n > max_body)
    {
        assert!(result.is_err(), "a declared length over the limit was read");
    }
    let Ok(fields) = result else {
        return;
    };
    if let Some(file) = &fields.file {
        assert!(file.len() <= max_body, "an uploaded file larger than the body limit");
    }
    if let Ok(p) = juhe_params(&fields, MAX_IMAGE) {
        assert!((1..=10).contains(&p.face_num), "face_num {}", p.face_num);
        if let ImageSource::Bytes(b) = &p.source {
            assert!(!b.is_empty() || fields.file.is_some(), "an empty base64 image accepted");
            assert!(b.len() <= MAX_IMAGE, "image of {} bytes over the limit", b.len());
        }
    }
});

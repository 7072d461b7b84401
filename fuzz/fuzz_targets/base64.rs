//! The base64 `image` field: `juhe_params` with `image` = the input (as text) and
//! `image_type=1`, and `decode_base64` directly, under a limit picked by the first two bytes.
//!
//! Never panics; an accepted image is non-empty and within the limit; and wherever the strict
//! standard engine (canonical padding) decodes the text to a non-empty image within the limit,
//! the lenient decoder must accept it and return the same bytes.
#![no_main]

use base64::Engine as _;
use facelens_server::input::{Fields, ImageSource, decode_base64, juhe_params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // 1 ..= 65536 bytes; values near 0 give tight limits often.
    let limit = u16::from_le_bytes([data[0], data[1]]) as usize + 1;
    let text = String::from_utf8_lossy(&data[2..]).into_owned();

    let direct = decode_base64(&text, limit);
    if let Ok(b) = &direct {
        assert!(!b.is_empty(), "empty image accepted");
        assert!(b.len() <= limit, "{} bytes decoded, limit {limit}", b.len());
    }

    if let Ok(strict) = base64::engine::general_purpose::STANDARD.decode(text.as_bytes())
        && !strict.is_empty()
        && strict.len() <= limit
    {
        match &direct {
            Ok(b) => assert_eq!(b, &strict, "lenient and strict decoders disagree"),
            Err(e) => panic!("valid standard base64 ({} bytes) refused: {e:?}", strict.len()),
        }
    }

    let fields = Fields::from_pairs(vec![
        ("image".to_string(), text),
        ("image_type".to_string(), "1".to_string()),
    ]);
    if let Ok(p) = juhe_params(&fields, limit) {
        let ImageSource::Bytes(b) = p.source else {
            panic!("image_type=1 gave {:?}", p.source);
        };
        assert!(!b.is_empty(), "empty image accepted");
        assert!(b.len() <= limit, "{} bytes decoded, limit {limit}", b.len());
    }
});

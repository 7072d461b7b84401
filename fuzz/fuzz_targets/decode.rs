//! Image decoding: `facelens_imaging::decode` (format sniffing, header size check, decode with
//! an allocation cap, EXIF orientation) with the default limits on arbitrary bytes.
//!
//! Never panics; a successful decode respects the limits: both sides within
//! `min_side..=max_side`, a buffer of exactly w × h × 3 bytes, an EXIF orientation of 1..=8.
#![no_main]

use facelens_imaging::{DecodeLimits, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    if let Ok(d) = decode(data, &limits) {
        let (w, h) = d.image.dimensions();
        assert!(
            (limits.min_side..=limits.max_side).contains(&w)
                && (limits.min_side..=limits.max_side).contains(&h),
            "decoded {w}x{h} outside {}..={}",
            limits.min_side,
            limits.max_side
        );
        assert_eq!(d.image.as_raw().len(), w as usize * h as usize * 3);
        assert!((1..=8).contains(&d.orientation), "orientation {}", d.orientation);
    }
});

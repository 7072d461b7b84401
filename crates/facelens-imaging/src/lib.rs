//! Turning untrusted bytes into an upright RGB image, and the pixel operations the models need.
//!
//! Why this is its own crate: decoding is where hostile input meets the process first, so the
//! limits live here and are enforced *before* any full decode — the format is sniffed from magic
//! bytes, the header's dimensions are checked against the contract (shortest side ≥ 15 px,
//! longest ≤ 4096 px) so a 60000×60000 "decompression bomb" is refused without allocating, and
//! the decoder gets an allocation cap as a second line of defence. EXIF orientation is applied
//! right after decoding, so everything downstream (boxes, landmarks) lives in the coordinates
//! of the image as a person sees it.

use facelens_core::{Affine, ErrorCode, error::FaceError};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;

pub use image;
pub use image::RgbImage as Rgb;

/// The image formats the contract accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Bmp,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Bmp => "bmp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Bmp => ImageFormat::Bmp,
        }
    }
}

/// Identify a supported format from its magic bytes; `None` for anything else.
pub fn sniff_format(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.len() >= 14 && bytes.starts_with(b"BM") {
        Some(Format::Bmp)
    } else {
        None
    }
}

/// Limits enforced on every decode. The defaults are the contract's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes (the contract: 4 MB).
    pub max_file_bytes: usize,
    /// Smallest accepted shortest side, in pixels.
    pub min_side: u32,
    /// Largest accepted longest side, in pixels.
    pub max_side: u32,
    /// Decoder allocation cap in bytes (a safety net behind the header check).
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 4 * 1024 * 1024,
            min_side: 15,
            max_side: 4096,
            // 4096 × 4096 × 4 bytes (RGBA) × 2 for conversions.
            max_alloc: 4096 * 4096 * 4 * 2,
        }
    }
}

/// A decoded, upright image.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: RgbImage,
    pub format: Format,
    /// The EXIF orientation tag that was applied (1 = none).
    pub orientation: u8,
}

fn corrupt(e: impl std::fmt::Display) -> FaceError {
    FaceError::new(ErrorCode::CorruptImage, format!("cannot decode image: {e}"))
}

/// Check `w × h` against the limits.
pub fn check_dimensions(w: u32, h: u32, limits: &DecodeLimits) -> Result<(), FaceError> {
    let (short, long) = (w.min(h), w.max(h));
    if long > limits.max_side {
        return Err(FaceError::new(
            ErrorCode::ImageDimensionsTooLarge,
            format!(
                "image is {w}x{h}; the longest side may be at most {} px",
                limits.max_side
            ),
        ));
    }
    if short < limits.min_side {
        return Err(FaceError::new(
            ErrorCode::ImageTooSmall,
            format!(
                "image is {w}x{h}; the shortest side must be at least {} px",
                limits.min_side
            ),
        ));
    }
    Ok(())
}

/// Decode `bytes` (jpg / png / bmp) into an upright RGB image, enforcing `limits`.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, FaceError> {
    if bytes.is_empty() {
        return Err(FaceError::new(
            ErrorCode::MissingParameter,
            "the image is empty",
        ));
    }
    if bytes.len() > limits.max_file_bytes {
        return Err(FaceError::new(
            ErrorCode::ImageTooLarge,
            format!(
                "image is {} bytes; at most {} are accepted",
                bytes.len(),
                limits.max_file_bytes
            ),
        ));
    }
    let format = sniff_format(bytes).ok_or_else(|| {
        FaceError::new(
            ErrorCode::UnsupportedFormat,
            "not a jpg, png or bmp file (unknown magic bytes)",
        )
    })?;

    // Refuse oversized images from the header alone, before the decoder allocates anything.
    if let Some((w, h)) = probe_dimensions(bytes, format) {
        check_dimensions(w, h, limits)?;
    }

    // The JPEG decoder fills a file cut inside its entropy-coded data with grey and reports
    // success; a JPEG must carry its end-of-image marker after the scan data.
    if format == Format::Jpeg && !jpeg_has_end_marker(bytes) {
        return Err(FaceError::new(
            ErrorCode::CorruptImage,
            "the JPEG is truncated (no end-of-image marker after its scan data)",
        ));
    }

    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(format.image_format());
    let mut img_limits = Limits::default();
    img_limits.max_image_width = Some(limits.max_side);
    img_limits.max_image_height = Some(limits.max_side);
    img_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(img_limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, limits))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, limits))?;
    img.apply_orientation(orientation);
    Ok(Decoded {
        image: img.into_rgb8(),
        format,
        orientation: orientation.to_exif(),
    })
}

/// Read the image's declared size from its header without decoding it. `None` when the header
/// is too short or malformed (the decoder then reports the corruption).
pub fn probe_dimensions(bytes: &[u8], format: Format) -> Option<(u32, u32)> {
    let be32 = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match format {
        Format::Png => {
            if bytes.get(12..16)? != b"IHDR" {
                return None;
            }
            Some((be32(16)?, be32(20)?))
        }
        Format::Bmp => {
            let le32 = |i: usize| {
                bytes
                    .get(i..i + 4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            let header_size = le32(14)?;
            if header_size == 12 {
                // OS/2 BITMAPCOREHEADER: 16-bit sizes.
                let w = u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]);
                let h = u16::from_le_bytes([*bytes.get(20)?, *bytes.get(21)?]);
                return Some((w as u32, h as u32));
            }
            Some((le32(18)?.unsigned_abs(), le32(22)?.unsigned_abs()))
        }
        Format::Jpeg => {
            // Walk the marker segments up to the first start-of-frame.
            let mut i = 2usize;
            loop {
                while *bytes.get(i)? != 0xFF {
                    i += 1;
                }
                while *bytes.get(i)? == 0xFF {
                    i += 1;
                }
                let marker = *bytes.get(i)?;
                i += 1;
                if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
                    continue;
                }
                if marker == 0xD9 || marker == 0xDA {
                    return None;
                }
                let len = u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as usize;
                let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if is_sof {
                    let h = u16::from_be_bytes([*bytes.get(i + 3)?, *bytes.get(i + 4)?]);
                    let w = u16::from_be_bytes([*bytes.get(i + 5)?, *bytes.get(i + 6)?]);
                    return Some((w as u32, h as u32));
                }
                if len < 2 {
                    return None;
                }
                i += len;
            }
        }
    }
}

/// Whether the JPEG has an end-of-image marker (`FF D9`) after the start of its first scan.
/// Marker segments before the scan are skipped by their lengths, so an EXIF thumbnail's own end
/// marker does not count. Inside entropy-coded data `FF` is always followed by `00` or a restart
/// marker, so `FF D9` there can only be the real end.
pub fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let mut i = 2usize;
    loop {
        // Find the next marker.
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue,
            0xD9 => return false,
            0xDA => return bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
            _ => {
                let (Some(&a), Some(&b)) = (bytes.get(i), bytes.get(i + 1)) else {
                    return false;
                };
                let len = u16::from_be_bytes([a, b]) as usize;
                if len < 2 {
                    return false;
                }
                i += len;
            }
        }
    }
}

fn classify(e: image::ImageError, limits: &DecodeLimits) -> FaceError {
    match e {
        image::ImageError::Limits(l) => FaceError::new(
            ErrorCode::ImageDimensionsTooLarge,
            format!(
                "image exceeds the decoder limits ({l}); the longest side may be at most {} px",
                limits.max_side
            ),
        ),
        image::ImageError::Unsupported(u) => FaceError::new(
            ErrorCode::UnsupportedFormat,
            format!("unsupported image variant: {u}"),
        ),
        other => corrupt(other),
    }
}

/// Resize an RGB image to exactly `w × h` (bilinear, fast SIMD path).
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    use fast_image_resize as fr;
    let (sw, sh) = img.dimensions();
    if (sw, sh) == (w, h) {
        return img.clone();
    }
    let w = w.max(1);
    let h = h.max(1);
    let src = match fr::images::ImageRef::new(sw, sh, img.as_raw(), fr::PixelType::U8x3) {
        Ok(s) => s,
        Err(_) => return resize_fallback(img, w, h),
    };
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
    let opts =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    let mut resizer = fr::Resizer::new();
    if resizer.resize(&src, &mut dst, &opts).is_err() {
        return resize_fallback(img, w, h);
    }
    RgbImage::from_raw(w, h, dst.into_vec()).unwrap_or_else(|| resize_fallback(img, w, h))
}

fn resize_fallback(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

/// Sample `img` through `dst_to_src` into an `out_w × out_h` RGB image (bilinear; pixels that
/// fall outside the source are black). Used for aligned face crops.
///
/// `src_to_dst` maps source coordinates to output coordinates. When the crop shrinks the
/// source by more than 2×, the source is first box-downscaled so that bilinear sampling does
/// not alias.
pub fn warp_affine(img: &RgbImage, src_to_dst: &Affine, out_w: u32, out_h: u32) -> RgbImage {
    let mut out = RgbImage::new(out_w, out_h);
    let dst: &mut [u8] = out.as_mut();
    warp_with_preshrink(img, src_to_dst, out_w, out_h, |o, px| {
        for c in 0..3 {
            dst[o * 3 + c] = px[c].round().clamp(0.0, 255.0) as u8;
        }
    });
    out
}

/// Like [`warp_affine`] but without rounding to bytes: interleaved RGB `f32` in 0..255,
/// `out_w × out_h × 3`. Model inputs use this, so that a sub-pixel change of the crop gives a
/// proportionally small change of the input instead of flipping pixels between byte levels.
pub fn warp_affine_f32(img: &RgbImage, src_to_dst: &Affine, out_w: u32, out_h: u32) -> Vec<f32> {
    let mut out = vec![0.0f32; (out_w * out_h * 3) as usize];
    warp_with_preshrink(img, src_to_dst, out_w, out_h, |o, px| {
        out[o * 3..o * 3 + 3].copy_from_slice(&px);
    });
    out
}

fn warp_with_preshrink(
    img: &RgbImage,
    src_to_dst: &Affine,
    out_w: u32,
    out_h: u32,
    put: impl FnMut(usize, [f32; 3]),
) {
    let scale = src_to_dst.scale();
    if scale > 0.0 && scale < 0.5 {
        // Pre-shrink so that the remaining warp scale is about 1. Only the part of the shrunk
        // image that the crop reads is computed: on a 12-megapixel photo, shrinking the whole
        // image for every face crop cost more than all the models together.
        let f = (1.0 / scale).floor().max(1.0);
        let (sw, sh) = img.dimensions();
        let nw = ((sw as f32 / f).round() as u32).max(1);
        let nh = ((sh as f32 / f).round() as u32).max(1);
        let sx = nw as f32 / sw as f32;
        let sy = nh as f32 / sh as f32;
        let Some((rx, ry, rw, rh)) = shrunk_region(src_to_dst, out_w, out_h, sx, sy, nw, nh) else {
            return; // the crop lies wholly outside the image: the caller's zero fill stays
        };
        let part = resize_part(img, (rx, ry, rw, rh), (sx, sy), (nw, nh));
        // Part pixel (x, y) is shrunk pixel (x + rx, y + ry), i.e. source ((x + rx) / sx, ...).
        let undo = Affine {
            m: [1.0 / sx, 0.0, rx as f32 / sx, 0.0, 1.0 / sy, ry as f32 / sy],
        };
        warp_core(&part, &src_to_dst.compose(&undo), out_w, out_h, put);
    } else {
        warp_core(img, src_to_dst, out_w, out_h, put);
    }
}

/// The rectangle of the shrunk image (`nw × nh`, source scaled by `sx, sy`) that an
/// `out_w × out_h` warp through `src_to_dst` samples, with a margin for bilinear taps and the
/// resize kernel; `None` when it misses the image.
fn shrunk_region(
    src_to_dst: &Affine,
    out_w: u32,
    out_h: u32,
    sx: f32,
    sy: f32,
    nw: u32,
    nh: u32,
) -> Option<(u32, u32, u32, u32)> {
    const MARGIN: f32 = 3.0;
    let inv = src_to_dst.invert()?;
    let corners = [
        (0.0, 0.0),
        (out_w as f32, 0.0),
        (0.0, out_h as f32),
        (out_w as f32, out_h as f32),
    ]
    .map(|(x, y)| inv.apply(facelens_core::Point::new(x, y)));
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in corners {
        x0 = x0.min(p.x * sx);
        y0 = y0.min(p.y * sy);
        x1 = x1.max(p.x * sx);
        y1 = y1.max(p.y * sy);
    }
    if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
        return None;
    }
    let rx0 = (x0 - MARGIN).floor().clamp(0.0, nw as f32) as u32;
    let ry0 = (y0 - MARGIN).floor().clamp(0.0, nh as f32) as u32;
    let rx1 = (x1 + MARGIN).ceil().clamp(0.0, nw as f32) as u32;
    let ry1 = (y1 + MARGIN).ceil().clamp(0.0, nh as f32) as u32;
    (rx1 > rx0 && ry1 > ry0).then(|| (rx0, ry0, rx1 - rx0, ry1 - ry0))
}

/// The `(x, y, w, h)` block of `img` resized to `full` (scale `sx, sy`), computed alone: the
/// same sampling grid as resizing the whole image, over the source box that block covers.
fn resize_part(
    img: &RgbImage,
    (x, y, w, h): (u32, u32, u32, u32),
    (sx, sy): (f32, f32),
    full: (u32, u32),
) -> RgbImage {
    use fast_image_resize as fr;
    if (x, y, (w, h)) == (0, 0, full) {
        return resize(img, w, h);
    }
    let (sw, sh) = img.dimensions();
    let crop = |left: f64, top: f64, cw: f64, ch: f64| {
        fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
            .crop(left, top, cw, ch)
    };
    let opts = crop(
        x as f64 / sx as f64,
        y as f64 / sy as f64,
        (w as f64 / sx as f64).min(sw as f64 - x as f64 / sx as f64),
        (h as f64 / sy as f64).min(sh as f64 - y as f64 / sy as f64),
    );
    let fallback = || {
        let full = resize(img, full.0, full.1);
        image::imageops::crop_imm(&full, x, y, w, h).to_image()
    };
    let Ok(src) = fr::images::ImageRef::new(sw, sh, img.as_raw(), fr::PixelType::U8x3) else {
        return fallback();
    };
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
    if fr::Resizer::new().resize(&src, &mut dst, &opts).is_err() {
        return fallback();
    }
    RgbImage::from_raw(w, h, dst.into_vec()).unwrap_or_else(fallback)
}

/// Bilinear sampling; `put(pixel_index, rgb)` receives every output pixel that falls inside
/// the source (the others keep the caller's zero fill).
fn warp_core(
    img: &RgbImage,
    src_to_dst: &Affine,
    out_w: u32,
    out_h: u32,
    mut put: impl FnMut(usize, [f32; 3]),
) {
    let Some(inv) = src_to_dst.invert() else {
        return;
    };
    let (sw, sh) = (img.width() as i64, img.height() as i64);
    let src = img.as_raw();
    let [a, b, c, d, e, f] = inv.m;
    for y in 0..out_h {
        let yc = y as f32 + 0.5;
        for x in 0..out_w {
            let xc = x as f32 + 0.5;
            // Source position of this output pixel's centre, in pixel-index space.
            let sx = a * xc + b * yc + c - 0.5;
            let sy = d * xc + e * yc + f - 0.5;
            if !(sx > -1.0 && sy > -1.0 && sx < sw as f32 && sy < sh as f32) {
                continue;
            }
            let x0 = sx.floor() as i64;
            let y0 = sy.floor() as i64;
            let fx = sx - x0 as f32;
            let fy = sy - y0 as f32;
            let mut acc = [0.0f32; 3];
            for (dy, wy) in [(0i64, 1.0 - fy), (1, fy)] {
                let yy = y0 + dy;
                if yy < 0 || yy >= sh || wy == 0.0 {
                    continue;
                }
                for (dx, wx) in [(0i64, 1.0 - fx), (1, fx)] {
                    let xx = x0 + dx;
                    if xx < 0 || xx >= sw || wx == 0.0 {
                        continue;
                    }
                    let i = ((yy * sw + xx) * 3) as usize;
                    let w = wx * wy;
                    acc[0] += w * src[i] as f32;
                    acc[1] += w * src[i + 1] as f32;
                    acc[2] += w * src[i + 2] as f32;
                }
            }
            put((y * out_w + x) as usize, acc);
        }
    }
}

/// Luma (BT.601) of an RGB pixel.
pub fn luma(p: [u8; 3]) -> f32 {
    luma_f32(p.map(f32::from))
}

/// Luma (BT.601) of an RGB triple on the 0..255 scale (a resampled pixel).
pub fn luma_f32([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Encode an RGB image as PNG bytes (for tests, annotation and fixtures).
pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    // Writing PNG to memory cannot fail for a valid RgbImage.
    let _ = img.write_to(&mut out, ImageFormat::Png);
    out.into_inner()
}

/// Encode an RGB image as JPEG bytes at `quality`.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    let _ = img.write_with_encoder(enc);
    out
}

#[cfg(test)]
mod tests;

use super::*;
use facelens_core::Point;

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    })
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header claims `w × h` but which carries no image data.
pub(crate) fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    v
}

/// A JPEG with a baseline SOF0 header claiming `w × h` and nothing else.
fn jpeg_header_only(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

fn bmp_header_only(w: i32, h: i32) -> Vec<u8> {
    let mut v = b"BM".to_vec();
    v.extend_from_slice(&(54u32).to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&54u32.to_le_bytes());
    v.extend_from_slice(&40u32.to_le_bytes());
    v.extend_from_slice(&w.to_le_bytes());
    v.extend_from_slice(&h.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&24u16.to_le_bytes());
    v.extend_from_slice(&[0u8; 24]);
    v
}

/// Insert an EXIF APP1 segment with the given orientation right after SOI.
pub(crate) fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn code(r: Result<Decoded, FaceError>) -> ErrorCode {
    match r {
        Ok(d) => panic!(
            "expected an error, decoded {}x{}",
            d.image.width(),
            d.image.height()
        ),
        Err(e) => e.code,
    }
}

#[test]
fn decodes_all_three_formats() {
    let img = gradient(40, 30);
    let l = DecodeLimits::default();
    let png = decode(&encode_png(&img), &l).expect("png");
    assert_eq!(png.format, Format::Png);
    assert_eq!(png.image, img);
    let jpg = decode(&encode_jpeg(&img, 95), &l).expect("jpg");
    assert_eq!(jpg.format, Format::Jpeg);
    assert_eq!(jpg.image.dimensions(), (40, 30));
    let mut bmp = Cursor::new(Vec::new());
    img.write_to(&mut bmp, ImageFormat::Bmp)
        .expect("bmp encode");
    let b = decode(bmp.get_ref(), &l).expect("bmp");
    assert_eq!(b.format, Format::Bmp);
    assert_eq!(b.image, img);
}

#[test]
fn bad_inputs_get_distinct_codes() {
    let l = DecodeLimits::default();
    assert_eq!(code(decode(b"", &l)), ErrorCode::MissingParameter);
    assert_eq!(
        code(decode(b"hello, not an image", &l)),
        ErrorCode::UnsupportedFormat
    );
    assert_eq!(
        code(decode(b"GIF89a\x01\x00\x01\x00", &l)),
        ErrorCode::UnsupportedFormat
    );
    let jpg = encode_jpeg(&gradient(64, 64), 90);
    assert_eq!(
        code(decode(&jpg[..jpg.len() / 2], &l)),
        ErrorCode::CorruptImage
    );
    assert_eq!(code(decode(&jpg[..40], &l)), ErrorCode::CorruptImage);
    // A cut inside the scan data of a larger, textured JPEG (the decoder alone would fill it in).
    let textured = RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    let big = encode_jpeg(&textured, 90);
    for cut in [
        big.len() / 10,
        big.len() / 2,
        big.len() * 99 / 100,
        big.len() - 2,
    ] {
        assert_eq!(
            code(decode(&big[..cut], &l)),
            ErrorCode::CorruptImage,
            "cut at {cut}"
        );
    }
    assert!(decode(&big, &l).is_ok());
    // Trailing bytes after the end marker are tolerated, like every viewer does.
    let mut trailing = big.clone();
    trailing.extend_from_slice(b"trailing garbage");
    assert!(decode(&trailing, &l).is_ok());
    // An EXIF block (which may hold a thumbnail with its own end marker) does not hide a cut.
    let exif = with_exif_orientation(&big, 1);
    assert_eq!(
        code(decode(&exif[..exif.len() / 2], &l)),
        ErrorCode::CorruptImage
    );
    let png = encode_png(&gradient(64, 64));
    assert_eq!(
        code(decode(&png[..png.len() / 2], &l)),
        ErrorCode::CorruptImage
    );
    // sizes
    assert_eq!(
        code(decode(&encode_png(&gradient(14, 40)), &l)),
        ErrorCode::ImageTooSmall
    );
    assert_eq!(
        code(decode(&encode_png(&gradient(1, 1)), &l)),
        ErrorCode::ImageTooSmall
    );
    assert_eq!(
        code(decode(&encode_png(&gradient(5000, 16)), &l)),
        ErrorCode::ImageDimensionsTooLarge
    );
    assert!(decode(&encode_png(&gradient(15, 4096)), &l).is_ok());
    let big = vec![0u8; l.max_file_bytes + 1];
    assert_eq!(code(decode(&big, &l)), ErrorCode::ImageTooLarge);
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let l = DecodeLimits::default();
    assert_eq!(
        code(decode(&png_header_only(16000, 16000), &l)),
        ErrorCode::ImageDimensionsTooLarge
    );
    assert_eq!(
        code(decode(&png_header_only(60000, 60000), &l)),
        ErrorCode::ImageDimensionsTooLarge
    );
    assert_eq!(
        code(decode(&jpeg_header_only(60000, 60000), &l)),
        ErrorCode::ImageDimensionsTooLarge
    );
    assert_eq!(
        code(decode(&bmp_header_only(60000, 60000), &l)),
        ErrorCode::ImageDimensionsTooLarge
    );
    // A header inside the limits but without data is corrupt, not a crash.
    assert_eq!(
        code(decode(&png_header_only(100, 100), &l)),
        ErrorCode::CorruptImage
    );
    assert_eq!(
        code(decode(&bmp_header_only(100, 100), &l)),
        ErrorCode::CorruptImage
    );
}

#[test]
fn exif_orientation_is_applied() {
    // A 40x20 image whose left half is white: after orientation 6 (rotate 90° clockwise) it is
    // 20x40 with the white half on top.
    let img = RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb([0, 0, 0])
        }
    });
    let jpg = encode_jpeg(&img, 95);
    let l = DecodeLimits::default();
    let plain = decode(&jpg, &l).expect("plain");
    assert_eq!(plain.orientation, 1);
    assert_eq!(plain.image.dimensions(), (40, 20));
    let rotated = decode(&with_exif_orientation(&jpg, 6), &l).expect("rotated");
    assert_eq!(rotated.orientation, 6);
    assert_eq!(rotated.image.dimensions(), (20, 40));
    assert!(
        rotated.image.get_pixel(10, 5)[0] > 200,
        "top should be white"
    );
    assert!(
        rotated.image.get_pixel(10, 35)[0] < 50,
        "bottom should be black"
    );
    for o in 1..=8u16 {
        let d = decode(&with_exif_orientation(&jpg, o), &l).expect("any orientation");
        assert_eq!(d.orientation as u16, o);
        let expect = if o >= 5 { (20, 40) } else { (40, 20) };
        assert_eq!(d.image.dimensions(), expect, "orientation {o}");
    }
}

#[test]
fn greyscale_and_16_bit_png_become_rgb() {
    let grey = image::GrayImage::from_fn(30, 30, |x, _| image::Luma([(x * 8) as u8]));
    let mut buf = Cursor::new(Vec::new());
    grey.write_to(&mut buf, ImageFormat::Png).expect("encode");
    let d = decode(buf.get_ref(), &DecodeLimits::default()).expect("grey");
    assert_eq!(d.image.get_pixel(2, 0).0, [16, 16, 16]);
    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(20, 20, |_, _| {
        image::Rgb([65535u16, 0, 0])
    });
    let mut buf = Cursor::new(Vec::new());
    DynamicImage::ImageRgb16(deep)
        .write_to(&mut buf, ImageFormat::Png)
        .expect("encode");
    let d = decode(buf.get_ref(), &DecodeLimits::default()).expect("16-bit");
    assert_eq!(d.image.get_pixel(0, 0).0, [255, 0, 0]);
}

#[test]
fn resize_and_warp() {
    let img = gradient(100, 80);
    let r = resize(&img, 50, 40);
    assert_eq!(r.dimensions(), (50, 40));
    // Unscaled crop: centre (50, 40), side 80 -> 80x80 output; output pixel (30, 20) is source
    // pixel (50 - 40 + 30, 40 - 40 + 20) = (40, 20).
    let t = Affine::crop_to(Point::new(50.0, 40.0), 80.0, 0.0, 80.0);
    let c = warp_affine(&img, &t, 80, 80);
    assert_eq!(c.get_pixel(30, 20).0, img.get_pixel(40, 20).0);
    // Outside the source is black.
    let corner = warp_affine(
        &img,
        &Affine::crop_to(Point::new(0.0, 0.0), 80.0, 0.0, 80.0),
        80,
        80,
    );
    assert_eq!(corner.get_pixel(10, 10).0, [0, 0, 0]);
    assert_eq!(corner.get_pixel(50, 50).0, img.get_pixel(10, 10).0);
    // The f32 warp is the byte warp before rounding.
    let t = Affine::crop_to(Point::new(37.3, 41.9), 51.0, 0.37, 64.0);
    let bytes = warp_affine(&img, &t, 64, 64);
    let floats = warp_affine_f32(&img, &t, 64, 64);
    for (b, f) in bytes.as_raw().iter().zip(&floats) {
        assert_eq!(*b, f.round().clamp(0.0, 255.0) as u8);
    }
    // Strong downscale goes through the pre-shrink path and stays close to the source mean.
    let flat = RgbImage::from_pixel(400, 400, image::Rgb([200, 100, 50]));
    let t = Affine::crop_to(Point::new(200.0, 200.0), 400.0, 0.2, 32.0);
    let c = warp_affine(&flat, &t, 32, 32);
    let p = c.get_pixel(16, 16).0;
    assert!(
        (p[0] as i32 - 200).abs() <= 2 && (p[1] as i32 - 100).abs() <= 2,
        "{p:?}"
    );
}

/// The old behaviour, kept as the reference: shrink the whole image, then warp.
fn warp_whole_preshrink(img: &RgbImage, t: &Affine, out_w: u32, out_h: u32) -> Vec<f32> {
    let mut out = vec![0.0f32; (out_w * out_h * 3) as usize];
    let f = (1.0 / t.scale()).floor().max(1.0);
    let (sw, sh) = img.dimensions();
    let nw = ((sw as f32 / f).round() as u32).max(1);
    let nh = ((sh as f32 / f).round() as u32).max(1);
    let small = resize(img, nw, nh);
    let undo = Affine {
        m: [
            sw as f32 / nw as f32,
            0.0,
            0.0,
            0.0,
            sh as f32 / nh as f32,
            0.0,
        ],
    };
    warp_core(&small, &t.compose(&undo), out_w, out_h, |o, px| {
        out[o * 3..o * 3 + 3].copy_from_slice(&px)
    });
    out
}

#[test]
fn preshrinking_only_the_crop_region_matches_shrinking_the_whole_image() {
    // A textured image (so resize kernels matter) and crops that shrink 3x to 9x, rotated,
    // inside, across the border and fully outside the image.
    let img = RgbImage::from_fn(1203, 907, |x, y| {
        let v = (x * 7 + y * 13) ^ (x * y / 5);
        image::Rgb([
            (v % 251) as u8,
            ((x / 3 + y) % 256) as u8,
            ((v / 7) % 256) as u8,
        ])
    });
    let cases = [
        (Point::new(600.0, 450.0), 300.0, 0.3, 64.0),
        (Point::new(100.0, 80.0), 500.0, -0.6, 64.0),
        (Point::new(1190.0, 900.0), 400.0, 0.0, 48.0),
        (Point::new(700.0, 300.0), 900.0, 1.2, 112.0),
        (Point::new(-900.0, -900.0), 300.0, 0.0, 32.0),
    ];
    for (c, side, angle, out) in cases {
        let t = Affine::crop_to(c, side, angle, out);
        assert!(t.scale() < 0.5);
        let n = out as u32;
        let got = warp_affine_f32(&img, &t, n, n);
        let want = warp_whole_preshrink(&img, &t, n, n);
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max <= 1.0,
            "crop at {c:?} side {side}: max difference {max}"
        );
    }
}

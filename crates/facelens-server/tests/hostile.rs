//! Hostile inputs against a real server: each gets its documented code in bounded time, and the
//! server keeps serving. Images that need no face are synthetic or tiny fixtures
//! (tests/data/make_fixtures.py); the EXIF test uses a dev face and skips without one.

mod common;

use common::*;
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for "answered promptly, not hung" (debug builds on a loaded 2-core box).
const PROMPT: Duration = Duration::from_secs(15);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .expect("fixture")
}

fn encode(img: image::DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).expect("encode");
    out.into_inner()
}

fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0]);
    // A correct CRC, so that only the size can be the reason for the refusal.
    let crc = crc32(&v[12..]);
    v.extend_from_slice(&crc.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// SOI, then a baseline SOF0 frame header declaring `w`×`h`, 3 components, and nothing else.
fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v
}

/// A 24-bit BMP file header and info header declaring `w`×`h`, with no pixels.
fn bmp_header(w: i32, h: i32) -> Vec<u8> {
    let mut v = b"BM".to_vec();
    v.extend_from_slice(&(54u32 + 16).to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&54u32.to_le_bytes());
    v.extend_from_slice(&40u32.to_le_bytes());
    v.extend_from_slice(&w.to_le_bytes());
    v.extend_from_slice(&h.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&24u16.to_le_bytes());
    v.extend_from_slice(&[0u8; 24]);
    v.extend_from_slice(&[0u8; 16]);
    v
}

fn flat_jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            w,
            h,
            image::Rgb([90, 100, 110]),
        )),
        image::ImageFormat::Jpeg,
    )
}

/// The faces the contract endpoint answers with, as `(code, seconds)`.
async fn juhe_code(s: &TestServer, fields: &[(&str, &str)]) -> (u64, Duration) {
    let t = Instant::now();
    let v = s.juhe(fields).await;
    (code(&v), t.elapsed())
}

#[tokio::test]
async fn hostile_images_get_their_documented_codes() {
    let s = start(|_| {}).await;
    let jpeg = flat_jpeg(64, 48);
    let png = flat_png(64, 48);
    let mut corrupt_jpeg = jpeg.clone();
    for b in corrupt_jpeg.iter_mut().skip(200).step_by(3) {
        *b = 0xFF;
    }
    let mut bad_crc_png = png.clone();
    bad_crc_png[29] ^= 0xFF; // inside IHDR's CRC
    let grey16 = encode(
        image::DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            40,
            40,
            image::Luma([40_000u16]),
        )),
        image::ImageFormat::Png,
    );
    let rgb16 = encode(
        image::DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            40,
            40,
            image::Rgb([1u16, 30_000, 65_535]),
        )),
        image::ImageFormat::Png,
    );
    let rgba = encode(
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            40,
            40,
            image::Rgba([10, 20, 30, 0]),
        )),
        image::ImageFormat::Png,
    );
    let bmp = encode(
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(40, 40, image::Rgb([1, 2, 3]))),
        image::ImageFormat::Bmp,
    );
    let mut random_after_magic = vec![0xFF, 0xD8, 0xFF];
    let mut x = 12345u32;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        random_after_magic.push((x >> 16) as u8);
    }
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        // Decompression bombs: refused from the header, before any pixel is allocated.
        ("PNG 60000x60000", png_header(60_000, 60_000), 200207),
        ("JPEG 60000x60000", jpeg_header(60_000, 60_000), 200207),
        ("BMP 60000x60000", bmp_header(60_000, 60_000), 200207),
        (
            "BMP 60000x-60000 (top-down)",
            bmp_header(60_000, -60_000),
            200207,
        ),
        ("PNG 4097x16", png_header(4097, 16), 200207),
        (
            "PNG 2^31-1 square",
            png_header(0x7fff_ffff, 0x7fff_ffff),
            200207,
        ),
        ("JPEG 65535x65535", jpeg_header(65_535, 65_535), 200207),
        // Too small, empty-ish.
        ("PNG 1x1", flat_png(1, 1), 200206),
        ("JPEG 1x1", flat_jpeg(1, 1), 200206),
        ("PNG 0x0 header", png_header(0, 0), 200206),
        // Truncated and corrupt.
        ("JPEG truncated", jpeg[..jpeg.len() / 2].to_vec(), 200205),
        ("JPEG header only", jpeg_header(64, 48), 200205),
        ("JPEG corrupt", corrupt_jpeg, 200205),
        ("JPEG magic + noise", random_after_magic, 200205),
        ("PNG truncated", png[..png.len() / 2].to_vec(), 200205),
        ("PNG bad CRC", bad_crc_png, 200205),
        ("BMP truncated", bmp[..bmp.len() / 2].to_vec(), 200205),
        ("BMP header only", bmp_header(64, 48), 200205),
        // Variants that decode (no face in them).
        ("CMYK JPEG", fixture("cmyk.jpg"), 200216),
        ("progressive JPEG", fixture("progressive.jpg"), 200216),
        ("16-bit grey PNG", grey16, 200216),
        ("16-bit RGB PNG", rgb16, 200216),
        ("RGBA PNG, fully transparent", rgba, 200216),
        ("palette PNG", fixture("palette.png"), 200216),
        ("1-bit PNG", fixture("bilevel.png"), 200216),
        ("grey + alpha PNG", fixture("grey_alpha.png"), 200216),
        (
            "animated PNG (first frame)",
            fixture("animated.png"),
            200216,
        ),
        ("32-bit BMP", fixture("rgba32.bmp"), 200216),
        ("8-bit palette BMP", fixture("palette8.bmp"), 200216),
        ("1-bit BMP", fixture("bilevel.bmp"), 200216),
        // Other formats.
        ("animated GIF", fixture("animated.gif"), 200204),
        ("TIFF", fixture("image.tiff"), 200204),
        (
            "text",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            200204,
        ),
        ("one byte", vec![0xFF], 200204),
    ];
    let mut wrong = Vec::new();
    for (name, bytes, want) in &cases {
        let (got, took) = juhe_code(&s, &[("image", &b64(bytes))]).await;
        if got != *want {
            wrong.push(format!("{name}: {got}, want {want}"));
        }
        assert!(took < PROMPT, "{name} took {took:?}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The server is still serving.
    let (got, _) = juhe_code(&s, &[("image", &b64(&png))]).await;
    assert_eq!(got, 200216);
}

#[tokio::test]
async fn base64_in_every_shape() {
    let s = start(|_| {}).await;
    let png = flat_png(32, 32);
    let plain = b64(&png);
    let url_safe = plain.replace('+', "-").replace('/', "_");
    let unpadded = plain.trim_end_matches('=').to_string();
    let wrapped: String = plain
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let data_url = format!("data:image/png;base64,{plain}");
    let cases: Vec<(&str, String, u64)> = vec![
        ("plain", plain.clone(), 200216),
        ("url-safe alphabet", url_safe, 200216),
        ("no padding", unpadded, 200216),
        ("wrapped at 76 columns", wrapped, 200216),
        ("data: URL", data_url, 200216),
        (
            "data: URL, not base64",
            format!("data:image/png,{plain}"),
            200202,
        ),
        ("bad characters", format!("{}!!", &plain[..40]), 200202),
        ("only padding", "====".into(), 200202),
        ("one character", "A".into(), 200202),
        ("padding in the middle", format!("AAAA=AAA{plain}"), 200202),
        ("too much padding", format!("{plain}==="), 200202),
        ("unicode", "图片数据".into(), 200202),
        ("NUL bytes", "AAAA\0AAAA".into(), 200202),
    ];
    for (name, image, want) in &cases {
        let (got, took) = juhe_code(&s, &[("image", image)]).await;
        assert_eq!(got, *want, "{name}");
        assert!(took < PROMPT, "{name} took {took:?}");
    }
    // Just over 4 MB once decoded, and a body over the body limit: 200203 both.
    let over = b64(&vec![7u8; 4 * 1024 * 1024 + 1]);
    assert_eq!(juhe_code(&s, &[("image", &over)]).await.0, 200203);
    let exactly = b64(&vec![7u8; 4 * 1024 * 1024]);
    assert_eq!(
        juhe_code(&s, &[("image", &exactly)]).await.0,
        200204,
        "4 MB exactly is allowed (and is not an image)"
    );
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let s = start(|c| c.max_body_bytes = 6 * 1024 * 1024).await;
    let post = |ctype: &'static str, body: Vec<u8>| {
        let s = &s;
        async move {
            let t = Instant::now();
            let resp = s
                .client
                .post(s.url("/faceDetect/index"))
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .expect("send");
            let v = juhe_body(resp).await;
            (code(&v), t.elapsed())
        }
    };
    let form = "application/x-www-form-urlencoded";
    let big_form = format!("key={}&image={}", s.key, "A".repeat(7 * 1024 * 1024));
    let many_fields: String = (0..65).map(|i| format!("f{i}=1&")).collect();
    let very_many_fields: String = (0..200_000).map(|i| format!("{i}=&")).collect();
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        "{{\"key\":\"{}\",\"image\":{}1{}}}",
        s.key,
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let boundary = "multipart/form-data; boundary=XyZ";
    let two_files = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nAAAA\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.jpg\"\r\n\r\nBBBB\r\n--XyZ--\r\n";
    let many_parts: String = (0..100)
        .map(|i| format!("--XyZ\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n1\r\n"))
        .collect::<String>()
        + "--XyZ--\r\n";
    let unterminated = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nAAAA";
    let cases: Vec<(&str, &'static str, Vec<u8>, u64)> = vec![
        (
            "form body over the limit",
            form,
            big_form.into_bytes(),
            200203,
        ),
        ("65 form fields", form, many_fields.into_bytes(), 200218),
        (
            "200,000 form fields",
            form,
            very_many_fields.into_bytes(),
            200218,
        ),
        (
            "form body not UTF-8",
            form,
            b"key=\xff\xfe&image=AAAA".to_vec(),
            200218,
        ),
        (
            "JSON nested 100,000 deep",
            "application/json",
            deep_json.into_bytes(),
            200218,
        ),
        (
            "JSON object nested 50,000 deep",
            "application/json",
            deep_object.into_bytes(),
            200218,
        ),
        (
            "JSON not an object",
            "application/json",
            b"[1,2,3]".to_vec(),
            200218,
        ),
        (
            "JSON truncated",
            "application/json",
            b"{\"image\": \"AA".to_vec(),
            200218,
        ),
        (
            "multipart with two files",
            boundary,
            two_files.as_bytes().to_vec(),
            200218,
        ),
        (
            "multipart with 100 parts",
            boundary,
            many_parts.into_bytes(),
            200218,
        ),
        (
            "multipart unterminated",
            boundary,
            unterminated.as_bytes().to_vec(),
            200218,
        ),
        (
            "multipart without boundary",
            "multipart/form-data",
            b"--XyZ--".to_vec(),
            200218,
        ),
    ];
    for (name, ctype, body, want) in cases {
        let (got, took) = post(ctype, body).await;
        assert_eq!(got, want, "{name}");
        assert!(took < PROMPT, "{name} took {took:?}");
    }
    // A zero-byte upload, and a zero-byte base64 field.
    let empty_file = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"empty.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\r\n--XyZ--\r\n",
        s.key
    );
    assert_eq!(post(boundary, empty_file.into_bytes()).await.0, 200201);
    assert_eq!(juhe_code(&s, &[("image", "")]).await.0, 200201);
    // Unicode and odd bytes in keys and field names.
    for (key, want) in [
        ("密钥🔑", 10001),
        ("0123456789abcdef0123456789abcde\u{0301}", 10001),
        (" ", 10001),
        ("%FF", 10001),
    ] {
        let v = s
            .juhe_form(&[("key", key), ("image", &b64(&flat_png(32, 32)))])
            .await;
        assert_eq!(code(&v), want, "key {key:?}");
    }
    let v = s
        .juhe_form(&[("key", &s.key), ("图片", &b64(&flat_png(32, 32)))])
        .await;
    assert_eq!(code(&v), 200201, "a unicode field name is not `image`");
    // Still serving, and nothing refused counted against the key.
    let v = s.juhe(&[("image", &b64(&flat_png(32, 32)))]).await;
    assert_eq!(code(&v), 200216);
    let usage = s
        .store
        .quota_usage(1, facelens_store::unix_now())
        .await
        .expect("usage");
    assert_eq!(usage.total, 1, "{usage:?}");
}

/// Read until the peer closes or `limit` passes; `Some(bytes)` when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let s = start(|c| {
        c.header_timeout_ms = 1_000;
        c.body_timeout_ms = 1_500;
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();

    // Slowloris on the headers: ten clients each sending a byte every 200 ms, forever.
    let mut slow = Vec::new();
    for _ in 0..10 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(&addr).await.expect("connect");
            let t = Instant::now();
            let head = b"POST /faceDetect/index HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in head {
                if c.write_all(&[*b]).await.is_err() {
                    return t.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                if t.elapsed() > Duration::from_secs(30) {
                    break;
                }
            }
            t.elapsed()
        }));
    }
    // Meanwhile a normal client is served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (got, took) = juhe_code(&s, &[("image", &b64(&flat_png(32, 32)))]).await;
    assert_eq!(got, 200216);
    assert!(took < PROMPT);
    for h in slow {
        let lasted = h.await.expect("join");
        assert!(
            lasted < Duration::from_secs(10),
            "a slow-header client was cut off (after {lasted:?})"
        );
    }

    // A body that trickles in: answered 200218 once the body deadline passes.
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /faceDetect/index HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nkey={}&image=",
        s.key
    );
    c.write_all(head.as_bytes()).await.expect("write");
    let t = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if c.write_all(b"A").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c
    });
    let mut c = trickle.await.expect("join");
    let answer = read_until_closed(&mut c, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(answer.as_deref().unwrap_or_default()).to_string();
    assert!(
        text.contains("\"error_code\":200218"),
        "a trickling body is refused: {text:?} after {:?}",
        t.elapsed()
    );

    // The server is still serving.
    let (got, _) = juhe_code(&s, &[("image", &b64(&flat_png(32, 32)))]).await;
    assert_eq!(got, 200216);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let s = start(|c| {
        c.max_connections = 4;
        c.header_timeout_ms = 3_000;
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();
    // Four idle connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(&addr).await.expect("connect");
    let _ = fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let t = Instant::now();
    let got = read_until_closed(&mut fifth, Duration::from_secs(2)).await;
    assert_eq!(
        got.as_deref(),
        Some(&b""[..]),
        "the fifth connection is closed without an answer, before the header timeout ({:?})",
        t.elapsed()
    );
    // The idle ones are closed by the header timeout; then there is room again.
    for mut c in idle {
        let closed = read_until_closed(&mut c, Duration::from_secs(10)).await;
        assert!(
            closed.is_some(),
            "an idle connection is closed by the header timeout"
        );
    }
    let resp = s.client.get(s.url("/healthz")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
}

/// Apply EXIF orientation `o` to an upright image (what a viewer shows for stored pixels).
fn apply_orientation(o: u16, img: &image::RgbImage) -> image::RgbImage {
    use image::imageops::{flip_horizontal, flip_vertical, rotate90, rotate180, rotate270};
    match o {
        2 => flip_horizontal(img),
        3 => rotate180(img),
        4 => flip_vertical(img),
        5 => flip_horizontal(&rotate90(img)),
        6 => rotate90(img),
        7 => flip_vertical(&rotate90(img)),
        8 => rotate270(img),
        _ => img.clone(),
    }
}

/// Insert an EXIF APP1 segment with the given orientation right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
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
    out.extend_from_slice(
        &u16::try_from(payload.len() + 2)
            .expect("small")
            .to_be_bytes(),
    );
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[tokio::test]
async fn every_exif_orientation_finds_the_same_upright_face() {
    let face = test_image(FACE);
    let s = start(|_| {}).await;
    // A portrait canvas with the face in its top part, so that a wrong rotation or mirror
    // moves the box.
    let face = image::load_from_memory(&face).expect("face").to_rgb8();
    let mut upright = image::RgbImage::from_pixel(
        face.width(),
        face.height() * 3 / 2,
        image::Rgb([200, 200, 200]),
    );
    image::imageops::replace(&mut upright, &face, 0, 0);
    let detect = |bytes: Vec<u8>| {
        let s = &s;
        async move {
            let resp = s
                .client
                .post(s.url("/v1/detect"))
                .header("x-api-key", &s.key)
                .json(&serde_json::json!({"image": b64(&bytes)}))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 200);
            resp.json::<serde_json::Value>().await.expect("json")
        }
    };
    let reference = detect(encode(
        image::DynamicImage::ImageRgb8(upright.clone()),
        image::ImageFormat::Jpeg,
    ))
    .await;
    let ref_box = reference["faces"][0]["bbox"].clone();
    assert!(ref_box.is_object(), "{reference}");
    // Stored pixels for orientation o are the upright image under o's inverse.
    for o in 1..=8u16 {
        let inverse = match o {
            6 => 8,
            8 => 6,
            o => o,
        };
        let stored = apply_orientation(inverse, &upright);
        let jpeg = with_exif_orientation(
            &encode(
                image::DynamicImage::ImageRgb8(stored),
                image::ImageFormat::Jpeg,
            ),
            o,
        );
        let v = detect(jpeg).await;
        assert_eq!(v["orientation"], o, "{v}");
        assert_eq!(v["width"], upright.width(), "orientation {o}");
        assert_eq!(v["height"], upright.height(), "orientation {o}");
        let b = &v["faces"][0]["bbox"];
        for k in ["x1", "y1", "x2", "y2"] {
            let (got, want) = (
                b[k].as_f64().unwrap_or(f64::NAN),
                ref_box[k].as_f64().unwrap_or(0.0),
            );
            assert!(
                (got - want).abs() <= 12.0,
                "orientation {o}: {k} {got} vs upright {want}"
            );
        }
    }
}

#[tokio::test]
async fn cors_is_off_by_default_and_limited_to_listed_origins() {
    let s = start(|_| {}).await;
    let resp = s
        .client
        .get(s.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "no CORS headers by default"
    );
    let s = start(|c| c.cors_allow_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        let s = &s;
        async move {
            s.client
                .request(reqwest::Method::OPTIONS, s.url("/v1/detect"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .expect("send")
        }
    };
    let ok = preflight("https://app.example.com").await;
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    let other = preflight("https://evil.example").await;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    // A bad origin in the configuration is refused at start.
    let bad = facelens_server::Config {
        cors_allow_origins: vec!["app.example.com/".into()],
        ..facelens_server::Config::default()
    };
    assert!(bad.validate().is_err());
}

#[tokio::test]
async fn admin_bodies_are_capped() {
    let token = "0123456789abcdef-admin";
    let s = start(|c| c.admin_token = token.into()).await;
    let big = serde_json::json!({"name": "x".repeat(100 * 1024)});
    let resp = s
        .client
        .post(s.url("/admin/v1/keys"))
        .bearer_auth(token)
        .json(&big)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    // Without the token nothing is read at all.
    let resp = s
        .client
        .post(s.url("/admin/v1/keys"))
        .json(&big)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
}

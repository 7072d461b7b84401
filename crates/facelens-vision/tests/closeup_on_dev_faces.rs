//! The close-up fallback detector (BlazeFace short-range) on real development images: it frames
//! human crops the way RetinaFace does (so the mesh and the aligned crops see the face as they
//! were fitted), its landmarks are in RetinaFace's order, it finds nothing on a blank image, and
//! as the last step of the retry it finds drawn faces that every RetinaFace attempt missed.
//! Without the evaluation data the data-driven parts print "skipped: ..." and pass.

use facelens_core::Rect;
use facelens_eval::load_attribute_manifest;
use facelens_imaging::{DecodeLimits, Rgb, decode};
use facelens_infer::{BackendKind, ModelBytes, create_backend};
use facelens_vision::closeup::CloseUpDetector;
use facelens_vision::detect::CLOSEUP_THRESHOLD;
use facelens_vision::retry::{fills_frame, pad_canvas};
use facelens_vision::{DetectorConfig, Models, Pipeline};

fn closeup() -> CloseUpDetector {
    let backend = create_backend(BackendKind::Rten, 2).expect("backend");
    let m = facelens_models::get("blazeface_short").expect("embedded");
    let model = backend
        .load(m.id, ModelBytes::Static(m.bytes))
        .expect("loads");
    CloseUpDetector::new(model).expect("outputs named as expected")
}

fn iou(a: &Rect, b: &Rect) -> f32 {
    let ix = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let iy = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = ix * iy;
    inter / (a.area() + b.area() - inter)
}

#[test]
fn finds_nothing_on_blank_or_tiny_images() {
    let c = closeup();
    for (w, h) in [(200, 200), (300, 120), (1, 1), (1, 50)] {
        let img = Rgb::from_pixel(w, h, facelens_imaging::image::Rgb([128, 128, 128]));
        let found = c.detect(&img, CLOSEUP_THRESHOLD).expect("runs");
        assert!(found.is_empty(), "{w}x{h}: {found:?}");
    }
}

fn dev_images(filter: impl Fn(&facelens_eval::AttributeRecord) -> bool) -> Option<Vec<Rgb>> {
    let Some(dir) =
        facelens_eval::evaldata_dir().filter(|d| d.join("attributes/manifest.jsonl").is_file())
    else {
        facelens_testkit::skip(
            "no development evaluation data (../shared/evaldata or FACELENS_EVALDATA)",
        );
        return None;
    };
    let text = std::fs::read_to_string(dir.join("attributes/manifest.jsonl")).expect("manifest");
    let records = load_attribute_manifest(&text, None).expect("parse manifest");
    Some(
        records
            .iter()
            .filter(|r| filter(r))
            .map(|r| {
                let bytes = std::fs::read(dir.join(&r.file)).expect("read image");
                decode(&bytes, &DecodeLimits::default())
                    .expect("decode")
                    .image
            })
            .collect(),
    )
}

#[test]
fn frames_human_crops_like_retinaface() {
    let Some(imgs) = dev_images(|r| r.file.starts_with("attributes/utkface/")) else {
        return;
    };
    let backend = create_backend(BackendKind::Rten, 2).expect("backend");
    let p = Pipeline::new(Models::load_embedded(backend.as_ref()).expect("models")).expect("p");
    let c = closeup();
    let cfg = DetectorConfig::fast(640);
    let (mut n, mut close) = (0, 0);
    for img in imgs.iter().step_by(41).take(30) {
        // On a padded canvas neither box is clipped by the image border.
        let pad = (img.width().max(img.height()) as f32 * 0.4).round() as u32;
        let canvas = pad_canvas(img, pad);
        let (Some(r), Some(b)) = (
            p.detect(&canvas, &cfg).expect("runs").into_iter().next(),
            c.detect(&canvas, 0.5).expect("runs").into_iter().next(),
        ) else {
            continue;
        };
        n += 1;
        let l = &b.landmarks;
        let eye = (l[1].x - l[0].x).hypot(l[1].y - l[0].y);
        assert!(l[0].x < l[1].x, "image-left eye first: {l:?}");
        assert!(l[3].x < l[4].x, "image-left mouth corner first: {l:?}");
        assert!((l[0].y + l[1].y) / 2.0 < l[2].y && l[2].y < (l[3].y + l[4].y) / 2.0);
        let err = r
            .landmarks
            .iter()
            .zip(l.iter())
            .map(|(a, b)| (a.x - b.x).hypot(a.y - b.y))
            .fold(0.0f32, f32::max);
        if iou(&r.bbox, &b.bbox) > 0.6 && err < 0.35 * eye {
            close += 1;
        }
    }
    assert!(
        n >= 25,
        "both detectors find most UTKFace crops ({n} of 30)"
    );
    assert!(
        close * 10 >= n * 8,
        "boxes and landmarks agree with RetinaFace on {close} of {n}"
    );
}

#[test]
fn retry_finds_drawn_faces_retinaface_misses() {
    let Some(anime) = dev_images(|r| r.face_type.as_deref() == Some("anime")) else {
        return;
    };
    let backend = create_backend(BackendKind::Rten, 2).expect("backend");
    let p = Pipeline::new(Models::load_embedded(backend.as_ref()).expect("models")).expect("p");
    let with = DetectorConfig::fast(640);
    let without = DetectorConfig {
        closeup_threshold: None,
        ..with.clone()
    };
    let (mut base, mut more) = (0, 0);
    let mut by_closeup = Vec::new();
    for img in anime
        .iter()
        .filter(|i| p.detect(i, &with).expect("runs").is_empty())
    {
        let a = p.detect_with_retry(img, &without).expect("runs");
        let b = p.detect_with_retry(img, &with).expect("runs");
        if a.is_empty() {
            if let Some(d) = b.first() {
                assert!(d.score > CLOSEUP_THRESHOLD);
                more += 1;
                by_closeup.push(img);
            }
        } else {
            base += 1;
            assert_eq!(
                a, b,
                "the close-up step runs only when RetinaFace found nothing"
            );
        }
    }
    assert!(
        more >= 3,
        "the close-up step finds drawn faces the RetinaFace retries missed ({more}; {base} found before it)"
    );
    // A large image goes through the retries scaled down (RETRY_MAX_SIDE); the face comes back
    // in the large image's coordinates, filling its frame.
    let mut big_found = 0;
    for img in &by_closeup {
        let k = 1500.0 / img.width().max(img.height()) as f32;
        let (w, h) = (
            (img.width() as f32 * k) as u32,
            (img.height() as f32 * k) as u32,
        );
        let big = facelens_imaging::resize(img, w, h);
        for d in p.detect_with_retry(&big, &with).expect("runs") {
            let b = d.bbox;
            assert!(b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= w as f32 && b.y2 <= h as f32);
            if fills_frame(&b, w as f32, h as f32) {
                big_found += 1;
            }
        }
    }
    assert!(
        big_found >= 1,
        "found again at 1500 px: {big_found} of {more}"
    );
}

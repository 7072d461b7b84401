//! Measures variants of the detector's "nothing found" retry (and prints how the close-up
//! detector's boxes and landmarks compare with RetinaFace's, the constants of `closeup.rs`) on faces that fill their image
//! (the Anime Face Dataset crops, the human attribute crops) and on faceless patches cut from
//! WIDER FACE images away from every labelled face (false faces).
//!
//! ```sh
//! cargo run --release -p facelens-vision --example retry_probe -- ../shared/evaldata
//! ```
//!
//! Development tool: it prints counts, it changes nothing.

use facelens_eval::attributes::load_attribute_manifest;
use facelens_eval::wider::load_wider_manifest;
use facelens_imaging::image::imageops;
use facelens_imaging::{DecodeLimits, Rgb, decode, resize};
use facelens_infer::{BackendKind, ModelBytes};
use facelens_vision::closeup::CloseUpDetector;
use facelens_vision::detect::{Pass, PassScale};
use facelens_vision::retry::{fills_frame, grey, pad_canvas};
use facelens_vision::{Detection, DetectorConfig, Models, Pipeline};
use std::path::PathBuf;

/// One way of retrying: canvas paddings (fraction of the long side), whether to also try the
/// mirror image, and the low score threshold for frame-filling boxes.
#[derive(Clone)]
struct Variant {
    name: &'static str,
    pads: Vec<f32>,
    flip: bool,
    grey: bool,
    low: f32,
}

const PADS: [f32; 3] = [0.15, 0.4, 1.0];

/// Per transform (as is, mirrored, grey) and canvas padding: (best score of a frame-filling
/// box, best score of any box).
type Table = [[(f32, f32); 3]; 3];

/// Best (frame-filling, any) score of `dets`, found on the image centred `pad` pixels into a
/// canvas, judged in the `w`×`h` image's coordinates.
fn best_scores(dets: Vec<Detection>, pad: u32, w: u32, h: u32) -> (f32, f32) {
    let mut best = (0.0f32, 0.0f32);
    for d in dets {
        let b = d
            .bbox
            .translate(-(pad as f32), -(pad as f32))
            .clip(w as f32, h as f32);
        best.1 = best.1.max(d.score);
        if fills_frame(&b, w as f32, h as f32) {
            best.0 = best.0.max(d.score);
        }
    }
    best
}

fn table(p: &Pipeline, img: &Rgb, cfg: &DetectorConfig) -> Table {
    let (w, h) = img.dimensions();
    let imgs = [img.clone(), imageops::flip_horizontal(img), grey(img)];
    let low_cfg = DetectorConfig {
        score_threshold: 0.05,
        ..cfg.clone()
    };
    let mut t = [[(0.0f32, 0.0f32); 3]; 3];
    for (i, im) in imgs.iter().enumerate() {
        for (j, &pf) in PADS.iter().enumerate() {
            let pad = (w.max(h) as f32 * pf).round() as u32;
            let dets = p.detect(&pad_canvas(im, pad), &low_cfg).unwrap_or_default();
            t[i][j] = best_scores(dets, pad, w, h);
        }
    }
    t
}

/// The close-up detector's best (frame-filling, any) scores on the image as is and on the
/// 0.4-padded canvas: `[fill, any, fill padded, any padded]`.
fn closeup_scores(c: &CloseUpDetector, img: &Rgb) -> [f32; 4] {
    let (w, h) = img.dimensions();
    let mut out = [0.0f32; 4];
    for (k, pf) in [0.0f32, 0.4].into_iter().enumerate() {
        let pad = (w.max(h) as f32 * pf).round() as u32;
        let dets = c.detect(&pad_canvas(img, pad), 0.05).unwrap_or_default();
        (out[2 * k], out[2 * k + 1]) = best_scores(dets, pad, w, h);
    }
    out
}

/// How the close-up detector's boxes and derived landmarks compare with RetinaFace's on the
/// same faces (human crops on a 0.4-padded canvas, so no box is clipped): medians of
/// RetinaFace / close-up box width and height, the centre offset in close-up box sides, the
/// mouth half-width over the eye distance of RetinaFace's landmarks, and the mean distance of
/// the five landmarks over the eye distance.
fn calibrate(p: &Pipeline, c: &CloseUpDetector, imgs: &[Rgb], cfg: &DetectorConfig) {
    let mut cols: [Vec<f32>; 6] = Default::default();
    for img in imgs {
        let (w, h) = img.dimensions();
        let pad = (w.max(h) as f32 * 0.4).round() as u32;
        let canvas = pad_canvas(img, pad);
        let (Some(r), Some(b)) = (
            p.detect(&canvas, cfg)
                .unwrap_or_default()
                .into_iter()
                .next(),
            c.detect(&canvas, 0.5)
                .unwrap_or_default()
                .into_iter()
                .next(),
        ) else {
            continue;
        };
        let (rb, bb) = (r.bbox, b.bbox);
        cols[0].push(rb.width() / bb.width());
        cols[1].push(rb.height() / bb.height());
        cols[2].push(((rb.y1 + rb.y2) - (bb.y1 + bb.y2)) / 2.0 / bb.height());
        cols[3].push(((rb.x1 + rb.x2) - (bb.x1 + bb.x2)) / 2.0 / bb.width());
        let l = &r.landmarks;
        let eye = ((l[1].x - l[0].x).powi(2) + (l[1].y - l[0].y).powi(2))
            .sqrt()
            .max(1.0);
        let mouth = ((l[4].x - l[3].x).powi(2) + (l[4].y - l[3].y).powi(2)).sqrt();
        cols[4].push(mouth / 2.0 / eye);
        let err: f32 = l
            .iter()
            .zip(b.landmarks.iter())
            .map(|(a, b)| ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt())
            .sum::<f32>()
            / 5.0;
        cols[5].push(err / eye);
    }
    let med = |v: &mut Vec<f32>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f32::NAN)
    };
    let names = [
        "width ratio",
        "height ratio",
        "centre dy / h",
        "centre dx / w",
        "mouth half / eye dist",
        "landmark err / eye dist",
    ];
    println!("close-up vs RetinaFace on {} human crops:", cols[0].len());
    for (n, v) in names.iter().zip(cols.iter_mut()) {
        println!("  {n}: median {:.3}", med(v));
    }
}

/// `RETRY_PROBE_LAST=1`: candidate extra last steps of the retry chain, measured on the images
/// the shipped chain (`detect_with_retry`) finds nothing on: RetinaFace on a canvas at a fixed,
/// larger working size (the normal working size of a small crop is 320 px), and the close-up
/// detector at lower thresholds. A step "finds" as the retries do: any box above the normal
/// threshold, or a frame-filling box above the retry threshold.
fn last_steps(p: &Pipeline, c: &CloseUpDetector, cfg: &DetectorConfig, sets: &[(&str, Vec<&Rgb>)]) {
    let at = |side: u32| DetectorConfig {
        score_threshold: 0.05,
        passes: vec![Pass {
            scale: PassScale::LongSide {
                min: side,
                max: side,
            },
            min_face: 0.0,
            max_face: f32::INFINITY,
            score_weight: 1.0,
        }],
        ..cfg.clone()
    };
    let steps: [(&str, bool, f32, u32); 7] = [
        ("colour 0 @640", false, 0.0, 640),
        ("colour .4 @640", false, 0.4, 640),
        ("colour .4 @960", false, 0.4, 960),
        ("colour 1 @640", false, 1.0, 640),
        ("grey .4 @640", true, 0.4, 640),
        ("grey 1 @640", true, 1.0, 640),
        ("grey 1 @960", true, 1.0, 960),
    ];
    for (name, imgs) in sets {
        let misses: Vec<&Rgb> = imgs
            .iter()
            .copied()
            .filter(|im| p.detect_with_retry(im, cfg).unwrap_or_default().is_empty())
            .collect();
        println!(
            "{name}: shipped chain finds nothing on {} of {}",
            misses.len(),
            imgs.len()
        );
        let mut scores: Vec<Vec<(f32, f32)>> = Vec::new();
        for im in &misses {
            let (w, h) = im.dimensions();
            let mut row = Vec::new();
            for &(_, g, pf, side) in &steps {
                let pad = (w.max(h) as f32 * pf).round() as u32;
                let base = if g { grey(im) } else { (*im).clone() };
                let dets = p
                    .detect(&pad_canvas(&base, pad), &at(side))
                    .unwrap_or_default();
                row.push(best_scores(dets, pad, w, h));
            }
            scores.push(row);
        }
        for (k, (sname, ..)) in steps.iter().enumerate() {
            let found = |low: f32| {
                scores
                    .iter()
                    .filter(|r| r[k].1 > cfg.score_threshold || r[k].0 > low)
                    .count()
            };
            println!(
                "  {sname:<16} finds {} (fill > .3), {} (fill > .4), {} (fill > .5)",
                found(0.3),
                found(0.4),
                found(0.5)
            );
        }
        let any = |low: f32| {
            scores
                .iter()
                .filter(|r| r.iter().any(|s| s.1 > cfg.score_threshold || s.0 > low))
                .count()
        };
        println!(
            "  any of them       finds {} (fill > .3), {} (fill > .5)",
            any(0.3),
            any(0.5)
        );
        let cu: Vec<[f32; 4]> = misses.iter().map(|im| closeup_scores(c, im)).collect();
        for thr in [0.7f32, 0.65, 0.6, 0.5] {
            let n = cu.iter().filter(|s| s[0] > thr || s[2] > thr).count();
            println!("  close-up > {thr:.2}  finds {n}");
        }
        if *name == "anime" {
            for (r, s) in scores.iter().zip(&cu) {
                let r: Vec<String> = r.iter().map(|(f, a)| format!("{f:.2}/{a:.2}")).collect();
                println!(
                    "    fill/any per step: {} close-up {:.2}/{:.2}",
                    r.join(" "),
                    s[0],
                    s[2]
                );
            }
        }
    }
}

/// Best scores over the canvases a variant tries.
fn retry(t: &Table, v: &Variant) -> (f32, f32) {
    let mut best = (0.0f32, 0.0f32);
    for (i, row) in t.iter().enumerate() {
        if (i == 1 && !v.flip) || (i == 2 && !v.grey) {
            continue;
        }
        for (j, s) in row.iter().enumerate() {
            if v.pads.contains(&PADS[j]) {
                best = (best.0.max(s.0), best.1.max(s.1));
            }
        }
    }
    best
}

/// Whether the variant accepts a face: any box above the normal threshold, or a frame-filling
/// box above the variant's low threshold.
fn accepts(s: (f32, f32), v: &Variant, normal: f32) -> bool {
    s.1 > normal || s.0 > v.low
}

fn main() {
    let data = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or("../shared/evaldata".into()),
    );
    let backend = facelens_infer::create_backend(BackendKind::Rten, 1).expect("backend");
    let p = Models::load_embedded(backend.as_ref())
        .and_then(Pipeline::new)
        .expect("models");
    let cfg = DetectorConfig::fast(640);
    let closeup = facelens_models::get("blazeface_short")
        .ok_or_else(|| "not embedded".to_string())
        .and_then(|m| {
            backend
                .load(m.id, ModelBytes::Static(m.bytes))
                .map_err(|e| e.to_string())
        })
        .and_then(|m| CloseUpDetector::new(m).map_err(|e| e.to_string()))
        .expect("close-up model");
    let limits = DecodeLimits::default();
    let manifest =
        std::fs::read_to_string(data.join("attributes/manifest.jsonl")).expect("manifest");
    let records = load_attribute_manifest(&manifest, None).expect("manifest");
    let variants = vec![
        Variant {
            name: "pad.4",
            pads: vec![0.4],
            flip: false,
            grey: false,
            low: 0.3,
        },
        Variant {
            name: "pad.4 low.2",
            pads: vec![0.4],
            flip: false,
            grey: false,
            low: 0.2,
        },
        Variant {
            name: "pad.15",
            pads: vec![0.15],
            flip: false,
            grey: false,
            low: 0.3,
        },
        Variant {
            name: "pad1",
            pads: vec![1.0],
            flip: false,
            grey: false,
            low: 0.3,
        },
        Variant {
            name: "pad.15/.4/1",
            pads: vec![0.15, 0.4, 1.0],
            flip: false,
            grey: false,
            low: 0.3,
        },
        Variant {
            name: "pad.4 flip",
            pads: vec![0.4],
            flip: true,
            grey: false,
            low: 0.3,
        },
        Variant {
            name: "pad.4 grey",
            pads: vec![0.4],
            flip: false,
            grey: true,
            low: 0.3,
        },
        Variant {
            name: "all .3",
            pads: vec![0.15, 0.4, 1.0],
            flip: true,
            grey: true,
            low: 0.3,
        },
        Variant {
            name: "all .2",
            pads: vec![0.15, 0.4, 1.0],
            flip: true,
            grey: true,
            low: 0.2,
        },
    ];
    // Positives: images where the normal pass finds nothing.
    let mut groups: Vec<(&str, Vec<Rgb>)> = vec![("anime", vec![]), ("human", vec![])];
    let mut first_found = [0usize; 2];
    let mut calib: Vec<Rgb> = Vec::new();
    let mut totals = [0usize; 2];
    for r in &records {
        let Ok(bytes) = std::fs::read(data.join(&r.file)) else {
            continue;
        };
        let Ok(dec) = decode(&bytes, &limits) else {
            continue;
        };
        let g = usize::from(r.face_type.as_deref() != Some("anime"));
        totals[g] += 1;
        if !p.detect(&dec.image, &cfg).unwrap_or_default().is_empty() {
            first_found[g] += 1;
            if g == 1 && calib.len() < 600 && totals[1] % 5 == 0 {
                calib.push(dec.image);
            }
            continue;
        }
        groups[g].1.push(dec.image);
    }
    println!(
        "normal pass: anime {}/{}, human {}/{}",
        first_found[0], totals[0], first_found[1], totals[1]
    );
    // Negatives: square patches of WIDER images that overlap no labelled face (boxes grown
    // by half their size), at several sizes, resized to 64..160 px like attribute crops.
    let wider = std::fs::read_to_string(data.join("detection/manifest.jsonl")).expect("wider");
    let gts = load_wider_manifest(&wider).expect("wider manifest");
    let mut negs: Vec<Rgb> = Vec::new();
    for (i, gt) in gts.iter().enumerate() {
        let Ok(bytes) = std::fs::read(data.join(&gt.file)) else {
            continue;
        };
        let Ok(dec) = decode(&bytes, &limits) else {
            continue;
        };
        let img = dec.image;
        let (w, h) = img.dimensions();
        let mut k = 0usize;
        for side in [64u32, 128, 256] {
            let step = side / 2;
            let mut y = (i as u32 * 7) % step;
            while y + side <= h {
                let mut x = (i as u32 * 13) % step;
                while x + side <= w {
                    let clear = gt.boxes.iter().all(|b| {
                        let (bx, by, bw, bh) = (b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32);
                        let (gx, gy) = (bw * 0.5, bh * 0.5);
                        let (x0, y0, x1, y1) =
                            (x as f32, y as f32, (x + side) as f32, (y + side) as f32);
                        x1 <= bx - gx || x0 >= bx + bw + gx || y1 <= by - gy || y0 >= by + bh + gy
                    });
                    if clear && k.is_multiple_of(131) {
                        let crop = imageops::crop_imm(&img, x, y, side, side).to_image();
                        let out = [64u32, 96, 128, 160][(k / 131) % 4];
                        negs.push(resize(&crop, out, out));
                    }
                    if clear {
                        k += 1;
                    }
                    x += step;
                }
                y += step;
            }
        }
    }
    let (neg_found, neg_left): (Vec<&Rgb>, Vec<&Rgb>) = negs
        .iter()
        .partition(|n| !p.detect(n, &cfg).unwrap_or_default().is_empty());
    let neg_first = neg_found.len();
    println!(
        "negatives: {} patches, normal pass finds a face in {}",
        negs.len(),
        neg_first
    );
    if std::env::var_os("RETRY_PROBE_LAST").is_some() {
        let sets = [
            ("anime", groups[0].1.iter().collect::<Vec<_>>()),
            ("human", groups[1].1.iter().collect::<Vec<_>>()),
            ("negatives", neg_left.clone()),
        ];
        last_steps(&p, &closeup, &cfg, &sets);
        return;
    }
    let tables =
        |imgs: &[&Rgb]| -> Vec<Table> { imgs.iter().map(|im| table(&p, im, &cfg)).collect() };
    let anime_t = tables(&groups[0].1.iter().collect::<Vec<_>>());
    let human_t = tables(&groups[1].1.iter().collect::<Vec<_>>());
    let neg_t = tables(&neg_left);
    calibrate(&p, &closeup, &calib, &cfg);
    let cu = |imgs: &[&Rgb]| -> Vec<[f32; 4]> {
        imgs.iter().map(|im| closeup_scores(&closeup, im)).collect()
    };
    let cu_anime = cu(&groups[0].1.iter().collect::<Vec<_>>());
    let cu_human = cu(&groups[1].1.iter().collect::<Vec<_>>());
    let cu_neg = cu(&neg_left);
    if let Ok(path) = std::env::var("RETRY_PROBE_DUMP") {
        let dump = serde_json::json!({"pads": PADS, "anime": anime_t, "human": human_t, "neg": neg_t,
            "closeup": {"anime": cu_anime, "human": cu_human, "neg": cu_neg},
            "first": {"anime": first_found[0], "human": first_found[1], "neg": neg_first},
            "totals": {"anime": totals[0], "human": totals[1], "neg": negs.len()}});
        let _ = std::fs::write(path, dump.to_string());
    }
    let score =
        |ts: &[Table], v: &Variant| -> Vec<(f32, f32)> { ts.iter().map(|t| retry(t, v)).collect() };
    let anime_scores: Vec<Vec<(f32, f32)>> = variants.iter().map(|v| score(&anime_t, v)).collect();
    let human_scores: Vec<Vec<(f32, f32)>> = variants.iter().map(|v| score(&human_t, v)).collect();
    let neg_scores: Vec<Vec<(f32, f32)>> = variants.iter().map(|v| score(&neg_t, v)).collect();
    println!(
        "{:<14} {:>14} {:>14} {:>16}",
        "variant", "anime found", "human found", "false on negs"
    );
    for (i, v) in variants.iter().enumerate() {
        let a = anime_scores[i]
            .iter()
            .filter(|s| accepts(**s, v, cfg.score_threshold))
            .count();
        let h = human_scores[i]
            .iter()
            .filter(|s| accepts(**s, v, cfg.score_threshold))
            .count();
        let n = neg_scores[i]
            .iter()
            .filter(|s| accepts(**s, v, cfg.score_threshold))
            .count();
        println!(
            "{:<14} {:>8}/{:<5} {:>8}/{:<5} {:>10}/{:<5}",
            v.name,
            first_found[0] + a,
            totals[0],
            first_found[1] + h,
            totals[1],
            neg_first + n,
            negs.len()
        );
    }
    // Chains of steps, each tried only when the ones before found nothing (any step accepting
    // = found): RetinaFace canvases (transform 0 colour / 2 grey, PADS index), then optionally
    // the close-up detector (as is or on the 0.4 canvas) above a threshold.
    type Chain = (&'static str, Vec<(usize, usize)>, Option<f32>);
    let chains: Vec<Chain> = vec![
        ("colour .4, grey .4 (before)", vec![(0, 1), (2, 1)], None),
        ("colour .4, grey 1", vec![(0, 1), (2, 2)], None),
        (
            "colour .4, grey .4, close-up .75",
            vec![(0, 1), (2, 1)],
            Some(0.75),
        ),
        (
            "colour .4, grey 1, close-up .7",
            vec![(0, 1), (2, 2)],
            Some(0.7),
        ),
        (
            "colour .4, grey 1, close-up .75 (shipped)",
            vec![(0, 1), (2, 2)],
            Some(0.75),
        ),
        (
            "colour .4, grey 1, close-up .8",
            vec![(0, 1), (2, 2)],
            Some(0.8),
        ),
        (
            "colour .4, grey .4, grey 1, close-up .75",
            vec![(0, 1), (2, 1), (2, 2)],
            Some(0.75),
        ),
    ];
    let found = |t: &Table, c: &[f32; 4], chain: &Chain| {
        chain
            .1
            .iter()
            .any(|&(i, j)| t[i][j].1 > cfg.score_threshold || t[i][j].0 > 0.3)
            || chain.2.is_some_and(|thr| c[0] > thr || c[2] > thr)
    };
    println!(
        "{:<44} {:>12} {:>12} {:>14}",
        "chain", "anime", "human", "false on negs"
    );
    for chain in &chains {
        let count = |ts: &[Table], cs: &[[f32; 4]]| {
            ts.iter()
                .zip(cs)
                .filter(|(t, c)| found(t, c, chain))
                .count()
        };
        println!(
            "{:<44} {:>8}/{:<3} {:>8}/{:<4} {:>9}/{:<4}",
            chain.0,
            first_found[0] + count(&anime_t, &cu_anime),
            totals[0],
            first_found[1] + count(&human_t, &cu_human),
            totals[1],
            neg_first + count(&neg_t, &cu_neg),
            negs.len()
        );
    }
    // Score distribution of frame-filling boxes on negatives for the widest variant.
    let last = variants.len() - 1;
    let mut s: Vec<f32> = neg_scores[last].iter().map(|x| x.0).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    println!(
        "top negative fill scores (all variants): {:?}",
        &s[..s.len().min(15)]
    );
    let mut a: Vec<f32> = anime_scores[last].iter().map(|x| x.0).collect();
    a.sort_by(|a, b| b.total_cmp(a));
    println!("anime fill scores (all variants): {:?}", a);
}

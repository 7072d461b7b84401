//! Annotated copies of analysed images for `facelens detect --annotate`: a box, the five
//! landmarks and a short label per face, so a person can check a folder's results at a glance.
//!
//! The text is drawn with a 5×7 bitmap font written out below (ASCII upper case, digits and a
//! little punctuation), so the binary needs no font file and no font crate; lower case is drawn
//! as upper case. Coordinates are those of the upright image (after EXIF), which is also what
//! is written, so the copy has the upright image's size.

use facelens_core::types::Face;
use facelens_imaging::image::{self, ImageFormat, Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// Box colours, one per face (cycled).
const PALETTE: [[u8; 3]; 6] = [
    [0, 230, 64],
    [255, 64, 64],
    [64, 160, 255],
    [255, 200, 0],
    [230, 64, 230],
    [0, 220, 220],
];
/// Landmark colours: image-left eye, image-right eye, nose, mouth corners.
const LANDMARK_COLOURS: [[u8; 3]; 5] = [
    [0, 255, 255],
    [0, 255, 255],
    [255, 255, 0],
    [255, 0, 255],
    [255, 0, 255],
];

/// Where the annotated copy of `rel` goes under `out_dir`: the same relative path; formats other
/// than jpg and png are written as png.
pub fn output_path(out_dir: &Path, rel: &Path) -> PathBuf {
    let mut p = out_dir.join(rel);
    let keep = p
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        .unwrap_or(false);
    if !keep {
        p.set_extension("png");
    }
    p
}

/// The short label drawn above a face: index, gender and age, detector score.
pub fn label(index: usize, face: &Face) -> String {
    let mut s = format!("#{}", index + 1);
    let a = &face.attributes;
    if let Some(g) = &a.gender {
        s.push(' ');
        s.push(if g.kind.starts_with('f') { 'F' } else { 'M' });
    }
    if let Some(age) = a.age {
        s.push_str(&format!(" {}", age.round().max(0.0) as u32));
    }
    s.push_str(&format!(" {:.0}%", face.score * 100.0));
    s
}

/// Draw every face onto `img`.
pub fn draw_faces(img: &mut RgbImage, faces: &[Face]) {
    let short = img.width().min(img.height());
    let thick = (short / 250).max(1) as i64;
    let scale = (short / 350).max(1) as i64;
    for (i, face) in faces.iter().enumerate() {
        let colour = Rgb(PALETTE[i % PALETTE.len()]);
        let b = &face.bbox;
        let (x1, y1) = (b.x1.round() as i64, b.y1.round() as i64);
        let (x2, y2) = (b.x2.round() as i64, b.y2.round() as i64);
        rect_outline(img, x1, y1, x2, y2, thick, colour);
        let r = thick + 1;
        for (p, c) in face.landmarks.iter().zip(LANDMARK_COLOURS) {
            let (x, y) = (p.x.round() as i64, p.y.round() as i64);
            fill_rect(img, x - r, y - r, x + r, y + r, Rgb(c));
        }
        let text = label(i, face);
        let (tw, th) = text_size(&text, scale);
        // Above the box when there is room, else inside its top edge; kept within the image.
        let tx = x1.clamp(0, (img.width() as i64 - tw).max(0));
        let ty = if y1 - th - thick >= 0 {
            y1 - th - thick
        } else {
            (y1 + thick).max(0)
        };
        fill_rect(img, tx, ty, tx + tw - 1, ty + th - 1, colour);
        draw_text(img, tx + scale, ty + scale, &text, scale, Rgb([0, 0, 0]));
    }
}

/// Write `img` to `path` (creating folders) as jpg (quality 90) or png, by the extension.
pub fn save(img: &RgbImage, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let is_jpeg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg"));
    let file =
        std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let result = if is_jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 90).encode_image(img)
    } else {
        img.write_to(&mut w, ImageFormat::Png)
    };
    result.map_err(|e| format!("writing {}: {e}", path.display()))
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u64) < img.width() as u64 && (y as u64) < img.height() as u64 {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Fill the inclusive rectangle, clipped to the image.
fn fill_rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, c: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (xa, xb) = (x1.max(0), x2.min(w - 1));
    let (ya, yb) = (y1.max(0), y2.min(h - 1));
    for y in ya..=yb {
        for x in xa..=xb {
            put(img, x, y, c);
        }
    }
}

/// A rectangle outline `t` pixels thick, drawn inwards from the box edges.
fn rect_outline(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, t: i64, c: Rgb<u8>) {
    fill_rect(img, x1, y1, x2, y1 + t - 1, c);
    fill_rect(img, x1, y2 - t + 1, x2, y2, c);
    fill_rect(img, x1, y1, x1 + t - 1, y2, c);
    fill_rect(img, x2 - t + 1, y1, x2, y2, c);
}

/// Size of `text`'s background: glyphs 6×8 cells (5×7 and a gap) times `scale`, plus a border.
fn text_size(text: &str, scale: i64) -> (i64, i64) {
    let n = text.chars().count() as i64;
    (n * 6 * scale + scale, 8 * scale + scale)
}

fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, c: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let rows = glyph(ch);
        let gx = x + i as i64 * 6 * scale;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0b10000 >> col) != 0 {
                    let px = gx + col * scale;
                    let py = y + row as i64 * scale;
                    fill_rect(img, px, py, px + scale - 1, py + scale - 1, c);
                }
            }
        }
    }
}

/// The 5×7 glyph of `ch`, one row per byte, the leftmost pixel in bit 4.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        ' ' => [0; 7],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04], // '?'
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facelens_core::geometry::{Point, Rect};

    fn face() -> Face {
        Face {
            bbox: Rect {
                x1: 20.0,
                y1: 30.0,
                x2: 80.0,
                y2: 100.0,
            },
            rotation: 0.0,
            score: 0.987,
            landmarks: [
                Point::new(35.0, 55.0),
                Point::new(65.0, 55.0),
                Point::new(50.0, 70.0),
                Point::new(38.0, 85.0),
                Point::new(62.0, 85.0),
            ],
            mesh: None,
            mesh_score: None,
            pose: Default::default(),
            quality: Default::default(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn draws_box_landmarks_and_label_inside_the_image() {
        let mut img = RgbImage::from_pixel(120, 140, Rgb([10, 10, 10]));
        let f = face();
        draw_faces(&mut img, &[f]);
        // The box's corners and a landmark are painted; a pixel well inside the box is not.
        assert_eq!(img.get_pixel(20, 30), &Rgb(PALETTE[0]));
        assert_eq!(img.get_pixel(80, 100), &Rgb(PALETTE[0]));
        assert_eq!(img.get_pixel(50, 70), &Rgb(LANDMARK_COLOURS[2]));
        assert_eq!(img.get_pixel(50, 45), &Rgb([10, 10, 10]));
        // The label sits above the box (rows 20..29) and has black text on the box colour.
        let row: Vec<_> = (20..70).map(|x| *img.get_pixel(x, 24)).collect();
        assert!(row.contains(&Rgb([0, 0, 0])), "label text drawn");
        assert!(row.contains(&Rgb(PALETTE[0])), "label background drawn");
    }

    #[test]
    fn faces_at_the_border_are_clipped_not_panicking() {
        let mut img = RgbImage::from_pixel(40, 40, Rgb([0, 0, 0]));
        let mut f = face();
        f.bbox = Rect {
            x1: -30.0,
            y1: -10.0,
            x2: 300.0,
            y2: 50.0,
        };
        draw_faces(&mut img, &[f.clone(), f]);
        // Both labels are clamped into the image's top-left corner.
        assert_ne!(img.get_pixel(0, 0), &Rgb([0, 0, 0]));
    }

    #[test]
    fn label_and_paths() {
        assert_eq!(label(0, &face()), "#1 99%");
        assert_eq!(
            output_path(Path::new("out"), Path::new("a/b.BMP")),
            Path::new("out/a/b.png")
        );
        assert_eq!(
            output_path(Path::new("out"), Path::new("a/b.JPG")),
            Path::new("out/a/b.JPG")
        );
        // Every glyph used by labels is defined (not the '?' fallback).
        for ch in "#0123456789MF% ".chars() {
            assert_ne!(glyph(ch), glyph('\u{1}'), "{ch:?}");
        }
    }
}

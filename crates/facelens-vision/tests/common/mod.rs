//! Pieces shared by the integration tests (each test file includes this with `mod common;`).

use facelens_imaging::Rgb;

/// A drawn, roughly face-like picture: skin-coloured oval, dark eyes and brows, a shaded nose
/// and a red mouth on a textured background.
pub fn synthetic_face(w: u32, h: u32) -> Rgb {
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.55);
    let (rx, ry) = (w as f32 * 0.22, h as f32 * 0.3);
    let inside = |x: f32, y: f32, ex: f32, ey: f32, ax: f32, ay: f32| {
        let (dx, dy) = ((x - ex) / ax, (y - ey) / ay);
        dx * dx + dy * dy <= 1.0
    };
    Rgb::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let eye_dx = rx * 0.42;
        let eye_y = cy - ry * 0.15;
        let px = if inside(fx, fy, cx - eye_dx, eye_y, rx * 0.14, ry * 0.06)
            || inside(fx, fy, cx + eye_dx, eye_y, rx * 0.14, ry * 0.06)
        {
            [40, 30, 30]
        } else if inside(fx, fy, cx - eye_dx, eye_y - ry * 0.16, rx * 0.2, ry * 0.035)
            || inside(fx, fy, cx + eye_dx, eye_y - ry * 0.16, rx * 0.2, ry * 0.035)
        {
            [70, 50, 40]
        } else if inside(fx, fy, cx, cy + ry * 0.45, rx * 0.35, ry * 0.07) {
            [170, 60, 60]
        } else if inside(fx, fy, cx + rx * 0.05, cy + ry * 0.15, rx * 0.08, ry * 0.2) {
            [185, 140, 115]
        } else if inside(fx, fy, cx, cy - ry * 0.55, rx * 1.1, ry * 0.6) && fy < cy - ry * 0.5 {
            [60, 40, 25]
        } else if inside(fx, fy, cx, cy, rx, ry) {
            let shade = ((fx - cx) / rx * 20.0) as i32;
            [
                (215 - shade).clamp(0, 255) as u8,
                (175 - shade).clamp(0, 255) as u8,
                (150 - shade).clamp(0, 255) as u8,
            ]
        } else {
            let v = (x * 7 + y * 13) % 64;
            [90 + v as u8, 120 + (v / 2) as u8, 160]
        };
        facelens_imaging::image::Rgb(px)
    })
}

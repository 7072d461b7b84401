//! Pure 2-D geometry: boxes, overlap, non-maximum suppression and the similarity transforms
//! used to align faces.
//!
//! Everything works in `f32` pixel coordinates of the upright image, with `(0, 0)` at the
//! top-left corner of the top-left pixel. Boxes are half-open `[x1, x2) × [y1, y2)`; the WIDER
//! evaluator's `+1` pixel convention lives in the evaluator, not here.

use serde::{Deserialize, Serialize};

/// A point in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    pub fn dist(self, o: Point) -> f32 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }

    pub fn mid(self, o: Point) -> Point {
        Point::new((self.x + o.x) * 0.5, (self.y + o.y) * 0.5)
    }
}

/// An axis-aligned box given by its corners.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rect {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl Rect {
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> Point {
        Point::new((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }

    pub fn intersection(&self, o: &Rect) -> f32 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        w * h
    }

    /// Intersection over union; 0 for two empty boxes.
    pub fn iou(&self, o: &Rect) -> f32 {
        let inter = self.intersection(o);
        let union = self.area() + o.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Clip to `[0, w] × [0, h]`.
    pub fn clip(&self, w: f32, h: f32) -> Rect {
        Rect::new(
            self.x1.clamp(0.0, w),
            self.y1.clamp(0.0, h),
            self.x2.clamp(0.0, w),
            self.y2.clamp(0.0, h),
        )
    }

    pub fn scale(&self, sx: f32, sy: f32) -> Rect {
        Rect::new(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)
    }

    pub fn translate(&self, dx: f32, dy: f32) -> Rect {
        Rect::new(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)
    }

    /// Fraction of this box that lies inside `[0, w] × [0, h]` (1 = fully inside).
    pub fn inside_fraction(&self, w: f32, h: f32) -> f32 {
        let a = self.area();
        if a <= 0.0 {
            return 0.0;
        }
        self.clip(w, h).area() / a
    }
}

/// Greedy non-maximum suppression.
///
/// `items` are `(box, score)`; returns the indices kept, highest score first. Ties keep the
/// earlier index so the result is deterministic. NaN scores sort last and are never kept ahead of
/// a real score.
pub fn nms(items: &[(Rect, f32)], iou_threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (items[a].1, items[b].1);
        sb.partial_cmp(&sa)
            .unwrap_or_else(|| sa.is_nan().cmp(&sb.is_nan()))
            .then(a.cmp(&b))
    });
    let mut keep: Vec<usize> = Vec::new();
    let mut suppressed = vec![false; items.len()];
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[pos + 1..] {
            if !suppressed[j] && items[i].0.iou(&items[j].0) > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// A 2-D affine map `p ↦ (a·x + b·y + c, d·x + e·y + f)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub m: [f32; 6],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    };

    pub fn apply(&self, p: Point) -> Point {
        let [a, b, c, d, e, f] = self.m;
        Point::new(a * p.x + b * p.y + c, d * p.x + e * p.y + f)
    }

    /// Inverse map; `None` when the linear part is singular.
    pub fn invert(&self) -> Option<Affine> {
        let [a, b, c, d, e, f] = self.m;
        let det = a * e - b * d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine {
            m: [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)],
        })
    }

    /// `self ∘ first`: apply `first`, then `self`.
    pub fn compose(&self, first: &Affine) -> Affine {
        let [a, b, c, d, e, f] = self.m;
        let [p, q, r, s, t, u] = first.m;
        Affine {
            m: [
                a * p + b * s,
                a * q + b * t,
                a * r + b * u + c,
                d * p + e * s,
                d * q + e * t,
                d * r + e * u + f,
            ],
        }
    }

    /// Uniform scale of the linear part (exact for similarity transforms).
    pub fn scale(&self) -> f32 {
        let [a, b, _, d, e, _] = self.m;
        ((a * e - b * d).abs()).sqrt()
    }

    /// A similarity (rotation, uniform scale, translation) that maps a square crop of side
    /// `side` centred on `center`, rotated by `angle` radians, onto an `out × out` image.
    pub fn crop_to(center: Point, side: f32, angle: f32, out: f32) -> Affine {
        let s = out / side.max(1e-6);
        let (sin, cos) = angle.sin_cos();
        // Rotate by -angle so that a face tilted by `angle` becomes upright.
        let (a, b, d, e) = (s * cos, s * sin, -s * sin, s * cos);
        let c = out * 0.5 - (a * center.x + b * center.y);
        let f = out * 0.5 - (d * center.x + e * center.y);
        Affine {
            m: [a, b, c, d, e, f],
        }
    }

    /// Least-squares similarity transform mapping `src[i]` onto `dst[i]` (Umeyama, no
    /// reflection). `None` for fewer than two points or degenerate input.
    pub fn estimate_similarity(src: &[Point], dst: &[Point]) -> Option<Affine> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let nf = n as f32;
        let (mut sx, mut sy, mut dx, mut dy) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            sx += src[i].x;
            sy += src[i].y;
            dx += dst[i].x;
            dy += dst[i].y;
        }
        let (sx, sy, dx, dy) = (sx / nf, sy / nf, dx / nf, dy / nf);
        // With complex numbers z = x + iy, the best similarity is w = a·z + t where
        // a = Σ conj(zs)·zd / Σ |zs|² over centred points.
        let (mut num_re, mut num_im, mut den) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let (px, py) = (src[i].x - sx, src[i].y - sy);
            let (qx, qy) = (dst[i].x - dx, dst[i].y - dy);
            num_re += px * qx + py * qy;
            num_im += px * qy - py * qx;
            den += px * px + py * py;
        }
        if den <= 1e-12 || !den.is_finite() {
            return None;
        }
        let (a, b) = (num_re / den, num_im / den);
        // Matrix [[a, -b], [b, a]].
        let c = dx - (a * sx - b * sy);
        let f = dy - (b * sx + a * sy);
        Some(Affine {
            m: [a, -b, c, b, a, f],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_basic() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        let b = Rect::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&Rect::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(a.iou(&a), 1.0);
        let empty = Rect::new(3.0, 3.0, 3.0, 3.0);
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn nms_keeps_best_and_distinct() {
        let items = vec![
            (Rect::new(0.0, 0.0, 10.0, 10.0), 0.8),
            (Rect::new(1.0, 1.0, 11.0, 11.0), 0.9),
            (Rect::new(50.0, 50.0, 60.0, 60.0), 0.5),
            (Rect::new(0.0, 0.0, 10.0, 10.0), f32::NAN),
        ];
        assert_eq!(nms(&items, 0.4), vec![1, 2]);
        assert_eq!(nms(&[], 0.4), Vec::<usize>::new());
    }

    #[test]
    fn similarity_recovers_known_transform() {
        let t = Affine::crop_to(Point::new(40.0, 30.0), 20.0, 0.3, 112.0);
        let src = [
            Point::new(30.0, 20.0),
            Point::new(50.0, 22.0),
            Point::new(40.0, 31.0),
            Point::new(33.0, 40.0),
            Point::new(47.0, 41.0),
        ];
        let dst: Vec<Point> = src.iter().map(|&p| t.apply(p)).collect();
        let est = Affine::estimate_similarity(&src, &dst).expect("estimate");
        for (a, b) in est.m.iter().zip(t.m.iter()) {
            assert!((a - b).abs() < 1e-3, "{:?} vs {:?}", est.m, t.m);
        }
        let inv = est.invert().expect("invertible");
        let back = inv.apply(dst[2]);
        assert!(back.dist(src[2]) < 1e-3);
        assert!((est.scale() - 112.0 / 20.0).abs() < 1e-3);
        assert!(Affine::estimate_similarity(&src[..1], &dst[..1]).is_none());
        let same = [Point::new(1.0, 1.0); 3];
        assert!(Affine::estimate_similarity(&same, &same).is_none());
    }

    #[test]
    fn compose_then_invert_is_identity() {
        let a = Affine::crop_to(Point::new(10.0, 20.0), 30.0, -0.5, 64.0);
        let b = Affine::crop_to(Point::new(-5.0, 7.0), 12.0, 1.1, 192.0);
        let ab = a.compose(&b);
        let p = Point::new(3.0, 4.0);
        assert!(ab.apply(p).dist(a.apply(b.apply(p))) < 1e-3);
        let id = ab.compose(&ab.invert().expect("inv"));
        assert!(id.apply(p).dist(p) < 1e-3);
    }

    #[test]
    fn inside_fraction() {
        let r = Rect::new(-5.0, 0.0, 5.0, 10.0);
        assert!((r.inside_fraction(100.0, 100.0) - 0.5).abs() < 1e-6);
    }
}

//! Image → tensor conversions. Each model documents its own layout and normalisation; these
//! helpers keep the conversions in one place so that the same crop feeds different models
//! without re-implementing loops.

use facelens_imaging::Rgb;
use facelens_infer::{InferError, Model, Tensor};

/// The index of `model`'s output called `name`, or a load error naming both.
pub(crate) fn output_index(model: &dyn Model, name: &str) -> Result<usize, InferError> {
    model.output_index(name).ok_or_else(|| InferError::Load {
        name: model.name().to_string(),
        reason: format!("no output named {name}"),
    })
}

/// Channel order of the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Rgb,
    Bgr,
}

/// Per-channel normalisation `(v - mean[c]) * scale[c]`, applied in tensor channel order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    pub mean: [f32; 3],
    pub scale: [f32; 3],
}

impl Norm {
    pub const IDENTITY: Norm = Norm {
        mean: [0.0; 3],
        scale: [1.0; 3],
    };
    pub const UNIT: Norm = Norm {
        mean: [0.0; 3],
        scale: [1.0 / 255.0; 3],
    };
}

/// `1 × 3 × H × W` tensor, optionally padded to `pad_h × pad_w` with `pad_value` (the value is in
/// *normalised* units, e.g. 0 for mean padding).
pub fn to_nchw(
    img: &Rgb,
    ch: Channels,
    norm: Norm,
    pad_to: Option<(u32, u32)>,
    pad_value: f32,
) -> Tensor {
    let (w, h) = img.dimensions();
    let (pw, ph) = pad_to.unwrap_or((w, h));
    let (pw, ph) = (pw.max(w) as usize, ph.max(h) as usize);
    let plane = pw * ph;
    let mut data = vec![pad_value; 3 * plane];
    let raw = img.as_raw();
    let order: [usize; 3] = match ch {
        Channels::Rgb => [0, 1, 2],
        Channels::Bgr => [2, 1, 0],
    };
    for y in 0..h as usize {
        let row = &raw[y * w as usize * 3..(y + 1) * w as usize * 3];
        for (c, &src_c) in order.iter().enumerate() {
            let out = &mut data[c * plane + y * pw..c * plane + y * pw + w as usize];
            let (m, s) = (norm.mean[c], norm.scale[c]);
            for (x, o) in out.iter_mut().enumerate() {
                *o = (row[x * 3 + src_c] as f32 - m) * s;
            }
        }
    }
    Tensor {
        shape: vec![1, 3, ph, pw],
        data,
    }
}

/// `1 × H × W × 3` tensor.
pub fn to_nhwc(img: &Rgb, ch: Channels, norm: Norm) -> Tensor {
    let (w, h) = img.dimensions();
    let order: [usize; 3] = match ch {
        Channels::Rgb => [0, 1, 2],
        Channels::Bgr => [2, 1, 0],
    };
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for px in img.as_raw().chunks_exact(3) {
        for (c, &src_c) in order.iter().enumerate() {
            data.push((px[src_c] as f32 - norm.mean[c]) * norm.scale[c]);
        }
    }
    Tensor {
        shape: vec![1, h as usize, w as usize, 3],
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_padding() {
        let img = Rgb::from_fn(3, 2, image_px);
        let t = to_nchw(&img, Channels::Bgr, Norm::IDENTITY, Some((4, 4)), -1.0);
        assert_eq!(t.shape, vec![1, 3, 4, 4]);
        // channel 0 is blue = 7 for every pixel
        assert_eq!(t.data[0], 7.0);
        // red channel (index 2) at (x=2, y=1) is 10*2 + 1 = 21
        assert_eq!(t.data[2 * 16 + 4 + 2], 21.0);
        // padding
        assert_eq!(t.data[3], -1.0);
        let n = to_nhwc(&img, Channels::Rgb, Norm::UNIT);
        assert_eq!(n.shape, vec![1, 2, 3, 3]);
        assert!((n.data[(3 + 2) * 3] - 21.0 / 255.0).abs() < 1e-6);
    }

    fn image_px(x: u32, y: u32) -> facelens_imaging::image::Rgb<u8> {
        facelens_imaging::image::Rgb([(10 * x + y) as u8, 0, 7])
    }
}

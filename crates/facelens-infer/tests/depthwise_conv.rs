//! The vendored rten (third_party/rten) replaces rten 0.27's depthwise convolution kernel with
//! one the compiler vectorizes. The patch claims bit-identical results: every output element is
//! the bias plus the same products added in the same order (kernel rows, then kernel columns).
//! This checks that claim against a plain reference loop, over the strides, paddings, dilations
//! and kernel sizes the shipped models use and a few they do not (stride 3 takes the kernel's
//! generic path), at every width from 1 to past a SIMD register, so a vector body and its
//! scalar tail are both covered.

use rten::BufferPool;
use rten::ops::{Padding, conv};
use rten_tensor::prelude::*;
use rten_tensor::{NdTensor, Tensor};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Uniform in [-1, 1) with a full 24-bit mantissa's worth of variety.
        ((self.0 >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    fn tensor<const N: usize>(&mut self, shape: [usize; N]) -> Tensor<f32> {
        let len = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|_| self.next_f32()).collect();
        Tensor::from_data(&shape, data)
    }
}

#[derive(Debug)]
struct Case {
    batch: usize,
    chans: usize,
    in_hw: [usize; 2],
    k_hw: [usize; 2],
    /// top, left, bottom, right
    pad: [usize; 4],
    strides: [usize; 2],
    dilations: [usize; 2],
    bias: bool,
}

/// Depthwise convolution the slow, obvious way, adding in rten's order.
fn reference(
    case: &Case,
    input: &Tensor<f32>,
    kernel: &Tensor<f32>,
    bias: Option<&[f32]>,
) -> NdTensor<f32, 4> {
    let [in_h, in_w] = case.in_hw;
    let [k_h, k_w] = case.k_hw;
    let [pt, pl, pb, pr] = case.pad;
    let [sy, sx] = case.strides;
    let [dy, dx] = case.dilations;
    let out_h = (in_h + pt + pb - dy * (k_h - 1) - 1) / sy + 1;
    let out_w = (in_w + pl + pr - dx * (k_w - 1) - 1) / sx + 1;
    let mut out = NdTensor::zeros([case.batch, case.chans, out_h, out_w]);
    for n in 0..case.batch {
        for c in 0..case.chans {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let mut acc = bias.map_or(0.0, |b| b[c]);
                    for ky in 0..k_h {
                        let iy = (oy * sy + ky * dy) as isize - pt as isize;
                        if iy < 0 || iy >= in_h as isize {
                            continue;
                        }
                        for kx in 0..k_w {
                            let ix = (ox * sx + kx * dx) as isize - pl as isize;
                            if ix < 0 || ix >= in_w as isize {
                                continue;
                            }
                            acc += input[[n, c, iy as usize, ix as usize]] * kernel[[c, 0, ky, kx]];
                        }
                    }
                    out[[n, c, oy, ox]] = acc;
                }
            }
        }
    }
    out
}

fn check(case: Case, rng: &mut Rng) {
    let [in_h, in_w] = case.in_hw;
    let [k_h, k_w] = case.k_hw;
    let input = rng.tensor([case.batch, case.chans, in_h, in_w]);
    let kernel = rng.tensor([case.chans, 1, k_h, k_w]);
    let bias: Option<Vec<f32>> = case
        .bias
        .then(|| (0..case.chans).map(|_| rng.next_f32()).collect());
    let bias_tensor = bias
        .as_ref()
        .map(|b| NdTensor::from_data([b.len()], b.clone()));

    let pool = BufferPool::new();
    let got = conv(
        &pool,
        input.view(),
        kernel.view(),
        bias_tensor.as_ref().map(|b| b.view()),
        Padding::Fixed(case.pad.into_iter().collect()),
        case.chans,
        &case.strides,
        &case.dilations,
    )
    .expect("depthwise conv runs");
    let want = reference(&case, &input, &kernel, bias.as_deref());

    assert_eq!(
        got.shape(),
        want.shape().as_slice(),
        "output shape, {case:?}"
    );
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "element {i}: rten {g} against reference {w}, {case:?}"
        );
    }
}

#[test]
fn depthwise_conv_matches_the_reference_bit_for_bit() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    // Every width from 1 to 40 covers empty, partial and full 16-lane vectors.
    for in_w in 1..=40 {
        for &(k, pad) in &[
            (3, [1, 1, 1, 1]),
            (3, [0, 0, 1, 1]),
            (5, [2, 2, 2, 2]),
            (1, [0, 0, 0, 0]),
        ] {
            for stride in 1..=3 {
                for dilation in 1..=2 {
                    let span = dilation * (k - 1) + 1;
                    if in_w + pad[1] + pad[3] < span || 6 + pad[0] + pad[2] < span {
                        continue;
                    }
                    check(
                        Case {
                            batch: 1 + (in_w % 2),
                            chans: 3 + (in_w % 5),
                            in_hw: [6, in_w],
                            k_hw: [k, k],
                            pad,
                            strides: [stride, stride],
                            dilations: [dilation, dilation],
                            bias: in_w % 3 != 0,
                        },
                        &mut rng,
                    );
                    cases += 1;
                }
            }
        }
    }
    // The shapes of the shipped models: RetinaFace's first depthwise layer, a stride-2 one, and
    // the mesh's 5x5 with asymmetric "same" padding.
    for case in [
        Case {
            batch: 1,
            chans: 8,
            in_hw: [48, 64],
            k_hw: [3, 3],
            pad: [1, 1, 1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            bias: true,
        },
        Case {
            batch: 2,
            chans: 16,
            in_hw: [33, 47],
            k_hw: [3, 3],
            pad: [1, 1, 1, 1],
            strides: [2, 2],
            dilations: [1, 1],
            bias: true,
        },
        Case {
            batch: 1,
            chans: 24,
            in_hw: [24, 24],
            k_hw: [5, 5],
            pad: [1, 1, 2, 2],
            strides: [2, 2],
            dilations: [1, 1],
            bias: false,
        },
    ] {
        check(case, &mut rng);
        cases += 1;
    }
    assert!(cases > 500, "only {cases} cases ran");
}

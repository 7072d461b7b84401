//! Running one attribute model over every face of an image: crops, views and batches.
//!
//! Why batches of views: a model run has a fixed cost besides its arithmetic, and a crowd
//! photo has many faces, so each model runs once over the views of all faces (up to
//! [`MAX_BATCH`] at a time, which bounds the activation memory) instead of once per face. Each
//! face gets one crop per template in its model's training framing ([`super::crop`]) and, for
//! the cheap models, that crop's mirror image; a face's outputs are the mean over its views
//! (test-time flip averaging cancels part of a single view's left/right bias).

use super::crop::{
    DLIB_PADDING, FER_48, UTKFACE_200, aligned_f32, batch_grey, batch_nchw, batch_nhwc,
    dlib_chip_template, flip_h, scaled_template,
};
use super::{AttributeOptions, Attributor, Job};
use facelens_core::Point;
use facelens_imaging::Rgb;
use facelens_infer::{InferError, Model, Tensor};
use std::sync::Arc;

/// Crop geometry per model (sizes are the models' input sizes).
const AGE_SIZE: u32 = 64;
const GENDER_SIZE: u32 = 32;
const EMOTION_SIZE: u32 = 64;
const GEAR_SIZE: u32 = 198;
const FACEAPI_SIZE: u32 = 112;
/// Margin of the emotion crop around the measured FER2013 framing: slightly zoomed in (0.62 vs
/// 0.57 FER accuracy at 0 on a dev sample; -0.05 and -0.12 were both 0.61).
pub const EMOTION_PADDING: f32 = -0.08;
/// Margin of the GEAR crop around the measured UTKFace framing (0 was best of -0.05 / 0 / 0.05).
pub const GEAR_PADDING: f32 = 0.0;
/// dlib chip paddings the age model is averaged over (each view also mirrored). Before face-api
/// joined the age head, five paddings (0.14 … 0.26) helped dlib alone (400-face UTKFace dev
/// sample: one view 6.27 MAE, three 6.02, five 5.95); with face-api in the head, one padding
/// gives the same head within 0.02 years (5-fold CV 4.89 against 4.88) for a fifth of the work.
pub const AGE_PADDINGS: [f32; 1] = [DLIB_PADDING];
/// dlib mean RGB.
const DLIB_MEAN: [f32; 3] = [122.782, 117.001, 104.298];

/// Most views (crops) per model run: bounds the activation memory of a crowd photo (GEAR holds
/// ~13 MB of activations per view) while keeping batches large enough to amortise a run.
pub const MAX_BATCH: usize = 16;

/// The raw result of one [`Job`]: per face, each model output averaged over the face's views
/// (`None` when the face's landmarks give no crop).
#[derive(Debug, Clone)]
pub struct JobOutput {
    pub(super) job: Job,
    pub(super) per_face: Vec<Option<Vec<Vec<f32>>>>,
}

impl JobOutput {
    fn empty(job: Job, faces: usize) -> Self {
        Self {
            job,
            per_face: vec![None; faces],
        }
    }
}

impl Attributor {
    /// Run one job's model over the views of every face (`lms`: each face's five landmarks).
    /// Jobs share nothing, so they may run at the same time on different threads.
    pub fn run_job(
        &self,
        job: Job,
        img: &Rgb,
        lms: &[[Point; 5]],
        opts: &AttributeOptions,
    ) -> Result<JobOutput, InferError> {
        let dlib =
            |c: &[&[f32]], n: u32| batch_nchw(c, n as usize, n as usize, DLIB_MEAN, 1.0 / 256.0);
        let per_face = match job {
            Job::Gear => {
                let Some(m) = &self.models.gear else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = scaled_template(&UTKFACE_200, 200.0, GEAR_SIZE as f32, GEAR_PADDING);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    GEAR_SIZE,
                    false,
                    |c| batch_nhwc(c, 1.0 / 255.0),
                    Layout::Nhwc,
                )?
            }
            Job::Age => {
                let Some(m) = &self.models.age else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpls = AGE_PADDINGS.map(|pad| dlib_chip_template(AGE_SIZE as f32, pad));
                run_views(
                    m,
                    img,
                    lms,
                    &tpls,
                    AGE_SIZE,
                    opts.flip,
                    |c| dlib(c, AGE_SIZE),
                    Layout::Nchw,
                )?
            }
            Job::FaceApi => {
                let Some(m) = &self.models.faceapi else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = scaled_template(&UTKFACE_200, 200.0, FACEAPI_SIZE as f32, 0.0);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    FACEAPI_SIZE,
                    opts.flip,
                    |c| {
                        batch_nchw(
                            c,
                            FACEAPI_SIZE as usize,
                            FACEAPI_SIZE as usize,
                            [0.0; 3],
                            1.0,
                        )
                    },
                    Layout::Nchw,
                )?
            }
            Job::Gender => {
                let Some(m) = &self.models.gender else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = dlib_chip_template(GENDER_SIZE as f32, DLIB_PADDING);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    GENDER_SIZE,
                    opts.flip,
                    |c| dlib(c, GENDER_SIZE),
                    Layout::Nchw,
                )?
            }
            Job::Emotion(i) => {
                let Some(m) = self.models.emotion.get(i) else {
                    return Ok(JobOutput::empty(job, lms.len()));
                };
                let tpl = scaled_template(&FER_48, 48.0, EMOTION_SIZE as f32, EMOTION_PADDING);
                run_views(
                    m,
                    img,
                    lms,
                    &[tpl],
                    EMOTION_SIZE,
                    opts.flip,
                    |c| batch_grey(c, |g| (g - 0.5) * 2.0),
                    Layout::Grey,
                )?
            }
        };
        Ok(JobOutput { job, per_face })
    }
}

#[derive(Clone, Copy)]
enum Layout {
    /// `[b, 3, n, n]`
    Nchw,
    /// `[b, n, n, 3]`
    Nhwc,
    /// `[b, n, n, 1]`
    Grey,
}

/// Crop every face once per template (view), optionally add each crop's mirror image, run the
/// views through `m` in batches of at most [`MAX_BATCH`], and average each output over a face's
/// views. Per face: every output's row mean in graph order, or `None` when its landmarks are
/// degenerate (no crop).
#[allow(clippy::too_many_arguments)]
fn run_views(
    m: &Arc<dyn Model>,
    img: &Rgb,
    faces: &[[Point; 5]],
    tpls: &[[Point; 5]],
    size: u32,
    flip: bool,
    to_tensor: impl Fn(&[&[f32]]) -> Vec<f32>,
    layout: Layout,
) -> Result<Vec<Option<Vec<Vec<f32>>>>, InferError> {
    let n = size as usize;
    // (face index, view) for every face whose every template gives a crop.
    let mut views: Vec<(usize, Vec<f32>)> = Vec::new();
    let per_face = tpls.len() * if flip { 2 } else { 1 };
    for (i, lm) in faces.iter().enumerate() {
        let mut mine = Vec::with_capacity(per_face);
        for tpl in tpls {
            let Some((crop, _)) = aligned_f32(img, lm, tpl, size) else {
                mine.clear();
                break;
            };
            if flip {
                mine.push(flip_h(&crop, n, n));
            }
            mine.push(crop);
        }
        views.extend(mine.into_iter().map(|v| (i, v)));
    }
    let mut sums: Vec<Option<Vec<Vec<f32>>>> = vec![None; faces.len()];
    if per_face == 0 {
        return Ok(sums);
    }
    for chunk in views.chunks(MAX_BATCH) {
        let crops: Vec<&[f32]> = chunk.iter().map(|(_, v)| v.as_slice()).collect();
        let b = crops.len();
        let shape = match layout {
            Layout::Nchw => vec![b, 3, n, n],
            Layout::Nhwc => vec![b, n, n, 3],
            Layout::Grey => vec![b, n, n, 1],
        };
        let outputs = m.run(&Tensor {
            shape,
            data: to_tensor(&crops),
        })?;
        for (o, t) in outputs.iter().enumerate() {
            if t.data.is_empty() || !t.data.len().is_multiple_of(b) {
                return Err(InferError::Run {
                    name: m.name().to_string(),
                    reason: format!("output {o} does not split into {b} rows"),
                });
            }
            let k = t.data.len() / b;
            for ((face, _), row) in chunk.iter().zip(t.data.chunks_exact(k)) {
                let acc = sums[*face].get_or_insert_with(|| vec![Vec::new(); outputs.len()]);
                let Some(slot) = acc.get_mut(o) else { continue };
                if slot.is_empty() {
                    *slot = vec![0.0; k];
                }
                // Divide each row before adding, as `mean_rows` does.
                for (s, v) in slot.iter_mut().zip(row) {
                    *s += v / per_face as f32;
                }
            }
        }
    }
    Ok(sums)
}

/// Mean of `rows` equal rows laid out back to back; `None` when the length does not divide.
pub fn mean_rows(data: &[f32], rows: usize) -> Option<Vec<f32>> {
    if rows == 0 || data.is_empty() || !data.len().is_multiple_of(rows) {
        return None;
    }
    let k = data.len() / rows;
    let mut out = vec![0.0f32; k];
    for row in data.chunks_exact(k) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v / rows as f32;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_rows_checks_shape() {
        assert_eq!(mean_rows(&[1.0, 2.0, 3.0, 4.0], 2), Some(vec![2.0, 3.0]));
        assert_eq!(mean_rows(&[1.0, 2.0, 3.0], 2), None);
        assert_eq!(mean_rows(&[], 1), None);
    }
}

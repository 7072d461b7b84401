//! From an image source to faces: fetch or decode, run the pipeline on the bounded queue, and
//! keep each face under its token_id.
//!
//! Every protocol's request ends up here as a [`Plan`]; they differ only in how they read the
//! request and shape the answer (see [`crate::request`]).

use crate::engine::{EngineError, Slot};
use crate::error::ApiError;
use crate::input::{FaceType, ImageSource};
use crate::state::AppState;
use facelens_core::ErrorCode;
use facelens_core::juhe::token_id;
use facelens_core::types::{Face, Timings};
use facelens_store::unix_now;
use facelens_vision::attributes::strip;
use facelens_vision::{DetectorConfig, FaceOrder, Options};
use serde::{Deserialize, Serialize};

/// What a token keeps: the face as analysed (no image data).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFace {
    pub face: Face,
    /// Size of the image the face was found in.
    pub width: u32,
    pub height: u32,
}

/// One analysed face with its token.
#[derive(Debug, Clone)]
pub struct TokenFace {
    pub token_id: String,
    pub face: Face,
}

/// The outcome of an analysis.
#[derive(Debug, Clone)]
pub struct Analyzed {
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    /// Largest first.
    pub faces: Vec<TokenFace>,
    pub timings: Timings,
    /// The faces came from a stored token, not from a new analysis.
    pub from_token: bool,
}

/// How `face_type` tunes the pipeline (documented in docs/api.md). `retries`: run the
/// detector's "nothing found" retries (the `detect_retries` setting).
pub fn options_for(
    face_type: FaceType,
    max_faces: usize,
    detector_max_side: u32,
    retries: bool,
) -> Options {
    let mut detector = DetectorConfig::fast(detector_max_side);
    match face_type {
        FaceType::Live => {}
        // A photo of an ID card: the portrait is small on the card and printed (lower
        // contrast); look at more pixels and accept lower scores.
        FaceType::IdCard => {
            detector = DetectorConfig::fast(detector_max_side.max(1024));
            detector.score_threshold = 0.4;
        }
        // Watermark lines cross the face and lower the detector's confidence.
        FaceType::Watermark => {
            detector = DetectorConfig::fast(detector_max_side.max(800));
            detector.score_threshold = 0.35;
        }
        // A passport-style photo: one frontal face filling most of the frame, often cropped
        // tight; the padded retry (on unless `detect_retries` is off) finds faces that touch
        // the borders.
        FaceType::Cert => detector.score_threshold = 0.4,
    }
    Options {
        max_faces,
        detector,
        retry_padded: retries,
        ..Options::default()
    }
}

/// What to analyse and how: the part of a request every protocol has.
#[derive(Debug, Clone)]
pub struct Plan {
    pub source: ImageSource,
    pub face_type: FaceType,
    /// Faces analysed, at most (largest first): the per-face stages run on no more.
    pub max_faces: usize,
    /// Return the 468-point mesh of each face.
    pub mesh: bool,
    /// Which faces are kept, and their order (the cut happens before the per-face stages).
    pub order: FaceOrder,
}

/// The pipeline options of a plan, with this server's detector settings and the attributes
/// its operator switched off.
fn options(st: &AppState, plan: &Plan) -> Options {
    let mut opts = options_for(
        plan.face_type,
        plan.max_faces,
        st.cfg.detector_max_side,
        st.cfg.detect_retries,
    );
    opts.include_mesh = plan.mesh;
    opts.order = plan.order;
    // Switched off: not computed (nor any model run only for it), and face_type then uses its
    // image-only head when a model attribute it reads is off.
    opts.attributes = opts.attributes.without(&st.attributes_off);
    opts
}

/// Analyse the image `plan` names and return up to `plan.max_faces` faces. `slot` is the
/// request's place in the engine, held until the job ends.
pub async fn analyze(st: &AppState, plan: Plan, slot: Slot) -> Result<Analyzed, ApiError> {
    let opts = options(st, &plan);
    let bytes = match plan.source {
        ImageSource::Bytes(b) => b,
        ImageSource::Url(url) => {
            let Some(fetcher) = &st.fetcher else {
                return Err(ApiError::new(
                    ErrorCode::UrlNotAllowed,
                    "remote URLs are switched off on this server",
                ));
            };
            fetcher.fetch(&url).await?.into()
        }
        ImageSource::Token(token) => return load_token(st, &token).await,
    };
    let limits = st.decode_limits();
    let analysis = st
        .engine
        .run(slot, move |p| {
            p.analyze_bytes(&bytes, &limits, &opts).map(|a| {
                let tokens: Vec<String> = a.faces.iter().map(|f| token_id(&bytes, f)).collect();
                (a, tokens)
            })
        })
        .await
        .map_err(|e| match e {
            // A slot guarantees a place; refusing anyway would be a bug worth a log line.
            EngineError::Busy => ApiError::internal("the engine refused a job that had a slot"),
            EngineError::Failed(m) => ApiError::internal(m),
        })?;
    let (a, tokens) = analysis?;
    crate::metrics::record_analysis(&a.timings, a.faces.len());
    let faces: Vec<TokenFace> = a
        .faces
        .into_iter()
        .zip(tokens)
        .map(|(mut face, token_id)| {
            strip(&mut face.attributes, &st.attributes_off);
            TokenFace { token_id, face }
        })
        .collect();
    if st.cfg.retain_tokens {
        keep_tokens(st, &faces, a.width, a.height).await?;
    }
    Ok(Analyzed {
        width: a.width,
        height: a.height,
        orientation: a.orientation,
        faces,
        timings: a.timings,
        from_token: false,
    })
}

/// Store the faces under their tokens, in one transaction, before the answer names them: a
/// token_id handed out must resolve later, so a failure to store is an internal error (10014),
/// not a success.
async fn keep_tokens(
    st: &AppState,
    faces: &[TokenFace],
    width: u32,
    height: u32,
) -> Result<(), ApiError> {
    let json = faces
        .iter()
        .map(|f| {
            let stored = StoredFace {
                face: Face {
                    mesh: None,
                    ..f.face.clone()
                },
                width,
                height,
            };
            serde_json::to_string(&stored)
                .map(|j| (f.token_id.as_str(), j))
                .map_err(|e| ApiError::internal(format!("serialising a face: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<(&str, &str)> = json.iter().map(|(t, j)| (*t, j.as_str())).collect();
    st.store
        .put_face_tokens(&rows, unix_now(), st.token_ttl_secs())
        .await
        .map_err(|e| ApiError::internal(format!("storing {} face tokens failed: {e}", rows.len())))
}

async fn load_token(st: &AppState, token: &str) -> Result<Analyzed, ApiError> {
    let token = token.trim();
    let well_formed = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(ApiError::new(
            ErrorCode::InvalidToken,
            "a token_id is 32 hexadecimal characters",
        ));
    }
    let token = token.to_ascii_lowercase();
    let stored = st
        .store
        .get_face_token(&token, unix_now())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "unknown or expired"))?;
    let mut s: StoredFace = serde_json::from_str(&stored)
        .map_err(|e| ApiError::internal(format!("stored token {token}: {e}")))?;
    // An attribute switched off since the face was stored is not answered either.
    strip(&mut s.face.attributes, &st.attributes_off);
    Ok(Analyzed {
        width: s.width,
        height: s.height,
        orientation: 1,
        faces: vec![TokenFace {
            token_id: token,
            face: s.face,
        }],
        timings: Timings::default(),
        from_token: true,
    })
}

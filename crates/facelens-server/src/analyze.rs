//! From an image source to faces: fetch or decode, run the pipeline on the bounded queue, and
//! keep each face under its token_id.
//!
//! Shared by the Juhe endpoint and the native API, which differ only in how they read the
//! request and shape the answer.

use crate::AppState;
use crate::engine::EngineError;
use crate::input::{FaceType, ImageSource};
use facelens_core::ErrorCode;
use facelens_core::error::FaceError;
use facelens_core::juhe::token_id;
use facelens_core::types::{Face, Timings};
use facelens_store::unix_now;
use facelens_vision::{DetectorConfig, Options};
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

impl AppState {
    /// The pipeline options of a request, with this server's detector settings.
    pub(crate) fn options_for(&self, face_type: FaceType, max_faces: usize) -> Options {
        options_for(
            face_type,
            max_faces,
            self.detector_max_side,
            self.detect_retries,
        )
    }

    /// "Busy" when every queue slot is taken, asked before a request's body is parsed: under
    /// overload a refusal then costs neither parsing nor decoding nor a store lookup (the body
    /// is only read and discarded, so that the client gets the answer on a connection that
    /// stays usable). The queue still decides for the requests that pass (a slot may fill in
    /// between).
    pub(crate) fn refuse_if_busy(&self) -> Result<(), FaceError> {
        if self.engine.is_full() {
            return Err(self.busy_error());
        }
        Ok(())
    }

    fn busy_error(&self) -> FaceError {
        FaceError::new(
            ErrorCode::Busy,
            format!(
                "all {} workers busy and {} requests queued",
                self.engine.workers(),
                self.engine.capacity()
            ),
        )
    }

    /// Analyse the image named by `source` and return up to `max_faces` faces.
    pub async fn analyze(&self, source: ImageSource, opts: Options) -> Result<Analyzed, FaceError> {
        let bytes = match source {
            ImageSource::Bytes(b) => b,
            ImageSource::Url(url) => {
                let Some(fetcher) = &self.fetcher else {
                    return Err(FaceError::new(
                        ErrorCode::UrlNotAllowed,
                        "remote URLs are switched off on this server",
                    ));
                };
                fetcher.fetch(&url).await?
            }
            ImageSource::Token(token) => return self.load_token(&token).await,
        };
        let mut opts = opts;
        for name in &self.attributes_off {
            let a = &mut opts.attributes;
            match name.as_str() {
                "race" => a.race = false,
                "gender" => a.gender = false,
                "emotion" => a.emotion = false,
                "beauty" => a.beauty = false,
                "age" => a.age = false,
                _ => {}
            }
            // A switched-off model attribute is not computed for face_type either: face_type
            // then uses its image-only head.
            if matches!(name.as_str(), "race" | "gender" | "emotion" | "age") {
                a.face_type_models = false;
            }
        }
        let limits = self.decode_limits;
        let analysis = self
            .engine
            .run(move |p| {
                p.analyze_bytes(&bytes, &limits, &opts).map(|a| {
                    let tokens: Vec<String> = a.faces.iter().map(|f| token_id(&bytes, f)).collect();
                    (a, tokens)
                })
            })
            .await
            .map_err(|e| match e {
                EngineError::Busy => self.busy_error(),
                EngineError::Failed(m) => FaceError::new(ErrorCode::Internal, m),
            })?;
        let (a, tokens) = analysis?;
        crate::metrics::record_analysis(&a.timings, a.faces.len());
        let faces: Vec<TokenFace> = a
            .faces
            .into_iter()
            .zip(tokens)
            .map(|(mut face, token_id)| {
                strip_attributes(&mut face, &self.attributes_off);
                TokenFace { token_id, face }
            })
            .collect();
        if self.retain_tokens {
            self.keep_tokens(&faces, a.width, a.height).await?;
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

    /// Store each face under its token before the answer names it: a token_id handed out must
    /// resolve later, so a failure to store is an internal error (10014), not a success.
    async fn keep_tokens(
        &self,
        faces: &[TokenFace],
        width: u32,
        height: u32,
    ) -> Result<(), FaceError> {
        let now = unix_now();
        for f in faces {
            let stored = StoredFace {
                face: Face {
                    mesh: None,
                    ..f.face.clone()
                },
                width,
                height,
            };
            let json = serde_json::to_string(&stored).map_err(|e| {
                FaceError::new(ErrorCode::Internal, format!("serialising a face: {e}"))
            })?;
            self.store
                .put_face_token(&f.token_id, &json, now, self.token_ttl_secs)
                .await
                .map_err(|e| {
                    FaceError::new(
                        ErrorCode::Internal,
                        format!("storing token {} failed: {e}", f.token_id),
                    )
                })?;
        }
        Ok(())
    }

    async fn load_token(&self, token: &str) -> Result<Analyzed, FaceError> {
        let token = token.trim();
        let well_formed = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(FaceError::new(
                ErrorCode::InvalidToken,
                "a token_id is 32 hexadecimal characters",
            ));
        }
        let token = token.to_ascii_lowercase();
        let stored = self
            .store
            .get_face_token(&token, unix_now())
            .await
            .map_err(|e| FaceError::new(ErrorCode::Internal, e.to_string()))?
            .ok_or_else(|| FaceError::new(ErrorCode::InvalidToken, "unknown or expired"))?;
        let s: StoredFace = serde_json::from_str(&stored)
            .map_err(|e| FaceError::new(ErrorCode::Internal, format!("stored token: {e}")))?;
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
}

/// Remove the attributes the operator switched off (the field is then omitted on the wire).
pub fn strip_attributes(face: &mut Face, off: &[String]) {
    let a = &mut face.attributes;
    for name in off {
        match name.as_str() {
            "race" => a.race = None,
            "gender" => a.gender = None,
            "emotion" => a.emotion = None,
            "beauty" => a.beauty = None,
            "age" => a.age = None,
            _ => {}
        }
    }
}

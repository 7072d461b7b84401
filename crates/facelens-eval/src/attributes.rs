//! Parser for the attribute evaluation manifest (`attributes/manifest.jsonl`) joined with the
//! visually reviewed labels (`attributes/visual_labels.jsonl`).
//!
//! Every label is an `Option` because each source dataset labels only some attributes (UTKFace:
//! age/gender/race; FER2013: emotion; SMILEsmileD: smiling; ...) and a missing label must stay
//! distinguishable from a negative one. Labels keep the manifest's string vocabulary (including
//! `unsure`, see [`UNSURE`]) rather than enums, so new values do not break parsing; the metrics in
//! [`crate::metrics`] work on strings too.
//!
//! The visual labels (`glasses`, `eyes`, `expression`) come from a different, weaker provenance
//! (one reviewer's visual judgement, see the data README), so a joined record says so in
//! [`AttributeRecord::visual_review`]. A visual label that contradicts the dataset's own label for
//! the same file is an error rather than a silent choice.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// Label value meaning "could not be decided"; score only items whose label is not `unsure`.
pub const UNSURE: &str = "unsure";

/// One face image with all labels known for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributeRecord {
    /// Path relative to the evaluation-data folder; the join key.
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Age in years (UTKFace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    /// `male` / `female`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// UTKFace 5-way race: `white`, `black`, `asian`, `indian`, `others`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race: Option<String>,
    /// FER2013 7-class emotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emotion: Option<String>,
    /// SMILEsmileD / CelebA smile flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smiling: Option<bool>,
    /// `open` / `closed` / `one_closed` / `unsure` (CEW or visual review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eyes: Option<String>,
    /// `human` / `anime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_type: Option<String>,
    /// `none` / `common` / `sun` / `unsure` (CelebA or visual review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glasses: Option<String>,
    /// `none` / `smile` / `laugh` / `unsure` (visual review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// CelebA `Young`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub young: Option<bool>,
    /// CelebA `Mouth_Slightly_Open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mouth_open: Option<bool>,
    /// CelebA `Oval_Face`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oval_face: Option<bool>,
    /// All 40 CelebA attributes, for CelebA images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub celeba_attributes: Option<BTreeMap<String, bool>>,
    /// Mean beauty rating of the raters on a 1–5 scale (SCUT-FBP5500 in the training data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beauty_1_5: Option<f64>,
    /// Face shape label (`heart`, `oblong`, `oval`, `round`, `square`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_shape: Option<String>,
    /// Photos that are likely of one person share a group (for grouped cross-validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// True when a line of `visual_labels.jsonl` was joined into this record.
    #[serde(default)]
    pub visual_review: bool,
}

#[derive(Deserialize)]
struct VisualLine {
    file: String,
    #[serde(default)]
    glasses: Option<String>,
    #[serde(default)]
    eyes: Option<String>,
    #[serde(default)]
    expression: Option<String>,
}

const MANIFEST: &str = "attribute manifest";
const VISUAL: &str = "visual labels";

/// Parses `attributes/manifest.jsonl` text and, if given, joins `visual_labels.jsonl` text by
/// `file`. Blank lines are skipped; unknown fields are ignored. Records keep manifest order.
///
/// Errors (with the 1-based line number): invalid JSON or field types, a `file` that appears twice
/// in either input, a visual-label line whose `file` is not in the manifest, or a visual label
/// that differs from the manifest's label for the same field.
pub fn load_attribute_manifest(
    manifest: &str,
    visual_labels: Option<&str>,
) -> Result<Vec<AttributeRecord>, EvalError> {
    let mut records: Vec<AttributeRecord> = Vec::new();
    let mut by_file: HashMap<String, usize> = HashMap::new();
    for (i, line) in manifest.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut rec: AttributeRecord =
            serde_json::from_str(line).map_err(|source| EvalError::Json {
                what: MANIFEST,
                line: line_no,
                source,
            })?;
        rec.visual_review = false;
        if by_file.insert(rec.file.clone(), records.len()).is_some() {
            return Err(EvalError::InvalidLine {
                what: MANIFEST,
                line: line_no,
                msg: format!("duplicate file {}", rec.file),
            });
        }
        records.push(rec);
    }

    let Some(visual) = visual_labels else {
        return Ok(records);
    };
    for (i, line) in visual.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: VisualLine = serde_json::from_str(line).map_err(|source| EvalError::Json {
            what: VISUAL,
            line: line_no,
            source,
        })?;
        let invalid = |msg: String| EvalError::InvalidLine {
            what: VISUAL,
            line: line_no,
            msg,
        };
        let Some(rec) = by_file.get(&v.file).and_then(|&idx| records.get_mut(idx)) else {
            return Err(invalid(format!("file {} is not in the manifest", v.file)));
        };
        if rec.visual_review {
            return Err(invalid(format!("duplicate file {}", v.file)));
        }
        rec.visual_review = true;
        for (name, slot, value) in [
            ("glasses", &mut rec.glasses, v.glasses),
            ("eyes", &mut rec.eyes, v.eyes),
            ("expression", &mut rec.expression, v.expression),
        ] {
            let Some(value) = value else { continue };
            match slot {
                Some(existing) if *existing != value => {
                    return Err(invalid(format!(
                        "{}: visual {name} `{value}` contradicts manifest `{existing}`",
                        v.file
                    )));
                }
                Some(_) => {}
                None => *slot = Some(value),
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST_TEXT: &str = concat!(
        r#"{"file": "attributes/utkface/a.jpg", "source": "UTKFace (aligned&cropped)", "origin": "x", "age": 10, "gender": "male", "race": "white", "face_type": "human"}"#,
        "\n",
        r#"{"file": "attributes/fer2013/happy/b.jpg", "emotion": "happy", "face_type": "human"}"#,
        "\n\n",
        r#"{"file": "attributes/celeba/000001.jpg", "gender": "female", "young": true, "glasses": "none", "smiling": true, "mouth_open": true, "oval_face": false, "face_type": "human", "celeba_attributes": {"Smiling": true, "Eyeglasses": false}}"#,
        "\n",
        r#"{"file": "attributes/cew_closed/c.jpg", "eyes": "closed", "face_type": "human"}"#,
        "\n",
    );

    #[test]
    fn parses_training_manifest_labels() {
        let text = concat!(
            r#"{"file": "scut_fbp5500/AF1.jpg", "beauty_1_5": 3.25, "gender": "female", "race": "yellow"}"#,
            "\n",
            r#"{"file": "face_shape/heart/h.jpg", "face_shape": "heart", "group": "ab12"}"#,
            "\n",
        );
        let recs = load_attribute_manifest(text, None).expect("parses");
        assert_eq!(recs[0].beauty_1_5, Some(3.25));
        assert_eq!(recs[0].race.as_deref(), Some("yellow"));
        assert_eq!(recs[1].face_shape.as_deref(), Some("heart"));
        assert_eq!(recs[1].group.as_deref(), Some("ab12"));
        assert_eq!(recs[1].beauty_1_5, None);
    }

    #[test]
    fn parses_manifest_without_visual_labels() {
        let recs = load_attribute_manifest(MANIFEST_TEXT, None).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].age, Some(10));
        assert_eq!(recs[0].gender.as_deref(), Some("male"));
        assert_eq!(recs[0].emotion, None);
        assert_eq!(recs[1].emotion.as_deref(), Some("happy"));
        assert_eq!(recs[2].smiling, Some(true));
        assert_eq!(recs[2].oval_face, Some(false));
        assert!(recs[2].celeba_attributes.as_ref().unwrap()["Smiling"]);
        assert_eq!(recs[3].eyes.as_deref(), Some("closed"));
        assert!(recs.iter().all(|r| !r.visual_review));
    }

    #[test]
    fn joins_visual_labels_by_file() {
        let visual = concat!(
            r#"{"file": "attributes/utkface/a.jpg", "glasses": "common", "eyes": "open", "expression": "smile"}"#,
            "\n",
            // Agrees with the manifest's own `glasses` for this CelebA image: fine.
            r#"{"file": "attributes/celeba/000001.jpg", "glasses": "none", "eyes": "unsure", "expression": "laugh"}"#,
        );
        let recs = load_attribute_manifest(MANIFEST_TEXT, Some(visual)).unwrap();
        assert!(recs[0].visual_review);
        assert_eq!(recs[0].glasses.as_deref(), Some("common"));
        assert_eq!(recs[0].expression.as_deref(), Some("smile"));
        assert_eq!(recs[0].age, Some(10));
        assert!(!recs[1].visual_review);
        assert_eq!(recs[1].glasses, None);
        assert_eq!(recs[2].eyes.as_deref(), Some(UNSURE));
    }

    #[test]
    fn rejects_inconsistent_inputs() {
        let unknown = r#"{"file": "attributes/utkface/zzz.jpg", "glasses": "none"}"#;
        let err = load_attribute_manifest(MANIFEST_TEXT, Some(unknown)).unwrap_err();
        assert!(err.to_string().contains("not in the manifest"), "{err}");

        let conflict = r#"{"file": "attributes/cew_closed/c.jpg", "eyes": "open"}"#;
        let err = load_attribute_manifest(MANIFEST_TEXT, Some(conflict)).unwrap_err();
        assert!(err.to_string().contains("contradicts"), "{err}");

        let dup_visual = concat!(
            r#"{"file": "attributes/utkface/a.jpg", "glasses": "none"}"#,
            "\n",
            r#"{"file": "attributes/utkface/a.jpg", "glasses": "none"}"#,
        );
        let err = load_attribute_manifest(MANIFEST_TEXT, Some(dup_visual)).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");

        let dup = format!(
            "{MANIFEST_TEXT}{}\n",
            r#"{"file": "attributes/fer2013/happy/b.jpg"}"#
        );
        assert!(load_attribute_manifest(&dup, None).is_err());

        let bad_type = r#"{"file": "x.jpg", "age": "ten"}"#;
        let err = load_attribute_manifest(bad_type, None).unwrap_err();
        assert!(matches!(err, EvalError::Json { line: 1, .. }), "{err}");
    }
}

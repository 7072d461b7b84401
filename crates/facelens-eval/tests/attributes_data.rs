//! Parses the real attribute manifest + visual labels and checks the counts documented in the
//! evaluation-data README. Skips (printing "skipped: evaldata not found") when the data is absent;
//! it is never committed to the repository.

use std::collections::BTreeMap;
use std::path::PathBuf;

use facelens_eval::{AttributeRecord, UNSURE, load_attribute_manifest};

fn evaldata_dir() -> Option<PathBuf> {
    facelens_eval::evaldata_dir().filter(|d| d.join("attributes/manifest.jsonl").is_file())
}

fn counts<'a>(values: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

#[test]
fn real_attribute_manifest_joins_visual_labels() {
    let Some(dir) = evaldata_dir() else {
        facelens_testkit::skip(
            "no development evaluation data (../shared/evaldata or FACELENS_EVALDATA)",
        );
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("attributes/manifest.jsonl")).unwrap();
    let visual = std::fs::read_to_string(dir.join("attributes/visual_labels.jsonl")).unwrap();
    let recs: Vec<AttributeRecord> = load_attribute_manifest(&manifest, Some(&visual)).unwrap();

    assert_eq!(recs.len(), 3314);
    assert_eq!(recs.iter().filter(|r| r.age.is_some()).count(), 1728);
    assert_eq!(recs.iter().filter(|r| r.emotion.is_some()).count(), 654);
    assert_eq!(recs.iter().filter(|r| r.smiling.is_some()).count(), 432);
    assert_eq!(
        counts(recs.iter().filter_map(|r| r.face_type.as_deref())),
        BTreeMap::from([("anime", 300), ("human", 3014)])
    );

    let reviewed: Vec<&AttributeRecord> = recs.iter().filter(|r| r.visual_review).collect();
    assert_eq!(reviewed.len(), 1728);
    // README "Visual labels" totals.
    assert_eq!(
        counts(reviewed.iter().filter_map(|r| r.glasses.as_deref())),
        BTreeMap::from([("common", 343), ("none", 1370), ("sun", 6), (UNSURE, 9)])
    );
    assert_eq!(
        counts(reviewed.iter().filter_map(|r| r.expression.as_deref())),
        BTreeMap::from([("laugh", 70), ("none", 639), ("smile", 911), (UNSURE, 108)])
    );
    assert_eq!(
        counts(reviewed.iter().filter_map(|r| r.eyes.as_deref())),
        BTreeMap::from([("closed", 6), ("open", 1543), (UNSURE, 179)])
    );
    // Every reviewed face is a UTKFace crop with age/gender/race.
    assert!(
        reviewed
            .iter()
            .all(|r| r.age.is_some() && r.gender.is_some() && r.race.is_some())
    );
    // CEW closed eyes keep their dataset label; CelebA keeps its glasses label.
    let cew = recs
        .iter()
        .filter(|r| r.file.contains("/cew_closed/"))
        .count();
    assert_eq!(
        recs.iter()
            .filter(|r| r.file.contains("/cew_closed/") && r.eyes.as_deref() == Some("closed"))
            .count(),
        cew
    );
    assert_eq!(cew, 200);
    let celeba: Vec<&AttributeRecord> = recs
        .iter()
        .filter(|r| r.celeba_attributes.is_some())
        .collect();
    assert_eq!(celeba.len(), 32);
    assert!(
        celeba
            .iter()
            .all(|r| r.glasses.as_deref() == Some("none") && !r.visual_review)
    );
}

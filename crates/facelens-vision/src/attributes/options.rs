//! Which attributes a caller asks for, by name.
//!
//! Why a type: the contract's attribute names arrive as text (an operator's `attributes_off`,
//! a benchmark's argument), and every layer used to match on the strings itself. [`Attribute`]
//! parses them once; [`AttributeOptions`] is the set a request runs with, and
//! [`AttributeOptions::without`] and [`strip`] are the two halves of switching an attribute
//! off: it is not computed (nor are models run for it alone), and [`strip`] removes it from
//! any answer, one computed now or one read back from a stored face.

use super::plan;
use facelens_core::types::Attributes;
use std::fmt;
use std::str::FromStr;

/// One of the contract's per-face attributes, by its field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attribute {
    Age,
    Beauty,
    Expression,
    FaceShape,
    Gender,
    Glasses,
    EyeStatus,
    Emotion,
    Race,
    FaceType,
}

impl Attribute {
    /// Every attribute, in the contract's field order.
    pub const ALL: [Attribute; 10] = [
        Attribute::Age,
        Attribute::Beauty,
        Attribute::Expression,
        Attribute::FaceShape,
        Attribute::Gender,
        Attribute::Glasses,
        Attribute::EyeStatus,
        Attribute::Emotion,
        Attribute::Race,
        Attribute::FaceType,
    ];

    /// The contract's field name (`face_shape`, `eye_status`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Age => "age",
            Attribute::Beauty => "beauty",
            Attribute::Expression => "expression",
            Attribute::FaceShape => "face_shape",
            Attribute::Gender => "gender",
            Attribute::Glasses => "glasses",
            Attribute::EyeStatus => "eye_status",
            Attribute::Emotion => "emotion",
            Attribute::Race => "race",
            Attribute::FaceType => "face_type",
        }
    }

    /// Whether `a` holds a value for this attribute.
    pub fn is_set(self, a: &Attributes) -> bool {
        match self {
            Attribute::Age => a.age.is_some(),
            Attribute::Beauty => a.beauty.is_some(),
            Attribute::Expression => a.expression.is_some(),
            Attribute::FaceShape => a.face_shape.is_some(),
            Attribute::Gender => a.gender.is_some(),
            Attribute::Glasses => a.glasses.is_some(),
            Attribute::EyeStatus => a.eye_status.is_some(),
            Attribute::Emotion => a.emotion.is_some(),
            Attribute::Race => a.race.is_some(),
            Attribute::FaceType => a.face_type.is_some(),
        }
    }

    /// Remove this attribute's value from `a` (the field is then omitted on the wire).
    pub fn clear(self, a: &mut Attributes) {
        match self {
            Attribute::Age => a.age = None,
            Attribute::Beauty => a.beauty = None,
            Attribute::Expression => a.expression = None,
            Attribute::FaceShape => a.face_shape = None,
            Attribute::Gender => a.gender = None,
            Attribute::Glasses => a.glasses = None,
            Attribute::EyeStatus => a.eye_status = None,
            Attribute::Emotion => a.emotion = None,
            Attribute::Race => a.race = None,
            Attribute::FaceType => a.face_type = None,
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the contract's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAttribute(pub String);

impl fmt::Display for UnknownAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Attribute::ALL.iter().map(|a| a.name()).collect();
        write!(f, "{:?} is not one of {names:?}", self.0)
    }
}

impl std::error::Error for UnknownAttribute {}

impl FromStr for Attribute {
    type Err = UnknownAttribute;

    /// The contract's field name, exactly (`face_shape`, not `faceShape`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Attribute::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAttribute(s.to_string()))
    }
}

/// Remove every attribute in `off` from `a`, whether it was computed now or read back from a
/// stored face (the caller applies it to every answer it gives).
pub fn strip(a: &mut Attributes, off: &[Attribute]) {
    for attribute in off {
        attribute.clear(a);
    }
}

/// Which attributes to compute. Switching one off skips the model runs only it needs and omits
/// its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeOptions {
    pub age: bool,
    pub gender: bool,
    pub emotion: bool,
    pub expression: bool,
    pub race: bool,
    pub beauty: bool,
    pub eye_status: bool,
    pub glasses: bool,
    pub face_shape: bool,
    pub face_type: bool,
    /// Average the cheap models over the crop and its mirror image.
    pub flip: bool,
    /// Let face_type run the models its full head reads ([`plan::models_for`]) even when
    /// their own attributes are not asked for. Off (see [`AttributeOptions::without`]),
    /// face_type uses its image-only head.
    pub face_type_models: bool,
}

impl AttributeOptions {
    /// Every attribute on.
    pub const ALL: AttributeOptions = AttributeOptions {
        age: true,
        gender: true,
        emotion: true,
        expression: true,
        race: true,
        beauty: true,
        eye_status: true,
        glasses: true,
        face_shape: true,
        face_type: true,
        flip: true,
        face_type_models: true,
    };
    /// Every attribute off (geometry only).
    pub const NONE: AttributeOptions = AttributeOptions {
        age: false,
        gender: false,
        emotion: false,
        expression: false,
        race: false,
        beauty: false,
        eye_status: false,
        glasses: false,
        face_shape: false,
        face_type: false,
        flip: true,
        face_type_models: true,
    };

    /// Only `attributes` on (the other settings as in [`AttributeOptions::ALL`]).
    pub fn only(attributes: &[Attribute]) -> AttributeOptions {
        let mut o = AttributeOptions::NONE;
        for a in attributes {
            o.set(*a, true);
        }
        o
    }

    /// Whether `attribute` is asked for.
    pub fn is_on(&self, attribute: Attribute) -> bool {
        match attribute {
            Attribute::Age => self.age,
            Attribute::Beauty => self.beauty,
            Attribute::Expression => self.expression,
            Attribute::FaceShape => self.face_shape,
            Attribute::Gender => self.gender,
            Attribute::Glasses => self.glasses,
            Attribute::EyeStatus => self.eye_status,
            Attribute::Emotion => self.emotion,
            Attribute::Race => self.race,
            Attribute::FaceType => self.face_type,
        }
    }

    /// Ask for `attribute` (`on`) or not.
    pub fn set(&mut self, attribute: Attribute, on: bool) {
        let field = match attribute {
            Attribute::Age => &mut self.age,
            Attribute::Beauty => &mut self.beauty,
            Attribute::Expression => &mut self.expression,
            Attribute::FaceShape => &mut self.face_shape,
            Attribute::Gender => &mut self.gender,
            Attribute::Glasses => &mut self.glasses,
            Attribute::EyeStatus => &mut self.eye_status,
            Attribute::Emotion => &mut self.emotion,
            Attribute::Race => &mut self.race,
            Attribute::FaceType => &mut self.face_type,
        };
        *field = on;
    }

    /// The attributes asked for, in [`Attribute::ALL`] order.
    pub fn requested(&self) -> impl Iterator<Item = Attribute> + '_ {
        Attribute::ALL.into_iter().filter(|a| self.is_on(*a))
    }

    /// These options with `off` switched off, as an operator's `attributes_off` asks: the
    /// attributes are not computed, and no model runs for them on behalf of another attribute
    /// either. face_type's full head reads the models of age, gender, race and emotion (and
    /// expression's), so switching any of those off makes face_type use its image-only head.
    /// Beauty and face shape are trained heads over other attributes' models: switching them off
    /// removes their heads only (their training data's terms are the usual reason), and
    /// face_type keeps its models.
    pub fn without(&self, off: &[Attribute]) -> AttributeOptions {
        let mut o = *self;
        let face_type_reads = plan::models_for(Attribute::FaceType);
        for a in off {
            o.set(*a, false);
            let head_only = matches!(a, Attribute::Beauty | Attribute::FaceShape);
            if !head_only
                && plan::models_for(*a)
                    .iter()
                    .any(|m| face_type_reads.contains(m))
            {
                o.face_type_models = false;
            }
        }
        o
    }

    /// Whether any asked-for attribute reads a model output (so the attribute models' results
    /// are combined at all).
    pub fn reads_models(&self) -> bool {
        !plan::models_needed(self).is_empty()
    }
}

impl Default for AttributeOptions {
    fn default() -> Self {
        Self::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facelens_core::types::{EyeStatus, Labelled};

    fn everything() -> Attributes {
        let l = |k: &str| Some(Labelled::new(k, 0.9));
        Attributes {
            age: Some(30.0),
            beauty: Some(60.0),
            expression: l("smile"),
            face_shape: l("oval"),
            gender: l("male"),
            glasses: l("none"),
            eye_status: Some(EyeStatus {
                left_eye: 1.0,
                right_eye: 1.0,
            }),
            emotion: l("happy"),
            race: l("white"),
            face_type: l("human"),
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for a in Attribute::ALL {
            assert_eq!(a.to_string().parse::<Attribute>(), Ok(a));
        }
        assert_eq!("face_shape".parse(), Ok(Attribute::FaceShape));
        assert_eq!("eye_status".parse(), Ok(Attribute::EyeStatus));
        let e = "shoe_size".parse::<Attribute>().unwrap_err();
        assert!(e.to_string().contains("shoe_size") && e.to_string().contains("face_type"));
        assert!("Race".parse::<Attribute>().is_err());
        // The contract's JSON field names are the attribute names.
        let json = serde_json::to_value(everything()).expect("json");
        let fields: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut names: Vec<&str> = Attribute::ALL.iter().map(|a| a.name()).collect();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        names.sort_unstable();
        assert_eq!(sorted, names);
    }

    #[test]
    fn strip_removes_exactly_the_switched_off_fields() {
        for a in Attribute::ALL {
            let mut x = everything();
            assert!(a.is_set(&x));
            strip(&mut x, &[a]);
            for b in Attribute::ALL {
                assert_eq!(b.is_set(&x), b != a, "{a} stripped, {b}");
            }
        }
        let mut x = everything();
        strip(&mut x, &Attribute::ALL);
        assert_eq!(x, Attributes::default());
        let mut y = everything();
        strip(&mut y, &[]);
        assert_eq!(y, everything());
    }

    #[test]
    fn set_only_and_requested_agree() {
        for a in Attribute::ALL {
            let o = AttributeOptions::only(&[a]);
            assert_eq!(o.requested().collect::<Vec<_>>(), vec![a]);
            let mut p = AttributeOptions::ALL;
            p.set(a, false);
            assert!(!p.is_on(a));
            assert_eq!(p.requested().count(), Attribute::ALL.len() - 1);
        }
        assert_eq!(AttributeOptions::only(&[]), AttributeOptions::NONE);
        assert_eq!(
            AttributeOptions::only(&Attribute::ALL),
            AttributeOptions::ALL
        );
    }

    #[test]
    fn switching_off_a_model_attribute_switches_face_types_models_off() {
        // The operator's switches the server offers: race, gender, emotion, beauty, age.
        for a in [
            Attribute::Race,
            Attribute::Gender,
            Attribute::Emotion,
            Attribute::Age,
        ] {
            let o = AttributeOptions::ALL.without(&[a]);
            assert!(!o.is_on(a) && !o.face_type_models, "{a}");
            assert!(o.face_type, "face_type itself stays on");
        }
        let o = AttributeOptions::ALL.without(&[Attribute::Beauty]);
        assert!(!o.beauty && o.face_type_models, "a trained head only");
        let o2 = AttributeOptions::ALL.without(&[Attribute::FaceShape]);
        assert!(!o2.face_shape && o2.face_type_models);
        assert_eq!(
            o,
            AttributeOptions {
                beauty: false,
                ..AttributeOptions::ALL
            }
        );
        assert_eq!(AttributeOptions::ALL.without(&[]), AttributeOptions::ALL);
        let two = AttributeOptions::ALL.without(&[Attribute::Race, Attribute::Beauty]);
        assert!(!two.race && !two.beauty && !two.face_type_models && two.age);
    }

    #[test]
    fn which_options_read_model_outputs() {
        assert!(AttributeOptions::ALL.reads_models());
        assert!(!AttributeOptions::NONE.reads_models());
        for a in [Attribute::Glasses, Attribute::EyeStatus] {
            assert!(!AttributeOptions::only(&[a]).reads_models(), "{a}");
        }
        for a in [
            Attribute::Beauty,
            Attribute::FaceShape,
            Attribute::Age,
            Attribute::Gender,
            Attribute::Race,
            Attribute::Emotion,
            Attribute::Expression,
            Attribute::FaceType,
        ] {
            assert!(AttributeOptions::only(&[a]).reads_models(), "{a}");
        }
        let image_only = AttributeOptions {
            face_type_models: false,
            ..AttributeOptions::only(&[Attribute::FaceType])
        };
        assert!(!image_only.reads_models());
    }
}

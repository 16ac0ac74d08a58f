//! A call's options: [`RerankOptions`] (what the engine uses) and [`OptionValues`] (the options as
//! a caller writes them: JS's `{ topK, windows: { overlap }, fusion: { type } … }` or the CLI's
//! flags). Every front end — the browser binding, `crossrank rerank`/`score` and `crossrank eval` —
//! turns its input into `OptionValues` and calls [`OptionValues::parse`]: one parser and one set
//! of checks, so the same mistake gets the same error everywhere.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fusion::{Fusion, ScoreScale};
use crate::windows::{Aggregate, WindowOptions};

/// At most this many pairs go through the model at once: large enough for efficient matrix
/// products on short pairs.
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// Options of [`crate::Reranker::rerank`]. The defaults give sentence-transformers' behaviour:
/// plain truncation, `score = sigmoid(logit)`, order by the cross-encoder alone, every document kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RerankOptions {
    /// Keep only the best `top_k` documents (all when `None`).
    pub top_k: Option<usize>,
    /// Tokens per (query, document) pair; defaults to the model's `max_position_embeddings`.
    pub max_length: Option<usize>,
    /// Pairs per forward pass.
    pub batch_size: usize,
    /// Score long documents by overlapping windows instead of truncating them (costs one pair per window).
    pub windows: Option<WindowOptions>,
    /// Order by a fusion of the cross-encoder with the first stage instead of the cross-encoder alone.
    pub fusion: Option<Fusion>,
    /// What `score` holds.
    pub score_scale: ScoreScale,
    /// Drop results whose `score` is below this.
    pub threshold: Option<f32>,
}

impl Default for RerankOptions {
    fn default() -> Self {
        Self {
            top_k: None,
            max_length: None,
            batch_size: DEFAULT_BATCH_SIZE,
            windows: None,
            fusion: None,
            score_scale: ScoreScale::Sigmoid,
            threshold: None,
        }
    }
}

impl RerankOptions {
    /// Every check that needs no model, so a bad option fails before any pair is scored — also
    /// when the scoring is split over several workers ([`crate::Reranker::score_many`] then
    /// [`crate::order`]), and for options built in Rust rather than parsed.
    pub fn validate(&self) -> Result<()> {
        if self.top_k == Some(0) {
            return Err(Error::invalid("topK must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batchSize must be at least 1"));
        }
        if let Some(threshold) = self.threshold {
            if !threshold.is_finite() {
                return Err(Error::invalid(format!("threshold must be a finite number, got {threshold}")));
            }
        }
        if let Some(fusion) = &self.fusion {
            fusion.validate()?;
        }
        Ok(())
    }
}

/// The options as a caller writes them, before any check. Numbers are f64 because that is what JS
/// sends (a `topK` of 2.5 must be refused, not rounded); names are JS's (camelCase), and an
/// unknown one is refused when deserialising.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionValues {
    pub top_k: Option<f64>,
    pub max_length: Option<f64>,
    pub batch_size: Option<f64>,
    /// `true`, or `{ overlap, aggregate: "max" | "mean" | "first" }`.
    pub windows: Option<WindowValues>,
    /// `{ type: "rrf", k? }` or `{ type: "weighted", weight }`.
    pub fusion: Option<FusionValues>,
    /// `"sigmoid"` (default) or `"minmax"`.
    pub score_scale: Option<String>,
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WindowValues {
    Enabled(bool),
    Options { overlap: Option<f64>, aggregate: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "FusionFields")]
pub enum FusionValues {
    Rrf { k: Option<f64> },
    Weighted { weight: f64 },
}

/// `fusion` as written, so that a missing or unknown `type` gets our message, naming the JS
/// fields, rather than serde's ("missing field `type`"). Other fields are ignored, as `k` is
/// with `"weighted"`.
#[derive(Deserialize)]
struct FusionFields {
    #[serde(rename = "type")]
    kind: Option<String>,
    k: Option<f64>,
    weight: Option<f64>,
}

impl TryFrom<FusionFields> for FusionValues {
    type Error = String;

    fn try_from(fields: FusionFields) -> std::result::Result<Self, String> {
        match (fields.kind.as_deref(), fields.weight) {
            (Some("rrf"), _) => Ok(FusionValues::Rrf { k: fields.k }),
            (Some("weighted"), Some(weight)) => Ok(FusionValues::Weighted { weight }),
            (Some("weighted"), None) => Err("fusion.weight is required with type \"weighted\": a number from 0 to 1".into()),
            (Some(other), _) => Err(format!("fusion.type must be \"rrf\" or \"weighted\", got \"{other}\"")),
            (None, _) => Err("fusion needs a type: { type: \"rrf\", k? } or { type: \"weighted\", weight }".into()),
        }
    }
}

/// A JS value's type as [`OPTIONS`] names it: `typeof`, except that arrays and `null` are not
/// objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsType {
    Number,
    String,
    Boolean,
    Object,
}

impl JsType {
    pub fn name(self) -> &'static str {
        match self {
            JsType::Number => "number",
            JsType::String => "string",
            JsType::Boolean => "boolean",
            JsType::Object => "object",
        }
    }
}

/// One option of [`OptionValues`] as JS writes it: the one list of the engine's options, from which
/// the browser binding checks types (so its errors name the option) and `tests/contract.rs`
/// generates the npm package's list (`www/src/contract.js`), which its option check, `index.d.ts`
/// and the README are tested against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionSpec {
    /// The JS name; a field of an object option as `windows.overlap`.
    pub name: &'static str,
    /// The types it may have.
    pub types: &'static [JsType],
    /// The strings it may hold (empty: any, or not a string).
    pub values: &'static [&'static str],
    /// What leaving it out means, as JSON (`None`: no default value: unset, or the model's).
    pub default: Option<&'static str>,
}

impl OptionSpec {
    const fn new(name: &'static str, types: &'static [JsType], values: &'static [&'static str], default: Option<&'static str>) -> Self {
        Self { name, types, values, default }
    }

    /// The object option this is a field of (`windows` for `windows.overlap`), if any.
    pub fn parent(&self) -> Option<&'static str> {
        self.name.split_once('.').map(|(parent, _)| parent)
    }

    /// The name within its parent (`overlap` for `windows.overlap`).
    pub fn field(&self) -> &'static str {
        self.name.split_once('.').map_or(self.name, |(_, field)| field)
    }
}

/// Every field of [`OptionValues`] (and of its `windows` and `fusion` objects), in its order; the
/// defaults are checked against [`OptionValues::parse`] by a test.
pub const OPTIONS: &[OptionSpec] = {
    use JsType::*;
    &[
        OptionSpec::new("topK", &[Number], &[], None),
        OptionSpec::new("maxLength", &[Number], &[], None),
        OptionSpec::new("batchSize", &[Number], &[], Some("16")),
        OptionSpec::new("windows", &[Boolean, Object], &[], Some("false")),
        OptionSpec::new("windows.overlap", &[Number], &[], Some("64")),
        OptionSpec::new("windows.aggregate", &[String], &["max", "mean", "first"], Some("\"max\"")),
        OptionSpec::new("fusion", &[Object], &[], None),
        OptionSpec::new("fusion.type", &[String], &["rrf", "weighted"], None),
        OptionSpec::new("fusion.k", &[Number], &[], Some("60")),
        OptionSpec::new("fusion.weight", &[Number], &[], None),
        OptionSpec::new("scoreScale", &[String], &["sigmoid", "minmax"], Some("\"sigmoid\"")),
        OptionSpec::new("threshold", &[Number], &[], None),
    ]
};

/// Refuses `name` unless it is an option (`parent` `None`) or a field of the object option
/// `parent` (`windows`, `fusion`), naming the closest one: `unknown option "fusion.wieght": did you
/// mean "fusion.weight"? (fusion: type, k, weight)`. Serde would ignore an unknown field inside
/// `windows` or `fusion` (the call then runs with a default the caller did not mean) or refuse
/// one in its own words, so the browser binding calls this for every name before serde reads them.
/// `{ weighted: 0.5 }` as `fusion`, a shape the README once showed, is told how fusion is written.
pub fn check_name(parent: Option<&str>, name: &str) -> Result<()> {
    let known: Vec<&str> = OPTIONS.iter().filter(|spec| spec.parent() == parent).map(|spec| spec.field()).collect();
    if known.contains(&name) {
        return Ok(());
    }
    let full = |field: &str| parent.map_or_else(|| field.to_string(), |parent| format!("{parent}.{field}"));
    if parent == Some("fusion") {
        let types = OPTIONS.iter().find(|spec| spec.name == "fusion.type").map_or(&[][..], |spec| spec.values);
        if types.contains(&name) {
            return Err(Error::invalid(format!(
                "unknown option \"fusion.{name}\": fusion is written {{ type: \"rrf\", k }} or {{ type: \"weighted\", weight }}, not {{ {name}: … }}"
            )));
        }
    }
    let nearest = known.iter().map(|candidate| (edit_distance(&fold(name), &fold(candidate)), *candidate)).min_by_key(|(distance, _)| *distance);
    let hint = match nearest {
        Some((distance, candidate)) if distance <= 2.max(candidate.len() / 3) => format!(": did you mean \"{}\"?", full(candidate)),
        _ => String::new(),
    };
    let list = match parent {
        None => format!("options: {}", known.join(", ")),
        Some(parent) => format!("{parent}: {}", known.join(", ")),
    };
    Err(Error::invalid(format!("unknown option \"{}\"{hint} ({list})", full(name))))
}

/// Case and separators do not count: top_k, TopK and top-k all read as topk.
fn fold(name: &str) -> String {
    name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

/// Levenshtein distance in characters (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            current.push((previous[j + 1] + 1).min(current[j] + 1).min(previous[j] + usize::from(a_char != *b_char)));
        }
        previous = current;
    }
    previous[b.len()]
}

impl OptionValues {
    /// Checks every value and builds the engine's options (then [`RerankOptions::validate`]s them).
    pub fn parse(&self) -> Result<RerankOptions> {
        let windows = match &self.windows {
            None | Some(WindowValues::Enabled(false)) => None,
            Some(WindowValues::Enabled(true)) => Some(WindowOptions::default()),
            Some(WindowValues::Options { overlap, aggregate }) => Some(WindowOptions {
                overlap: whole_number("windows.overlap", *overlap, 0)?.unwrap_or(WindowOptions::default().overlap),
                aggregate: Aggregate::parse(aggregate.as_deref().unwrap_or("max"))?,
            }),
        };
        let fusion = self.fusion.as_ref().map(|fusion| match *fusion {
            FusionValues::Rrf { k } => Fusion::Rrf { k: k.map_or(Fusion::DEFAULT_RRF_K, |k| k as f32) },
            FusionValues::Weighted { weight } => Fusion::Weighted { weight: weight as f32 },
        });
        let score_scale = match self.score_scale.as_deref() {
            None | Some("sigmoid") => ScoreScale::Sigmoid,
            Some("minmax") => ScoreScale::MinMax,
            Some(other) => return Err(Error::invalid(format!("scoreScale must be \"sigmoid\" or \"minmax\", got \"{other}\""))),
        };
        let options = RerankOptions {
            top_k: whole_number("topK", self.top_k, 1)?,
            max_length: whole_number("maxLength", self.max_length, 1)?,
            batch_size: whole_number("batchSize", self.batch_size, 1)?.unwrap_or(DEFAULT_BATCH_SIZE),
            windows,
            fusion,
            score_scale,
            threshold: self.threshold.map(|threshold| threshold as f32),
        };
        options.validate()?;
        Ok(options)
    }
}

/// A whole number from `min` up that fits in a u32, or a named error.
fn whole_number(name: &str, value: Option<f64>, min: u32) -> Result<Option<usize>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= f64::from(min) && v.fract() == 0.0 && v <= f64::from(u32::MAX) => Ok(Some(v as usize)),
        Some(v) => Err(Error::invalid(format!("{name} must be a whole number ≥ {min}, got {}", number(v)))),
    }
}

/// A number as a person wrote it: 1e300, not three hundred digits.
fn number(value: f64) -> String {
    if value != 0.0 && !(1e-6..1e16).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<RerankOptions> {
        serde_json::from_str::<OptionValues>(json).map_err(|e| Error::invalid(e.to_string()))?.parse()
    }

    #[test]
    fn every_option_is_read_by_its_js_name() {
        let options = parse(
            r#"{"topK": 3, "maxLength": 64, "batchSize": 4, "windows": {"overlap": 8, "aggregate": "mean"},
                "fusion": {"type": "weighted", "weight": 0.25}, "scoreScale": "minmax", "threshold": 0.5}"#,
        )
        .unwrap();
        assert_eq!(
            options,
            RerankOptions {
                top_k: Some(3),
                max_length: Some(64),
                batch_size: 4,
                windows: Some(WindowOptions { overlap: 8, aggregate: Aggregate::Mean }),
                fusion: Some(Fusion::Weighted { weight: 0.25 }),
                score_scale: ScoreScale::MinMax,
                threshold: Some(0.5),
            }
        );
        assert_eq!(parse("{}").unwrap(), RerankOptions::default());
        assert_eq!(parse(r#"{"windows": true}"#).unwrap().windows, Some(WindowOptions::default()));
        assert_eq!(parse(r#"{"windows": false}"#).unwrap().windows, None);
        assert_eq!(parse(r#"{"fusion": {"type": "rrf"}}"#).unwrap().fusion, Some(Fusion::Rrf { k: Fusion::DEFAULT_RRF_K }));
    }

    #[test]
    fn bad_values_are_named() {
        let message = |json: &str| parse(json).unwrap_err().detail();
        assert_eq!(message(r#"{"topK": 2.5}"#), "topK must be a whole number ≥ 1, got 2.5");
        assert_eq!(message(r#"{"topK": 0}"#), "topK must be a whole number ≥ 1, got 0");
        assert_eq!(message(r#"{"batchSize": -1}"#), "batchSize must be a whole number ≥ 1, got -1");
        assert_eq!(message(r#"{"maxLength": 1e300}"#), "maxLength must be a whole number ≥ 1, got 1e300");
        assert_eq!(message(r#"{"maxLength": 1e-9}"#), "maxLength must be a whole number ≥ 1, got 1e-9");
        assert_eq!(message(r#"{"windows": {"overlap": -8}}"#), "windows.overlap must be a whole number ≥ 0, got -8");
        assert!(message(r#"{"windows": {"aggregate": "median"}}"#).contains("unknown window aggregate \"median\""));
        assert_eq!(message(r#"{"scoreScale": "logit"}"#), "scoreScale must be \"sigmoid\" or \"minmax\", got \"logit\"");
        assert_eq!(message(r#"{"fusion": {"type": "weighted", "weight": 2}}"#), "fusion weight must be between 0 and 1, got 2");
        assert_eq!(message(r#"{"fusion": {"type": "rrf", "k": -1}}"#), "RRF k must be a number ≥ 0, got -1");
        assert!(message(r#"{"top_k": 3}"#).contains("unknown field `top_k`"));
        // fusion's mistakes name the JS fields, not serde's ("missing field `type`").
        assert!(message(r#"{"fusion": {"weighted": 0.5}}"#).starts_with("fusion needs a type: { type: \"rrf\", k? } or { type: \"weighted\", weight }"));
        assert!(message(r#"{"fusion": {"type": "magic"}}"#).starts_with("fusion.type must be \"rrf\" or \"weighted\", got \"magic\""));
        assert!(message(r#"{"fusion": {"type": "weighted"}}"#).starts_with("fusion.weight is required with type \"weighted\""));
    }

    #[test]
    fn unknown_names_are_refused_with_the_nearest() {
        let message = |parent: Option<&str>, name: &str| check_name(parent, name).unwrap_err().detail();
        for spec in OPTIONS {
            assert!(check_name(spec.parent(), spec.field()).is_ok(), "{}", spec.name);
        }
        assert_eq!(
            message(None, "top_k"),
            "unknown option \"top_k\": did you mean \"topK\"? (options: topK, maxLength, batchSize, windows, fusion, scoreScale, threshold)"
        );
        assert_eq!(message(None, "colour"), "unknown option \"colour\" (options: topK, maxLength, batchSize, windows, fusion, scoreScale, threshold)");
        assert_eq!(message(Some("fusion"), "wieght"), "unknown option \"fusion.wieght\": did you mean \"fusion.weight\"? (fusion: type, k, weight)");
        assert_eq!(message(Some("windows"), "overlp"), "unknown option \"windows.overlp\": did you mean \"windows.overlap\"? (windows: overlap, aggregate)");
        assert_eq!(message(Some("windows"), "size"), "unknown option \"windows.size\" (windows: overlap, aggregate)");
        // The shorthand the README once showed is told how fusion is written.
        assert_eq!(
            message(Some("fusion"), "weighted"),
            "unknown option \"fusion.weighted\": fusion is written { type: \"rrf\", k } or { type: \"weighted\", weight }, not { weighted: … }"
        );
        assert!(message(Some("fusion"), "rrf").starts_with("unknown option \"fusion.rrf\": fusion is written"));
    }

    /// A JSON value of `spec`'s type (a valid one where the spec lists values).
    fn sample(spec: &OptionSpec) -> serde_json::Value {
        match (spec.values.first(), spec.types[0]) {
            (Some(value), _) => serde_json::json!(value),
            (None, JsType::Number) => serde_json::json!(1),
            (None, JsType::String) => serde_json::json!("x"),
            (None, JsType::Boolean) => serde_json::json!(true),
            // Its fields that list values, each with its first (fusion's `type` is required).
            (None, JsType::Object) => OPTIONS
                .iter()
                .filter(|field| field.parent() == Some(spec.name) && !field.values.is_empty())
                .map(|field| (field.field().to_string(), serde_json::json!(field.values[0])))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// Options with `spec` set to `value` (and its parent made an object that parses).
    fn with(spec: &OptionSpec, value: serde_json::Value) -> serde_json::Value {
        match spec.parent() {
            None => serde_json::json!({ spec.name: value }),
            // fusion's fields with the type they belong to.
            Some("fusion") => match spec.field() {
                "type" => serde_json::json!({ "fusion": { "type": value, "weight": 0.5 } }),
                "k" => serde_json::json!({ "fusion": { "type": "rrf", "k": value } }),
                field => serde_json::json!({ "fusion": { "type": "weighted", field: value } }),
            },
            Some(parent) => serde_json::json!({ parent: { spec.field(): value } }),
        }
    }

    fn parse_value(value: serde_json::Value) -> Result<RerankOptions> {
        serde_json::from_value::<OptionValues>(value).map_err(|e| Error::invalid(e.to_string()))?.parse()
    }

    #[test]
    fn the_option_list_is_what_the_parser_reads() {
        // Every listed option (and each value it lists) is read.
        for spec in OPTIONS {
            let values: Vec<serde_json::Value> = if spec.values.is_empty() { vec![sample(spec)] } else { spec.values.iter().map(|v| serde_json::json!(v)).collect() };
            for value in values {
                let options = with(spec, value.clone());
                parse_value(options.clone()).unwrap_or_else(|e| panic!("{}: {options} is refused: {e}", spec.name));
            }
            if let Some(parent) = spec.parent() {
                assert!(OPTIONS.iter().any(|p| p.name == parent && p.types.contains(&JsType::Object)), "{}: no object {parent}", spec.name);
            }
        }
        // Every option the parser reads is listed: serde names them in its refusal of an unknown one.
        let refusal = serde_json::from_value::<OptionValues>(serde_json::json!({ "unknown": 1 })).unwrap_err().to_string();
        let expected = refusal.split("expected one of ").nth(1).unwrap();
        let read: Vec<&str> = expected.split(", ").map(|name| name.trim_matches(|c: char| c == '`' || !c.is_ascii_alphanumeric())).collect();
        let listed: Vec<&str> = OPTIONS.iter().filter(|spec| spec.parent().is_none()).map(|spec| spec.name).collect();
        assert_eq!(read, listed, "{refusal}");
    }

    #[test]
    fn the_listed_defaults_are_the_parsers() {
        for spec in OPTIONS {
            let Some(default) = spec.default else { continue };
            let default: serde_json::Value = serde_json::from_str(default).unwrap();
            let without = match spec.parent() {
                None => serde_json::json!({}),
                Some("windows") => serde_json::json!({ "windows": true }),
                Some(_) => serde_json::json!({ "fusion": { "type": "rrf" } }),
            };
            assert_eq!(parse_value(with(spec, default)).unwrap(), parse_value(without).unwrap(), "{}", spec.name);
        }
        assert_eq!(OPTIONS.iter().find(|spec| spec.name == "batchSize").unwrap().default, Some(DEFAULT_BATCH_SIZE.to_string().as_str()));
    }
}

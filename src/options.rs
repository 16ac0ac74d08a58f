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
            return Err(Error::invalid("top_k must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size must be at least 1"));
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
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FusionValues {
    Rrf { k: Option<f64> },
    Weighted { weight: f64 },
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
    }
}

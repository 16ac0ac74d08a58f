//! Combining the cross-encoder with the first stage (the search that produced the candidates),
//! and the score scales callers can ask for.

use crate::error::{Error, Result};

/// How to fuse the cross-encoder's order with the first stage's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal Rank Fusion: `1/(k + rank_cross) + 1/(k + rank_first)`, ranks from 1.
    /// Needs only the first-stage order (the input order when no first-stage scores are given).
    Rrf { k: f32 },
    /// `weight · minmax(logits) + (1 − weight) · minmax(first-stage scores)`; weight 1 is the
    /// cross-encoder alone. Needs first-stage scores.
    Weighted { weight: f32 },
}

impl Fusion {
    pub const DEFAULT_RRF_K: f32 = 60.0;

    pub fn validate(&self) -> Result<()> {
        match *self {
            Fusion::Rrf { k } if !(k.is_finite() && k >= 0.0) => Err(Error::invalid(format!("RRF k must be a number ≥ 0, got {k}"))),
            Fusion::Weighted { weight } if !(0.0..=1.0).contains(&weight) => {
                Err(Error::invalid(format!("fusion weight must be between 0 and 1, got {weight}")))
            }
            _ => Ok(()),
        }
    }
}

/// What `score` holds in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreScale {
    /// `sigmoid(logit)`: sentence-transformers' score for a one-label model, comparable across queries.
    #[default]
    Sigmoid,
    /// `(logit − min) / (max − min)` over this result set: 1 for the best, 0 for the worst (1 for all
    /// when every logit is equal). Only comparable within one call.
    MinMax,
}

/// 1-based ranks of `values` sorted descending; ties keep input order. Logits (f32) and first-stage
/// scores (f64, as callers send them: 1.00000001 and 1.00000002 are one f32) are compared exactly.
fn ranks_descending<T: Copy + Into<f64>>(values: &[T]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].into().total_cmp(&values[a].into()));
    let mut ranks = vec![0; values.len()];
    for (position, index) in order.into_iter().enumerate() {
        ranks[index] = position + 1;
    }
    ranks
}

/// Min-max normalisation to [0, 1]; all ones when the values are all equal.
pub(crate) fn min_max(values: &[f32]) -> Vec<f32> {
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !(max > min) {
        return vec![1.0; values.len()];
    }
    values.iter().map(|v| (v - min) / (max - min)).collect()
}

/// Min-max normalisation of first-stage scores, computed in f64: any finite scores (1e300 and
/// -1e300 too: both are halved first, so `max - min` cannot overflow) map into [0, 1].
fn min_max_scores(scores: &[f64]) -> Vec<f32> {
    let min = scores.iter().copied().fold(f64::INFINITY, f64::min) / 2.0;
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max) / 2.0;
    if !(max > min) {
        return vec![1.0; scores.len()];
    }
    scores.iter().map(|v| ((v / 2.0 - min) / (max - min)) as f32).collect()
}

/// The fused score of every document. `first_stage`: scores, higher is better; when `None`, the
/// input order is the first stage's ranking.
pub fn fuse(fusion: &Fusion, logits: &[f32], first_stage: Option<&[f64]>) -> Result<Vec<f32>> {
    fusion.validate()?;
    if let Some(scores) = first_stage {
        if scores.len() != logits.len() {
            return Err(Error::invalid(format!("{} first-stage scores for {} documents", scores.len(), logits.len())));
        }
        if let Some(position) = scores.iter().position(|s| !s.is_finite()) {
            return Err(Error::invalid(format!("first-stage score {position} is not a finite number")));
        }
    }
    match *fusion {
        Fusion::Rrf { k } => {
            let cross = ranks_descending(logits);
            let first: Vec<usize> = match first_stage {
                Some(scores) => ranks_descending(scores),
                None => (1..=logits.len()).collect(),
            };
            Ok(cross.iter().zip(&first).map(|(&a, &b)| 1.0 / (k + a as f32) + 1.0 / (k + b as f32)).collect())
        }
        Fusion::Weighted { weight } => {
            let scores = first_stage.ok_or_else(|| Error::invalid("weighted fusion needs first-stage scores"))?;
            let cross = min_max(logits);
            let first = min_max_scores(scores);
            Ok(cross.iter().zip(&first).map(|(c, f)| weight * c + (1.0 - weight) * f).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_matches_a_hand_computed_example() {
        // Cross-encoder order: doc2, doc0, doc1. First stage (input order): doc0, doc1, doc2.
        let fused = fuse(&Fusion::Rrf { k: 60.0 }, &[0.5, -1.0, 2.0], None).unwrap();
        let expected = [1.0 / 62.0 + 1.0 / 61.0, 1.0 / 63.0 + 1.0 / 62.0, 1.0 / 61.0 + 1.0 / 63.0];
        for (f, e) in fused.iter().zip(expected) {
            assert!((f - e).abs() < 1e-7, "{fused:?}");
        }
        // With explicit first-stage scores ranking doc1 first.
        let fused = fuse(&Fusion::Rrf { k: 0.0 }, &[0.5, -1.0, 2.0], Some(&[1.0, 9.0, 5.0])).unwrap();
        assert_eq!(fused, vec![1.0 / 2.0 + 1.0 / 3.0, 1.0 / 3.0 + 1.0, 1.0 + 1.0 / 2.0]);
    }

    #[test]
    fn weighted_extremes_follow_one_side() {
        let logits = [0.5, -1.0, 2.0];
        let first = [3.0, 1.0, 2.0];
        assert_eq!(ranks_descending(&fuse(&Fusion::Weighted { weight: 1.0 }, &logits, Some(&first)).unwrap()), ranks_descending(&logits));
        assert_eq!(ranks_descending(&fuse(&Fusion::Weighted { weight: 0.0 }, &logits, Some(&first)).unwrap()), ranks_descending(&first));
        assert_eq!(fuse(&Fusion::Weighted { weight: 0.5 }, &logits, None).unwrap_err().code(), "invalid_input");
        assert_eq!(fuse(&Fusion::Weighted { weight: 1.5 }, &logits, Some(&first)).unwrap_err().code(), "invalid_input");
    }

    #[test]
    fn min_max_and_ranks() {
        assert_eq!(min_max(&[1.0, 3.0, 2.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max(&[4.0, 4.0]), vec![1.0, 1.0]);
        assert_eq!(ranks_descending(&[1.0f32, 3.0, 1.0]), vec![2, 1, 3]);
    }

    /// First-stage scores are f64 end to end: 1e300 is a score like any other, and two scores
    /// that are one f32 (1.00000001, 1.00000002) keep their order.
    #[test]
    fn first_stage_scores_keep_f64_range_and_precision() {
        assert_eq!(ranks_descending(&[1.00000001f64, 1.00000002]), vec![2, 1]);
        assert_eq!(min_max_scores(&[1e300, -1e300, 0.0]), vec![1.0, 0.0, 0.5]);
        // Documents 0 and 1 tie on the logit; the first stage ranks 1 above 0, so RRF must too
        // (as one f32 the two scores tied, and input order put 0 first).
        let fused = fuse(&Fusion::Rrf { k: 60.0 }, &[0.0, 0.0, 5.0], Some(&[1.00000001, 1.00000002, 0.0])).unwrap();
        assert!(fused[1] > fused[0], "{fused:?}");
        let fused = fuse(&Fusion::Weighted { weight: 0.0 }, &[0.0, 0.0], Some(&[1e300, -1e300])).unwrap();
        assert_eq!(fused, vec![1.0, 0.0]);
    }
}

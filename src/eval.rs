//! Ranking metrics, computed the same way for every system compared (BM25, PyTorch runs,
//! crossrank at any precision): nDCG@10, MRR@10, Recall@10/100 and precision@1, averaged over
//! the queries of the relevance judgements, as pytrec_eval does for BEIR (linear gain).
//!
//! nDCG uses the grades themselves; the binary metrics (MRR, recall, P@1) count a document as
//! relevant when its grade is at least `min_relevance`: 1 for BEIR's binary sets, 2 for TREC Deep
//! Learning (TREC's convention: grade 1 means "related, does not answer").

use std::collections::HashMap;

/// Relevance judgements: query id → (document id → grade > 0).
pub type Qrels = HashMap<String, HashMap<String, u32>>;

/// A ranking per query, best first.
pub type Run = HashMap<String, Vec<String>>;

#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Metrics {
    pub ndcg_at_10: f64,
    pub mrr_at_10: f64,
    pub recall_at_10: f64,
    pub recall_at_100: f64,
    pub precision_at_1: f64,
    pub queries: usize,
}

/// nDCG@k of one ranking; the ideal ranking places every judged-relevant document first.
pub fn ndcg_at(ranking: &[String], relevant: &HashMap<String, u32>, k: usize) -> f64 {
    let gain = |doc: &String| relevant.get(doc).copied().unwrap_or(0) as f64;
    let dcg: f64 = ranking.iter().take(k).enumerate().map(|(i, doc)| gain(doc) / (i as f64 + 2.0).log2()).sum();
    let mut ideal: Vec<f64> = relevant.values().map(|&grade| grade as f64).filter(|&g| g > 0.0).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, g)| g / (i as f64 + 2.0).log2()).sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Graded judgements seen as binary: a document counts when its grade is at least `min_relevance` (≥ 1).
#[derive(Clone, Copy)]
pub struct Binary<'a> {
    pub grades: &'a HashMap<String, u32>,
    pub min_relevance: u32,
}

impl Binary<'_> {
    fn counts(&self, doc: &String) -> bool {
        self.grades.get(doc).is_some_and(|&grade| grade >= self.min_relevance.max(1))
    }
}

pub fn mrr_at(ranking: &[String], relevant: Binary, k: usize) -> f64 {
    ranking.iter().take(k).position(|doc| relevant.counts(doc)).map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

pub fn recall_at(ranking: &[String], relevant: Binary, k: usize) -> f64 {
    let total = relevant.grades.keys().filter(|doc| relevant.counts(doc)).count();
    if total == 0 {
        return 0.0;
    }
    ranking.iter().take(k).filter(|doc| relevant.counts(doc)).count() as f64 / total as f64
}

/// Averages over every query in `qrels`; a query missing from `run` counts as a ranking with no hits.
/// `min_relevance` is the lowest grade the binary metrics count (see the module docs).
pub fn evaluate(qrels: &Qrels, run: &Run, min_relevance: u32) -> Metrics {
    let empty = Vec::new();
    let mut metrics = Metrics::default();
    // In query-id order: a HashMap's order changes from run to run, and so did the sums' last bit.
    let mut queries: Vec<_> = qrels.iter().collect();
    queries.sort_unstable_by_key(|(id, _)| *id);
    for (query_id, grades) in queries {
        let ranking = run.get(query_id).unwrap_or(&empty);
        let relevant = Binary { grades, min_relevance };
        metrics.ndcg_at_10 += ndcg_at(ranking, grades, 10);
        metrics.mrr_at_10 += mrr_at(ranking, relevant, 10);
        metrics.recall_at_10 += recall_at(ranking, relevant, 10);
        metrics.recall_at_100 += recall_at(ranking, relevant, 100);
        metrics.precision_at_1 += ranking.first().map_or(0.0, |doc| relevant.counts(doc) as u8 as f64);
    }
    let n = qrels.len().max(1) as f64;
    Metrics {
        ndcg_at_10: metrics.ndcg_at_10 / n,
        mrr_at_10: metrics.mrr_at_10 / n,
        recall_at_10: metrics.recall_at_10 / n,
        recall_at_100: metrics.recall_at_100 / n,
        precision_at_1: metrics.precision_at_1 / n,
        queries: qrels.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_example() {
        // Two relevant documents; the ranking finds one at rank 2 and one at rank 4.
        let relevant: HashMap<String, u32> = [("a".to_string(), 1), ("b".to_string(), 1)].into();
        let ranking = ids(&["x", "a", "y", "b"]);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg_at(&ranking, &relevant, 10) - dcg / idcg).abs() < 1e-12);
        let binary = Binary { grades: &relevant, min_relevance: 1 };
        assert_eq!(mrr_at(&ranking, binary, 10), 0.5);
        assert_eq!(recall_at(&ranking, binary, 3), 0.5);
        assert_eq!(recall_at(&ranking, binary, 10), 1.0);
        let qrels: Qrels = [("q".to_string(), relevant)].into();
        let metrics = evaluate(&qrels, &[("q".to_string(), ranking)].into(), 1);
        assert_eq!(metrics.precision_at_1, 0.0);
        assert_eq!(metrics.queries, 1);
        // A query absent from the run scores zero, it is not skipped.
        let metrics = evaluate(&qrels, &Run::new(), 1);
        assert_eq!(metrics.ndcg_at_10, 0.0);
    }

    /// The same qrels and run give the same bits every time: the sums run in query-id order, not
    /// in a HashMap's (whose order changed from run to run, and with it the nDCG's last bit).
    #[test]
    fn averages_are_summed_in_query_id_order() {
        // 200 queries with varied grades and rankings, so that their nDCGs are many different
        // fractions and the order of the sum shows in its last bits.
        let (mut qrels, mut run) = (Qrels::new(), Run::new());
        for q in 0..200usize {
            let grades: HashMap<String, u32> = (0..q % 9 + 1).map(|d| (format!("d{d}"), ((d * 7 + q) % 4) as u32)).collect();
            let ranking: Vec<String> = (0..q % 11 + 2).map(|i| format!("d{}", (i * 5 + q * 3) % 13)).collect();
            qrels.insert(format!("q{q}"), grades);
            run.insert(format!("q{q}"), ranking);
        }
        let mut ids: Vec<&String> = qrels.keys().collect();
        ids.sort();
        let in_order = ids.iter().fold(0.0, |sum, id| sum + ndcg_at(&run[*id], &qrels[*id], 10)) / 200.0;
        assert_eq!(evaluate(&qrels, &run, 1).ndcg_at_10.to_bits(), f64::to_bits(in_order));
    }

    #[test]
    fn min_relevance_changes_the_binary_metrics_only() {
        // TREC DL grades: "a" is related (1), "b" answers (2). At min_relevance 2 only "b" counts.
        let grades: HashMap<String, u32> = [("a".to_string(), 1), ("b".to_string(), 2)].into();
        let ranking = ids(&["a", "x", "b"]);
        let qrels: Qrels = [("q".to_string(), grades.clone())].into();
        let run: Run = [("q".to_string(), ranking.clone())].into();
        let loose = evaluate(&qrels, &run, 1);
        let strict = evaluate(&qrels, &run, 2);
        assert_eq!((loose.mrr_at_10, loose.precision_at_1, loose.recall_at_10), (1.0, 1.0, 1.0));
        assert_eq!((strict.mrr_at_10, strict.precision_at_1), (1.0 / 3.0, 0.0));
        assert_eq!(strict.recall_at_10, 1.0);
        assert_eq!(recall_at(&ids(&["a"]), Binary { grades: &grades, min_relevance: 2 }, 10), 0.0);
        // nDCG keeps the grades whatever the threshold.
        assert_eq!(loose.ndcg_at_10, strict.ndcg_at_10);
        assert_eq!(loose.ndcg_at_10, ndcg_at(&ranking, &grades, 10));
        // 0 is read as 1: a grade-0 judgement never counts as relevant.
        assert_eq!(evaluate(&qrels, &run, 0), loose);
    }
}

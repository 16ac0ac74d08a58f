//! The ranking contract: indices point into the input, best first, ties stable, top_k respected,
//! blank documents last.

mod common;

use candle_core::Device;
use crossrank::local::load_hf_dir;
use common::rank;
use crossrank::RerankOptions;

#[test]
fn rerank_orders_by_logit_and_respects_top_k() {
    let reranker = load_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap();
    let fixture = common::fixture("tiny.json");
    let query = "what causes vitamin d deficiency";
    let documents: Vec<&str> = fixture.cases.iter().map(|case| case.passage.as_str()).collect();
    let logits = reranker.logits(query, &documents).unwrap();

    let ranked = reranker.rerank(query, &documents, &RerankOptions::default()).unwrap();
    assert_eq!(ranked.len(), documents.len());
    let mut seen: Vec<usize> = ranked.iter().map(|r| r.index).collect();
    seen.sort();
    assert_eq!(seen, (0..documents.len()).collect::<Vec<_>>(), "every input index exactly once");
    // The fixture's empty and whitespace-only passages come last, in input order, with score 0;
    // the others are sorted by logit.
    let blank: Vec<usize> = (0..documents.len()).filter(|&i| documents[i].trim().is_empty()).collect();
    assert_eq!(blank.len(), 2, "the fixture has an empty and a blank passage");
    let (filled, last) = ranked.split_at(ranked.len() - blank.len());
    assert_eq!(last.iter().map(|r| r.index).collect::<Vec<_>>(), blank);
    for pair in filled.windows(2) {
        assert!(pair[0].logit >= pair[1].logit, "not sorted: {pair:?}");
    }
    for r in &ranked {
        assert_eq!(r.logit, logits[r.index], "logit of document {} moved with its index", r.index);
        let expected = if blank.contains(&r.index) { 0.0 } else { 1.0 / (1.0 + (-r.logit).exp()) };
        assert!((r.score - expected).abs() < 1e-7, "score of document {}", r.index);
    }

    let top = reranker.rerank(query, &documents, &RerankOptions { top_k: Some(3), ..Default::default() }).unwrap();
    assert_eq!(top, ranked[..3].to_vec());
    // A top_k larger than the list returns everything.
    let all = reranker.rerank(query, &documents, &RerankOptions { top_k: Some(1000), ..Default::default() }).unwrap();
    assert_eq!(all, ranked);
}

#[test]
fn identical_documents_tie_in_input_order() {
    let reranker = load_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap();
    let documents = ["same text", "other text entirely", "same text", "same text"];
    let ranked = reranker.rerank("a query", &documents, &RerankOptions::default()).unwrap();
    let same: Vec<usize> = ranked.iter().filter(|r| documents[r.index] == "same text").map(|r| r.index).collect();
    assert_eq!(same, vec![0, 2, 3]);
}

#[test]
fn rank_is_stable_and_uses_logits_not_saturated_scores() {
    // 40 and 41 both have sigmoid == 1.0 in f32; the logit still decides.
    let ranked = rank(&[1.0, 40.0, 41.0, 1.0, -3.0], None);
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 1, 0, 3, 4]);
    assert_eq!(ranked[0].score, ranked[1].score);
    assert_eq!(rank(&[0.5, 0.2], Some(1)).len(), 1);
}

#[test]
fn max_length_is_configurable_and_changes_only_long_pairs() {
    let reranker = load_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap();
    let long = "word ".repeat(600);
    let short = "a short passage";
    let at = |max_length| {
        reranker.logits_with("query", &[&long, short], &RerankOptions { max_length, ..Default::default() }).unwrap()
    };
    let full = at(None);
    let cut = at(Some(32));
    assert_ne!(full[0], cut[0], "the long passage is cut differently");
    assert!((full[1] - cut[1]).abs() < 1e-5, "the short pair fits either way");
    let encoded = reranker.encode("query", &[&long], Some(32)).unwrap();
    assert_eq!(encoded[0].input_ids.len(), 32);
}

/// An empty document used to outrank a relevant one (the model rates "nothing" above some real
/// text): blank documents rank last with score 0, also with fusion and min-max scores, and a
/// threshold drops them.
#[test]
fn blank_documents_rank_last_whatever_their_logit() {
    let reranker = load_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap();
    let documents = ["", "vitamin d comes from sunlight", " \t\n", "stock prices fell"];
    let logits = reranker.logits("vitamin d", &documents).unwrap();
    for options in [
        RerankOptions::default(),
        RerankOptions { score_scale: crossrank::ScoreScale::MinMax, ..Default::default() },
        RerankOptions { fusion: Some(crossrank::Fusion::Rrf { k: 60.0 }), ..Default::default() },
    ] {
        let ranked = reranker.rerank("vitamin d", &documents, &options).unwrap();
        assert_eq!(ranked.iter().map(|r| r.index).skip(2).collect::<Vec<_>>(), vec![0, 2], "{options:?}");
        for r in &ranked[2..] {
            assert_eq!(r.score, 0.0);
            assert_eq!(r.logit, logits[r.index], "the logit stays the model's");
        }
        assert!(ranked[..2].iter().all(|r| r.score > 0.0 || options.score_scale == crossrank::ScoreScale::MinMax));
    }
    let kept = reranker.rerank("vitamin d", &documents, &RerankOptions { threshold: Some(0.01), ..Default::default() }).unwrap();
    assert_eq!(kept.len(), 2);
}

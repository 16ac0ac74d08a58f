//! Long-document windows, fusion with the first stage, score scales, thresholds and batches of
//! queries: exact expectations on the tiny fixture model.

mod common;

use candle_core::Device;
use crossrank::local::load_hf_dir;
use crossrank::{Aggregate, Fusion, RerankOptions, RerankRequest, Reranker, ScoreScale, WindowOptions};

fn tiny() -> Reranker {
    load_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap()
}

fn long_passage() -> String {
    (0..60).map(|i| format!("Sentence {i} reports unbelievably heterogeneous vitamin-D measurements in cohort {i}.")).collect::<Vec<_>>().join(" ")
}

const QUERY: &str = "vitamin d measurements";

fn windowed(max_length: usize, overlap: usize, aggregate: Aggregate) -> RerankOptions {
    RerankOptions { max_length: Some(max_length), windows: Some(WindowOptions { overlap, aggregate }), ..Default::default() }
}

#[test]
fn windows_cover_every_token_with_the_stated_overlap() {
    let reranker = tiny();
    let passage = long_passage();
    let (max_length, overlap) = (64, 16);
    let pairs = reranker.encode(QUERY, &[&passage], Some(10_000.min(512))).unwrap();
    assert_eq!(pairs[0].input_ids.len(), 512, "the passage is longer than the model");

    let tokenizer = reranker_tokenizer(&reranker);
    let windows = crossrank::windows::split(&tokenizer, tokenizer.count_tokens(QUERY).unwrap(), &passage, max_length, overlap).unwrap();
    assert!(windows.len() > 3, "{} windows", windows.len());
    assert_eq!(windows[0].start, 0);
    assert_eq!(windows.last().unwrap().end, passage.chars().count());
    let query_tokens = reranker.encode(QUERY, &[""], None).unwrap()[0].input_ids.len() - 3;
    let budget = max_length - 3 - query_tokens;
    let tokens_of = |text: &str| reranker.encode(QUERY, &[text], None).unwrap()[0].input_ids.len() - 3 - query_tokens;
    for pair in windows.windows(2) {
        assert!(pair[1].start < pair[0].end, "windows {pair:?} leave a gap");
        assert!(pair[1].start > pair[0].start);
        let shared: String = passage.chars().skip(pair[1].start).take(pair[0].end - pair[1].start).collect();
        assert!(tokens_of(shared.trim()) >= overlap, "windows {pair:?} share fewer than {overlap} tokens");
    }
    for window in &windows {
        let text = crossrank::windows::text(&passage, window);
        assert!(tokens_of(&text) <= budget, "window {window:?} has more than {budget} tokens");
    }
}

/// The tokenizer is internal to the reranker; tests reach it through the same files.
fn reranker_tokenizer(_: &Reranker) -> crossrank::PairTokenizer {
    let bytes = std::fs::read(common::tiny_dir().join("tokenizer.json")).unwrap();
    crossrank::PairTokenizer::from_tokenizer_json("tokenizer.json", &bytes).unwrap()
}

#[test]
fn max_window_score_equals_that_window_scored_alone() {
    let reranker = tiny();
    let passage = long_passage();
    let options = windowed(64, 16, Aggregate::Max);
    let ranked = reranker.rerank(QUERY, &[&passage, "short document"], &options).unwrap();
    let long = ranked.iter().find(|r| r.index == 0).unwrap();
    let window = long.best_window.expect("windows report the best window");
    let text = crossrank::windows::text(&passage, &window);
    let alone = reranker.logits_with(QUERY, &[&text], &RerankOptions { max_length: Some(64), ..Default::default() }).unwrap()[0];
    assert!((alone - long.logit).abs() < 1e-5, "best window {window:?}: {} vs alone {alone}", long.logit);
    // A short document is a single window: the same score as without windows.
    let short = ranked.iter().find(|r| r.index == 1).unwrap();
    let plain = reranker.logits_with(QUERY, &["short document"], &RerankOptions::default()).unwrap()[0];
    assert!((short.logit - plain).abs() < 1e-5);
    assert_eq!(short.best_window.unwrap().end, "short document".len());

    // Mean lies between the worst and best windows; first equals the first window alone.
    let mean = reranker.logits_with(QUERY, &[&passage], &windowed(64, 16, Aggregate::Mean)).unwrap()[0];
    assert!(mean <= long.logit);
    let first = reranker.rerank(QUERY, &[&passage], &windowed(64, 16, Aggregate::First)).unwrap()[0];
    assert_eq!(first.best_window.unwrap().start, 0);
    let first_text = crossrank::windows::text(&passage, &first.best_window.unwrap());
    let first_alone = reranker.logits_with(QUERY, &[&first_text], &RerankOptions { max_length: Some(64), ..Default::default() }).unwrap()[0];
    assert!((first.logit - first_alone).abs() < 1e-5);
}

const DOCUMENTS: [&str; 5] = ["vitamin d in sunlight", "stocks fell", "bread recipe", "d vitamins and bones", "weather report"];

#[test]
fn rrf_order_equals_the_hand_computed_one() {
    let reranker = tiny();
    let logits = reranker.logits(QUERY, &DOCUMENTS).unwrap();
    // Hand computation: cross-encoder ranks from the logits, first-stage ranks = input order, k = 60.
    let mut by_logit: Vec<usize> = (0..5).collect();
    by_logit.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let mut expected: Vec<(f32, usize)> = (0..5)
        .map(|i| {
            let cross_rank = by_logit.iter().position(|&j| j == i).unwrap() + 1;
            (1.0 / (60.0 + cross_rank as f32) + 1.0 / (60.0 + (i + 1) as f32), i)
        })
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0));
    let options = RerankOptions { fusion: Some(Fusion::Rrf { k: 60.0 }), ..Default::default() };
    let ranked = reranker.rerank(QUERY, &DOCUMENTS, &options).unwrap();
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), expected.iter().map(|e| e.1).collect::<Vec<_>>());
    for (r, e) in ranked.iter().zip(&expected) {
        assert!((r.fused.unwrap() - e.0).abs() < 1e-7);
    }
}

#[test]
fn weighted_fusion_with_weight_one_is_the_cross_encoder_order() {
    let reranker = tiny();
    let first_stage = [1.0, 5.0, 3.0, 2.0, 4.0];
    let plain = reranker.rerank(QUERY, &DOCUMENTS, &RerankOptions::default()).unwrap();
    let options = RerankOptions { fusion: Some(Fusion::Weighted { weight: 1.0 }), ..Default::default() };
    let request = RerankRequest { query: QUERY, documents: &DOCUMENTS, first_stage: Some(&first_stage) };
    let fused = reranker.rerank_many(&[request], &options).unwrap().pop().unwrap();
    assert_eq!(fused.iter().map(|r| r.index).collect::<Vec<_>>(), plain.iter().map(|r| r.index).collect::<Vec<_>>());
    // Weight 0 is the first stage's order.
    let options = RerankOptions { fusion: Some(Fusion::Weighted { weight: 0.0 }), ..Default::default() };
    let first_only = reranker.rerank_many(&[request], &options).unwrap().pop().unwrap();
    assert_eq!(first_only.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 4, 2, 3, 0]);
    // Without first-stage scores, weighted fusion is refused.
    assert_eq!(reranker.rerank(QUERY, &DOCUMENTS, &options).unwrap_err().code(), "invalid_input");
}

#[test]
fn thresholds_drop_exactly_the_results_below() {
    let reranker = tiny();
    let plain = reranker.rerank(QUERY, &DOCUMENTS, &RerankOptions::default()).unwrap();
    // A threshold halfway between the 2nd and 3rd scores keeps exactly two.
    let threshold = (plain[1].score + plain[2].score) / 2.0;
    let kept = reranker.rerank(QUERY, &DOCUMENTS, &RerankOptions { threshold: Some(threshold), ..Default::default() }).unwrap();
    assert_eq!(kept, plain[..2].to_vec());
    // A threshold equal to a score keeps that result.
    let kept = reranker.rerank(QUERY, &DOCUMENTS, &RerankOptions { threshold: Some(plain[3].score), ..Default::default() }).unwrap();
    assert_eq!(kept.len(), 4);
    // Min-max scores: best 1, worst 0; a threshold of 1 keeps only the best.
    let minmax = RerankOptions { score_scale: ScoreScale::MinMax, threshold: Some(1.0), ..Default::default() };
    let best = reranker.rerank(QUERY, &DOCUMENTS, &minmax).unwrap();
    assert_eq!(best.len(), 1);
    assert_eq!((best[0].index, best[0].score), (plain[0].index, 1.0));
    assert_eq!(reranker.rerank(QUERY, &DOCUMENTS, &RerankOptions { threshold: Some(f32::NAN), ..Default::default() }).unwrap_err().code(), "invalid_input");
}

#[test]
fn rerank_many_equals_one_call_per_query() {
    let reranker = tiny();
    let second: [&str; 3] = ["bread and butter", "vitamin d", "sourdough bread recipe"];
    let requests = [
        RerankRequest { query: QUERY, documents: &DOCUMENTS, first_stage: None },
        RerankRequest { query: "bread recipe", documents: &second, first_stage: None },
    ];
    let options = RerankOptions { top_k: Some(3), batch_size: 4, ..Default::default() };
    let many = reranker.rerank_many(&requests, &options).unwrap();
    assert_eq!(many.len(), 2);
    for (request, ranked) in requests.iter().zip(&many) {
        let alone = reranker.rerank(request.query, request.documents, &options).unwrap();
        assert_eq!(ranked.len(), alone.len());
        for (a, b) in ranked.iter().zip(&alone) {
            assert_eq!(a.index, b.index);
            assert!((a.logit - b.logit).abs() < 1e-5);
        }
    }
    let bad = [RerankRequest { query: "", documents: &second, first_stage: None }];
    assert_eq!(reranker.rerank_many(&bad, &options).unwrap_err().code(), "invalid_input");
}

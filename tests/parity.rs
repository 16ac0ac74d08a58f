//! Parity with PyTorch: token ids and raw logits equal the fixtures made by tests/make_fixtures.py
//! (sentence-transformers CrossEncoder, CPU float32; versions and command are in each fixture file).

mod common;

use candle_core::Device;
use common::{fixture, max_abs_diff, minilm_dir, tiny_dir, Fixture};
use crossrank::local::load_hf_dir;
use crossrank::{RerankOptions, Reranker};

/// f32 against PyTorch f32: the sums run in a different order, nothing else differs.
const F32_TOLERANCE: f32 = 1e-4;

fn check_tokens(reranker: &Reranker, fixture: &Fixture) {
    for case in &fixture.cases {
        let encoded = reranker.encode(&case.query, &[case.passage.as_str()], None).unwrap();
        assert_eq!(encoded[0].input_ids, case.input_ids, "input_ids of case {}", case.name);
        assert_eq!(encoded[0].token_type_ids, case.token_type_ids, "token_type_ids of case {}", case.name);
        if let Some(short) = &case.short {
            let encoded = reranker.encode(&case.query, &[case.passage.as_str()], Some(short.max_length)).unwrap();
            assert_eq!(encoded[0].input_ids, short.input_ids, "input_ids of case {} at max_length {}", case.name, short.max_length);
            assert_eq!(encoded[0].token_type_ids, short.token_type_ids, "token_type_ids of case {} (short)", case.name);
        }
    }
}

/// Scores every case (each with its own query) one call per case, and all cases sharing one padded
/// batch is covered by `batched_scores_equal_single_scores`.
fn check_logits(reranker: &Reranker, fixture: &Fixture, tolerance: f32) {
    let expected: Vec<f32> = fixture.cases.iter().map(|case| case.logit).collect();
    let found: Vec<f32> =
        fixture.cases.iter().map(|case| reranker.logits(&case.query, &[case.passage.as_str()]).unwrap()[0]).collect();
    let diff = max_abs_diff(&found, &expected);
    println!("max |Δlogit| vs PyTorch: {diff:.2e} over {} pairs", found.len());
    assert!(diff <= tolerance, "max |Δlogit| {diff} > {tolerance}\nfound    {found:?}\nexpected {expected:?}");
}

#[test]
fn tiny_tokens_equal_pytorch() {
    check_tokens(&load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap(), &fixture("tiny.json"));
}

#[test]
fn tiny_logits_equal_pytorch() {
    check_logits(&load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap(), &fixture("tiny.json"), F32_TOLERANCE);
}

#[test]
fn tiny_from_pytorch_bin_without_prefix_equals_pytorch() {
    // tests/models/tiny-bin: the same weights pickled, names without `bert.`, tokenizer from vocab.txt.
    let reranker = load_hf_dir(&common::root().join("tests/models/tiny-bin"), &Device::Cpu).unwrap();
    let fixture = fixture("tiny.json");
    check_tokens(&reranker, &fixture);
    check_logits(&reranker, &fixture, F32_TOLERANCE);
}

#[test]
fn minilm_l4_tokens_equal_pytorch() {
    check_tokens(&load_hf_dir(&minilm_dir(), &Device::Cpu).unwrap(), &fixture("minilm_l4.json"));
}

#[test]
fn minilm_l4_logits_equal_pytorch() {
    check_logits(&load_hf_dir(&minilm_dir(), &Device::Cpu).unwrap(), &fixture("minilm_l4.json"), F32_TOLERANCE);
}

#[test]
fn batched_scores_equal_single_scores() {
    // One query against passages of very different lengths: padding must not change any score.
    let reranker = load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap();
    let fixture = fixture("tiny.json");
    let query = "vitamin d and blood pressure";
    let passages: Vec<&str> = fixture.cases.iter().map(|case| case.passage.as_str()).collect();
    let single: Vec<f32> = passages.iter().map(|p| reranker.logits(query, &[p]).unwrap()[0]).collect();
    for batch_size in [1, 3, 16] {
        let options = RerankOptions { batch_size, ..RerankOptions::default() };
        let batched = reranker.logits_with(query, &passages, &options).unwrap();
        let diff = max_abs_diff(&batched, &single);
        assert!(diff < 1e-5, "batch_size {batch_size}: max |Δ| {diff}");
    }
}

/// ELECTRA and XLM-RoBERTa (tests/make_family_fixtures.py): each family's tokens and logits, every
/// pair one at a time and all of them in one padded batch (XLM-R pads with `<pad>` = 1, and its
/// positions start after it).
#[test]
fn other_families_tokens_and_logits_equal_pytorch() {
    for (dir, fixture_name) in [("tests/models/tiny-electra", "tiny_electra.json"), ("tests/models/tiny-xlmr", "tiny_xlmr.json")] {
        let reranker = load_hf_dir(&common::root().join(dir), &Device::Cpu).unwrap();
        let fixture = fixture(fixture_name);
        check_tokens(&reranker, &fixture);
        check_logits(&reranker, &fixture, F32_TOLERANCE);
        assert_eq!(reranker.max_positions(), 512, "{dir}: usable positions");
        let query = fixture.cases[0].query.as_str();
        let passages: Vec<&str> = fixture.cases.iter().map(|case| case.passage.as_str()).collect();
        let single: Vec<f32> = passages.iter().map(|p| reranker.logits(query, &[p]).unwrap()[0]).collect();
        let batched = reranker.logits(query, &passages).unwrap();
        let diff = max_abs_diff(&batched, &single);
        assert!(diff < 1e-5, "{dir}: batched vs single max |Δ| {diff}");
    }
}

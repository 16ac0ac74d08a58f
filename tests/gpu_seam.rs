//! The seam another encoder (the browser's WebGPU one) plugs into: `Reranker::prepare` gives the
//! batches, the encoder their logits, `PreparedScoring::finish` what `score_many` gives; and the
//! model's plan (src/model/plan.rs) holds every tensor the CPU model loads, under its contract name.

mod common;

use std::collections::BTreeSet;

use candle_core::Device;
use common::{minilm_dir, root, tiny_dir};
use crossrank::local::load_hf_dir;
use crossrank::model::plan::{Plan, PlanDType, PlanHead};
use crossrank::model::Config;
use crossrank::weights::WeightStore;
use crossrank::{BatchLimits, RerankOptions, RerankRequest, Reranker, WindowOptions};

const QUERY: &str = "how do plants make food";
const DOCUMENTS: [&str; 5] = [
    "Photosynthesis is how plants turn light, water and carbon dioxide into sugar.",
    "The stock market fell today.",
    "",
    "Plants make their food in the leaves, where chlorophyll captures sunlight to build glucose from water and air; the roots bring up water and minerals, and the sugar feeds the whole plant.",
    "Cats sleep a lot.",
];

/// Scores a prepared rerank batch by batch on the CPU encoder, as the WebGPU encoder would.
fn score_through_seam(reranker: &Reranker, requests: &[RerankRequest], options: &RerankOptions, limits: BatchLimits) -> Vec<Vec<crossrank::ScoredDocument>> {
    let prepared = reranker.prepare(requests, options, limits).unwrap();
    let mut logits = Vec::new();
    for index in 0..prepared.batch_count() {
        let batch = prepared.batch(index);
        assert!(batch.rows <= limits.max_rows, "batch {index} has {} rows, above {}", batch.rows, limits.max_rows);
        assert!(batch.rows == 1 || batch.rows * batch.seq_len <= limits.max_tokens, "batch {index} exceeds the token budget");
        logits.extend(reranker.score_batch(batch).unwrap());
    }
    assert_eq!(logits.len(), prepared.pair_count());
    prepared.finish(&logits).unwrap()
}

#[test]
fn prepared_batches_scored_elsewhere_give_what_score_many_gives() {
    let reranker = load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap();
    let other: [&str; 2] = ["Leaves hold chlorophyll.", "Rain falls."];
    let requests = [
        RerankRequest { query: QUERY, documents: &DOCUMENTS, first_stage: None },
        RerankRequest { query: "what is in leaves", documents: &other, first_stage: None },
        RerankRequest { query: "nothing to rank", documents: &[], first_stage: None },
    ];
    let windowed = RerankOptions { max_length: Some(24), windows: Some(WindowOptions { overlap: 4, ..Default::default() }), ..Default::default() };
    for options in [RerankOptions::default(), windowed] {
        let expected = reranker.score_many(&requests, &options).unwrap();
        for limits in [BatchLimits { max_rows: 16, max_tokens: 1024 }, BatchLimits { max_rows: 2, max_tokens: 40 }, BatchLimits { max_rows: 64, max_tokens: 1 << 16 }] {
            let seam = score_through_seam(&reranker, &requests, &options, limits);
            assert_eq!(seam.len(), 3);
            assert!(seam[2].is_empty());
            for (got, want) in seam.iter().flatten().zip(expected.iter().flatten()) {
                assert!((got.logit - want.logit).abs() < 1e-5, "{} vs {} ({limits:?})", got.logit, want.logit);
                assert_eq!(got.best_window, want.best_window);
                assert_eq!(got.blank, want.blank);
            }
        }
    }
}

#[test]
fn batches_are_sorted_by_length_and_padded_with_a_mask() {
    let reranker = load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap();
    let requests = [RerankRequest { query: QUERY, documents: &DOCUMENTS, first_stage: None }];
    let prepared = reranker.prepare(&requests, &RerankOptions::default(), BatchLimits { max_rows: 2, max_tokens: 1024 }).unwrap();
    assert_eq!((prepared.batch_count(), prepared.pair_count()), (3, 5));
    let lengths: Vec<usize> = (0..3).map(|index| prepared.batch(index).seq_len).collect();
    assert!(lengths.windows(2).all(|pair| pair[0] >= pair[1]), "{lengths:?}");
    let batch = prepared.batch(0);
    assert_eq!(batch.input_ids.len(), batch.rows * batch.seq_len);
    // Row 0 is the longest pair: no padding; a shorter row ends in padding with mask 0.
    assert!(batch.attention_mask[..batch.seq_len].iter().all(|&m| m == 1.0));
    let tokens = batch.attention_mask[batch.seq_len..].iter().filter(|&&m| m == 1.0).count();
    assert!(tokens < batch.seq_len);
    assert_eq!(batch.input_ids[batch.seq_len + tokens..], vec![reranker.tokenizer().pad_id(); batch.seq_len - tokens][..]);
}

#[test]
fn finish_refuses_a_wrong_count_and_non_finite_logits() {
    let reranker = load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap();
    let requests = [RerankRequest { query: QUERY, documents: &DOCUMENTS, first_stage: None }];
    let prepared = reranker.prepare(&requests, &RerankOptions::default(), BatchLimits::gpu(&RerankOptions::default())).unwrap();
    let error = prepared.finish(&[0.5; 4]).unwrap_err();
    assert_eq!(error.code(), "invalid_input");
    assert!(error.to_string().contains("expected 5 logits"), "{error}");
    let error = prepared.finish(&[0.5, f32::NAN, 0.1, 0.2, 0.3]).unwrap_err();
    assert_eq!(error.code(), "compute");
    assert!(error.to_string().contains("non-finite logit"), "{error}");
}

#[test]
fn prepare_checks_options_and_queries_as_score_many_does() {
    let reranker = load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap();
    let limits = BatchLimits { max_rows: 4, max_tokens: 512 };
    let empty_query = [RerankRequest { query: " ", documents: &DOCUMENTS, first_stage: None }];
    assert!(reranker.prepare(&empty_query, &RerankOptions::default(), limits).unwrap_err().to_string().contains("the query is empty"));
    let requests = [RerankRequest { query: QUERY, documents: &DOCUMENTS, first_stage: None }];
    let too_long = RerankOptions { max_length: Some(1 << 20), ..Default::default() };
    assert_eq!(reranker.prepare(&requests, &too_long, limits).unwrap_err().code(), reranker.score_many(&requests, &too_long).unwrap_err().code());
}

fn store_and_config(dir: &std::path::Path) -> (WeightStore, Config) {
    let file = dir.join("model.safetensors");
    let store = WeightStore::from_safetensors(&file.display().to_string(), &std::fs::read(&file).unwrap(), &Device::Cpu).unwrap();
    let config = Config::from_json("config.json", &std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    (store, config)
}

/// Every stored tensor is in the plan once (nothing the CPU model loads is left out), and the
/// names, shapes and head follow the contract.
fn check_plan(dir: &std::path::Path, head: PlanHead, projected: bool) -> Plan {
    let (store, config) = store_and_config(dir);
    let plan = Plan::read(&store, &config).unwrap();
    let sources: BTreeSet<&str> = plan.tensors.iter().map(|tensor| tensor.source.as_str()).collect();
    let stored: BTreeSet<&str> = store.names().map(String::as_str).filter(|name| !name.ends_with("position_ids")).collect();
    assert_eq!(sources, stored, "{}", dir.display());
    assert_eq!(sources.len(), plan.tensors.len(), "a tensor is in the plan twice");
    assert_eq!(plan.head, head);
    let names: BTreeSet<&str> = plan.tensors.iter().map(|tensor| tensor.name.as_str()).collect();
    assert_eq!(names.contains("embeddings.project.weight"), projected);
    let layers = config.num_hidden_layers;
    assert_eq!(names.len(), 5 + usize::from(projected) * 2 + layers * 16 + 4);
    let find = |name: &str| plan.tensors.iter().find(|tensor| tensor.name == name).unwrap();
    let last = format!("layers.{}.intermediate.weight", layers - 1);
    assert_eq!(find(&last).shape, vec![config.intermediate_size, config.hidden_size]);
    assert_eq!(find("head.out.weight").shape, vec![1, config.hidden_size]);
    for tensor in &plan.tensors {
        let count: usize = tensor.shape.iter().product();
        assert_eq!(tensor.dtype, PlanDType::F32);
        assert_eq!(tensor.data.len(), count * 4, "{}", tensor.name);
    }
    plan
}

#[test]
fn plans_hold_every_tensor_of_each_family() {
    let bert = check_plan(&tiny_dir(), PlanHead::Pooler, false);
    assert_eq!((bert.family.name(), bert.position_offset, bert.hidden_act()), ("bert", 0, "gelu"));
    let electra = check_plan(&root().join("tests/models/tiny-electra"), PlanHead::Classification { tanh: false }, true);
    assert_eq!(electra.family.name(), "electra");
    let xlmr = check_plan(&root().join("tests/models/tiny-xlmr"), PlanHead::Classification { tanh: true }, false);
    assert_eq!((xlmr.family.name(), xlmr.position_offset), ("xlm-roberta", 2));
    let minilm = check_plan(&minilm_dir(), PlanHead::Pooler, false);
    assert_eq!(minilm.config.num_hidden_layers, 4);
}

#[test]
fn a_quantized_plan_keeps_the_gguf_blocks() {
    let bytes = std::fs::read(root().join("models/crossrank-minilm-l4.q8_0.gguf")).unwrap();
    let model = crossrank::gguf::GgufModel::read("default.gguf", &bytes, &Device::Cpu).unwrap();
    let config = Config::from_json("config", model.config_json.as_bytes()).unwrap();
    let plan = Plan::read(&model.weights, &config).unwrap();
    let query = plan.tensors.iter().find(|tensor| tensor.name == "layers.0.query.weight").unwrap();
    assert_eq!(query.dtype, PlanDType::Q8_0);
    // 34 bytes per block of 32 values.
    assert_eq!(query.data.len(), query.shape[0] * query.shape[1] / 32 * 34);
    let word = plan.tensors.iter().find(|tensor| tensor.name == "embeddings.word").unwrap();
    assert_eq!(word.dtype, PlanDType::Q8_0);
    let norm = plan.tensors.iter().find(|tensor| tensor.name == "embeddings.norm.weight").unwrap();
    assert_eq!(norm.dtype, PlanDType::F32);
}

#[test]
fn a_plan_of_mismatched_weights_names_the_tensor() {
    let (store, mut config) = store_and_config(&tiny_dir());
    config.intermediate_size += 1;
    let error = Plan::read(&store, &config).unwrap_err();
    assert_eq!(error.code(), "weights");
    assert!(error.to_string().contains("intermediate.dense.weight") && error.to_string().contains("expected shape"), "{error}");
}

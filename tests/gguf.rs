//! The crossrank GGUF: round trip, quantisation tolerances against PyTorch, and damaged files.

mod common;

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use common::{fixture, max_abs_diff, minilm_dir, spearman, tiny_dir, Fixture};
use crossrank::gguf::{convert, ConvertInput, GgufModel, Precision, KEY_CONFIG, KEY_FORMAT_VERSION, KEY_MAX_LENGTH, KEY_TOKENIZER};
use crossrank::local::{load_hf_dir, read_hf_dir};
use crossrank::weights::QuantizedMatmul;
use crossrank::{Error, Reranker};

fn gguf_of(dir: &std::path::Path, precision: Precision) -> Vec<u8> {
    let hf = read_hf_dir(dir, &Device::Cpu).unwrap();
    let config = String::from_utf8(hf.config_json.clone()).unwrap();
    convert(&hf.weights, &ConvertInput { config_json: &config, tokenizer: &hf.tokenizer, source: "test", max_length: hf.max_length }, precision).unwrap()
}

fn fixture_logits(reranker: &Reranker, fixture: &Fixture) -> Vec<f32> {
    fixture.cases.iter().map(|case| reranker.logits(&case.query, &[case.passage.as_str()]).unwrap()[0]).collect()
}

fn expected(fixture: &Fixture) -> Vec<f32> {
    fixture.cases.iter().map(|case| case.logit).collect()
}

#[test]
fn f32_round_trip_equals_the_hf_directory() {
    for (dir, name) in [(tiny_dir(), "tiny.json"), (minilm_dir(), "minilm_l4.json")] {
        let fixture = fixture(name);
        let from_dir = fixture_logits(&load_hf_dir(&dir, &Device::Cpu).unwrap(), &fixture);
        let from_gguf = fixture_logits(&Reranker::from_gguf(&gguf_of(&dir, Precision::F32), &Device::Cpu).unwrap(), &fixture);
        let diff = max_abs_diff(&from_dir, &from_gguf);
        assert!(diff <= 1e-6, "{name}: f32 GGUF differs from the HF directory by {diff}");
    }
}

/// max |Δlogit| against PyTorch f32 on the MiniLM-L-4 fixture pairs, per precision, with the
/// weights dequantised once (`dequantised_logits`; natively the default only on CPUs without AVX2).
/// Measured here: f16 2.0e-4, Q8_0 1.2e-2, Q4_0 2.4e-1;
/// each bound is about twice the measurement. This fixture's random head reads a [CLS] vector that
/// barely varies, so its logits span only ~0.1: Q4_0's error is larger than that spread, which is
/// why ranking quality is judged on the trained model (tests/default_model.rs), not here.
const TOLERANCES: [(Precision, f32, &str); 3] = [
    // f16 keeps 11 bits of mantissa; errors of ~5e-4 per weight average out over 384-wide sums.
    (Precision::F16, 1e-3, "f16 rounding of the weights only"),
    // 8-bit codes with one f16 scale per 32 weights: ~0.4% relative error per weight, through 4 layers.
    (Precision::Q8_0, 2.5e-2, "8-bit blocks of 32, weights only"),
    // 4-bit codes: ~16x coarser steps than Q8_0, so ~16x the error.
    (Precision::Q4_0, 4e-1, "4-bit blocks of 32, weights only"),
];

#[test]
fn quantised_logits_within_the_tolerance_table() {
    let fixture = fixture("minilm_l4.json");
    let reference = expected(&fixture);
    for (precision, tolerance, why) in TOLERANCES {
        let diff = max_abs_diff(&matmul_logits(&gguf_of(&minilm_dir(), precision), QuantizedMatmul::Dequantize, &fixture), &reference);
        println!("{}: max |Δlogit| vs PyTorch = {diff:.2e} (tolerance {tolerance:.0e}: {why})", precision.name());
        assert!(diff <= tolerance, "{}: max |Δlogit| {diff} > {tolerance}", precision.name());
    }
}

/// Logits of the fixture's pairs from a GGUF file, multiplied as `matmul` says.
fn matmul_logits(bytes: &[u8], matmul: QuantizedMatmul, fixture: &Fixture) -> Vec<f32> {
    let model = GgufModel::read("model.gguf", bytes, &Device::Cpu).unwrap();
    fixture_logits(&Reranker::from_gguf_model_with(&model, matmul).unwrap(), fixture)
}

/// The int8 path's own rounding on top of the weights': activations as one 7-bit digit per value
/// with a scale and zero point per block of 32 where AVX2 or relaxed SIMD runs (issue 34: max
/// |Δlogit| ≤ 0.05 on this fixture at Q8_0; measured 0.045 on 2026-12-07), 16 bits per row on
/// the scalar kernel (measured 0.012 before issue 34, as dequantising).
const INT8_TOLERANCES: [(Precision, f32, f32); 2] = [(Precision::Q8_0, 5e-2, 6e-2), (Precision::Q4_0, 4e-1, 1e-1)];

#[test]
fn int8_matmul_within_its_tolerance() {
    let fixture = fixture("minilm_l4.json");
    let reference = expected(&fixture);
    for (precision, tolerance, vs_dequantised_tolerance) in INT8_TOLERANCES {
        let bytes = gguf_of(&minilm_dir(), precision);
        let dequantised = matmul_logits(&bytes, QuantizedMatmul::Dequantize, &fixture);
        let int8 = matmul_logits(&bytes, QuantizedMatmul::Int8, &fixture);
        let (vs_pytorch, vs_dequantised) = (max_abs_diff(&int8, &reference), max_abs_diff(&int8, &dequantised));
        println!("{} int8: max |Δlogit| vs PyTorch {vs_pytorch:.2e}, vs dequantised {vs_dequantised:.2e}", precision.name());
        assert!(vs_pytorch <= tolerance, "{}: int8 max |Δlogit| {vs_pytorch} > {tolerance}", precision.name());
        assert!(vs_dequantised <= vs_dequantised_tolerance, "{}: int8 differs from dequantised by {vs_dequantised}", precision.name());
    }
}

#[test]
fn other_families_convert_and_keep_the_order_at_q8_0() {
    for (dir, name, model_type) in [("tests/models/tiny-electra", "tiny_electra.json", "electra"), ("tests/models/tiny-xlmr", "tiny_xlmr.json", "xlm-roberta")] {
        let dir = common::root().join(dir);
        let fixture = fixture(name);
        let reference = expected(&fixture);
        let f32_gguf = gguf_of(&dir, Precision::F32);
        let model = GgufModel::read("f32.gguf", &f32_gguf, &Device::Cpu).unwrap();
        let config: serde_json::Value = serde_json::from_str(&model.config_json).unwrap();
        assert_eq!(config["model_type"], model_type, "{name}: the GGUF's config names the family");
        let from_gguf = fixture_logits(&Reranker::from_gguf_model(&model).unwrap(), &fixture);
        assert!(max_abs_diff(&from_gguf, &reference) <= 1e-4, "{name}: f32 GGUF vs PyTorch {}", max_abs_diff(&from_gguf, &reference));

        let q8 = gguf_of(&dir, Precision::Q8_0);
        for matmul in [QuantizedMatmul::Dequantize, QuantizedMatmul::Int8] {
            let model = GgufModel::read("q8_0.gguf", &q8, &Device::Cpu).unwrap();
            let got = fixture_logits(&Reranker::from_gguf_model_with(&model, matmul).unwrap(), &fixture);
            let (rho, diff) = (spearman(&got, &reference), max_abs_diff(&got, &reference));
            println!("{name} q8_0 {matmul:?}: Spearman {rho:.4}, max |Δlogit| {diff:.2e}");
            assert!(rho >= 0.99, "{name} q8_0 {matmul:?}: Spearman {rho} against PyTorch f32");
            // These random models have large weights (initializer_range 0.2), so the error is judged
            // against the spread of their logits: measured 3% (ELECTRA, 0.10 of 3.1).
            let spread = reference.iter().copied().fold(f32::MIN, f32::max) - reference.iter().copied().fold(f32::MAX, f32::min);
            // The int8 path rounds activations to 7 bits per block of 32 where AVX2 or relaxed SIMD
            // runs: on these tiny random models (large, outlying activations) that measured 0.30
            // over a spread of 3.1 for ELECTRA (0.105 before issue 34), 0.018 for XLM-R (0.0085).
            let share = if matmul == QuantizedMatmul::Int8 { 0.12 } else { 0.06 };
            assert!(diff <= share * spread, "{name} q8_0 {matmul:?}: max |Δlogit| {diff} over a spread of {spread}");
        }
    }
}

#[test]
fn sizes_of_the_minilm_l4_shape() {
    let q8 = gguf_of(&minilm_dir(), Precision::Q8_0).len();
    let q4 = gguf_of(&minilm_dir(), Precision::Q4_0).len();
    println!("MiniLM-L-4 GGUF bytes: q8_0 {q8}, q4_0 {q4}");
    assert!(q8 <= 21 << 20, "Q8_0 file is {q8} bytes");
    assert!(q4 <= 12 << 20, "Q4_0 file is {q4} bytes");
}

#[test]
fn k_quants_are_refused_with_the_reason() {
    let error = Precision::parse("q4_k").unwrap_err();
    assert_eq!(error.code(), "unsupported");
    assert!(error.to_string().contains("divisible by 256"), "{error}");
    assert_eq!(Precision::parse("q3").unwrap_err().code(), "invalid_input");
}

// ---- damaged files ---------------------------------------------------------------------------

fn load_error(bytes: &[u8]) -> Error {
    match Reranker::from_gguf(bytes, &Device::Cpu) {
        Ok(_) => panic!("a damaged GGUF loaded"),
        Err(error) => error,
    }
}

fn assert_error(error: Error, code: &str, needle: &str) {
    assert_eq!(error.code(), code, "wrong code for: {error}");
    assert!(error.to_string().contains(needle), "{error:?} does not mention {needle:?}");
}

/// Re-writes the tiny f32 GGUF with its tensors and metadata edited.
fn rewrite(edit_tensors: impl FnOnce(&mut HashMap<String, QTensor>), edit_metadata: impl FnOnce(&mut HashMap<String, Value>)) -> Vec<u8> {
    let bytes = gguf_of(&tiny_dir(), Precision::F32);
    let mut reader = Cursor::new(&bytes);
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut tensors: HashMap<String, QTensor> =
        content.tensor_infos.keys().map(|name| (name.clone(), content.tensor(&mut reader, name, &Device::Cpu).unwrap())).collect();
    let mut metadata = content.metadata;
    edit_tensors(&mut tensors);
    edit_metadata(&mut metadata);
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors).unwrap();
    out.into_inner()
}

#[test]
fn truncated_gguf() {
    let bytes = gguf_of(&tiny_dir(), Precision::F32);
    for cut in [10, 200, bytes.len() / 2, bytes.len() - 1] {
        assert_error(load_error(&bytes[..cut]), "model_format", "model.gguf");
    }
    assert_error(load_error(&[]), "model_format", "not a readable GGUF file");
}

#[test]
fn wrong_magic() {
    let mut bytes = gguf_of(&tiny_dir(), Precision::F32);
    bytes[..4].copy_from_slice(b"GGML");
    assert_error(load_error(&bytes), "model_format", "not a readable GGUF file");
    // A safetensors file handed over as a GGUF.
    let safetensors = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    assert_error(load_error(&safetensors), "model_format", "not a readable GGUF file");
}

#[test]
fn missing_tensor() {
    let bytes = rewrite(|t| drop(t.remove("bert.encoder.layer.1.intermediate.dense.weight")), |_| {});
    assert_error(load_error(&bytes), "weights", "bert.encoder.layer.1.intermediate.dense.weight");
}

#[test]
fn wrong_tensor_shape() {
    let bytes = rewrite(
        |t| {
            let wrong = Tensor::zeros((64, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
            t.insert("bert.pooler.dense.weight".into(), QTensor::quantize(&wrong, GgmlDType::F32).unwrap());
        },
        |_| {},
    );
    assert_error(load_error(&bytes), "weights", "expected shape [32, 32], found [64, 32]");
}

#[test]
fn metadata_tokenizer_that_does_not_parse() {
    let bytes = rewrite(|_| {}, |m| drop(m.insert(KEY_TOKENIZER.into(), Value::String("{\"model\": 42".into()))));
    assert_error(load_error(&bytes), "tokenizer", KEY_TOKENIZER);
}

#[test]
fn metadata_config_missing_or_broken() {
    let bytes = rewrite(|_| {}, |m| drop(m.remove(KEY_CONFIG)));
    assert_error(load_error(&bytes), "model_format", KEY_CONFIG);
    let bytes = rewrite(|_| {}, |m| drop(m.insert(KEY_CONFIG.into(), Value::String("{\"hidden_size\": 32}".into()))));
    assert_error(load_error(&bytes), "config", KEY_CONFIG);
    let bytes = rewrite(|_| {}, |m| drop(m.remove(KEY_FORMAT_VERSION)));
    assert_error(load_error(&bytes), "model_format", "not a crossrank model file");
}

#[test]
fn info_reads_back_precision_and_source() {
    let model = GgufModel::read("x.gguf", &gguf_of(&tiny_dir(), Precision::Q8_0), &Device::Cpu).unwrap();
    assert_eq!(model.precision(), "q8_0");
    assert_eq!(model.source(), "test");
}

/// The tiny model with `model_max_length` set in its tokenizer_config.json, in a temporary copy.
fn tiny_with_model_max_length(max_length: usize) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crossrank-tiny-max-length-{max_length}-{}", std::process::id()));
    common::copy_dir(&tiny_dir(), &dir);
    let path = dir.join("tokenizer_config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["model_max_length"] = serde_json::json!(max_length);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    dir
}

#[test]
fn the_trained_length_is_the_default_max_length_from_the_directory_and_the_gguf() {
    let fixture = fixture("tiny.json");
    let case = fixture.cases.iter().find(|c| c.name == "long_passage").unwrap();
    let dir = tiny_with_model_max_length(64);
    let from_dir = load_hf_dir(&dir, &Device::Cpu).unwrap();
    assert_eq!(from_dir.default_max_length(), 64);
    let gguf = gguf_of(&dir, Precision::F32);
    assert_eq!(GgufModel::read("x.gguf", &gguf, &Device::Cpu).unwrap().max_length().unwrap(), Some(64));
    let from_gguf = Reranker::from_gguf(&gguf, &Device::Cpu).unwrap();
    assert_eq!(from_gguf.default_max_length(), 64);
    // A call without max_length truncates to 64 tokens, exactly like an explicit 64, and differs from 512.
    let explicit = |reranker: &Reranker, max_length| {
        let options = crossrank::RerankOptions { max_length: Some(max_length), ..Default::default() };
        reranker.logits_with(&case.query, &[case.passage.as_str()], &options).unwrap()[0]
    };
    for reranker in [&from_dir, &from_gguf] {
        let default = reranker.logits(&case.query, &[case.passage.as_str()]).unwrap()[0];
        assert_eq!(default, explicit(reranker, 64));
        assert!((default - explicit(reranker, 512)).abs() > 1e-4, "the long passage must score differently at 512 tokens");
    }
    // Models whose files name no shorter length keep their position embeddings as the default.
    assert_eq!(load_hf_dir(&tiny_dir(), &Device::Cpu).unwrap().default_max_length(), 512);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recorded_max_length_beyond_the_positions_or_too_short_is_a_named_error() {
    let too_long = rewrite(|_| {}, |m| drop(m.insert(KEY_MAX_LENGTH.into(), Value::U32(4096))));
    assert_error(load_error(&too_long), "model_format", "crossrank.max_length`: invalid input: max_length 4096 exceeds the model's 512 position embeddings");
    let too_short = rewrite(|_| {}, |m| drop(m.insert(KEY_MAX_LENGTH.into(), Value::U32(3))));
    assert_error(load_error(&too_short), "model_format", "a default max_length of 3 is too short");
    let not_a_number = rewrite(|_| {}, |m| drop(m.insert(KEY_MAX_LENGTH.into(), Value::String("128".into()))));
    assert_error(load_error(&not_a_number), "model_format", "is not an unsigned integer");
}

/// The tiny f32 GGUF written again from (name, value) and (name, tensor) lists as given, so that
/// a test can repeat a key or a tensor.
fn write_lists(extra_metadata: Option<(&str, Value)>, repeat_tensor: Option<&str>) -> Vec<u8> {
    let bytes = gguf_of(&tiny_dir(), Precision::F32);
    let mut reader = Cursor::new(&bytes);
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let tensors: Vec<(String, QTensor)> = names.iter().map(|name| ((*name).clone(), content.tensor(&mut reader, name, &Device::Cpu).unwrap())).collect();
    let mut tensor_list: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if let Some(name) = repeat_tensor {
        let again = tensors.iter().find(|(k, _)| k == name).unwrap();
        tensor_list.push((again.0.as_str(), &again.1));
    }
    let mut metadata: Vec<(&str, &Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let extra = extra_metadata;
    if let Some((key, value)) = &extra {
        metadata.push((key, value));
    }
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_list).unwrap();
    out.into_inner()
}

/// Sets the data offset recorded for tensor `name` in a GGUF v3 file's header.
fn set_offset(bytes: &mut [u8], name: &str, offset: u64) {
    let mut pattern = (name.len() as u64).to_le_bytes().to_vec();
    pattern.extend_from_slice(name.as_bytes());
    let at = bytes.windows(pattern.len()).position(|w| w == pattern.as_slice()).unwrap() + pattern.len();
    let dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let offset_at = at + 4 + 8 * dims + 4;
    bytes[offset_at..offset_at + 8].copy_from_slice(&offset.to_le_bytes());
}

/// A file that says two things, or whose tensors share bytes, used to load with whatever candle
/// kept (the last key, the last tensor, aliased weights): each is now a named error (issue 17).
#[test]
fn ambiguous_or_overlapping_files_are_refused() {
    let duplicate_key = write_lists(Some(("crossrank.source", Value::String("again".into()))), None);
    assert_error(load_error(&duplicate_key), "model_format", "metadata key `crossrank.source` appears twice");
    let duplicate_tensor = write_lists(None, Some("classifier.bias"));
    assert_error(load_error(&duplicate_tensor), "model_format", "tensor `classifier.bias` appears twice");

    // Two tensors at the same offset (aliased), and one that starts inside another.
    let mut aliased = gguf_of(&tiny_dir(), Precision::F32);
    set_offset(&mut aliased, "bert.pooler.dense.weight", 0);
    assert_error(load_error(&aliased), "model_format", "overlap");
    let mut misaligned = gguf_of(&tiny_dir(), Precision::F32);
    set_offset(&mut misaligned, "bert.pooler.dense.weight", 4);
    assert_error(load_error(&misaligned), "model_format", "not a multiple of the alignment 32");
    // The untouched file still loads.
    Reranker::from_gguf(&gguf_of(&tiny_dir(), Precision::F32), &Device::Cpu).unwrap();
}

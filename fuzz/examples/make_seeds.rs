//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` from the real
//! files: the tiny test model (tests/models/tiny: safetensors, config, tokenizer, and its GGUF
//! made with crossrank's own converter), the pairs of tests/fixtures/tiny.json, and a micro
//! model (see `MICRO_CONFIG` in harness.rs) in every precision crossrank writes.
//!
//! `cd fuzz && cargo run --release --example make_seeds` (deterministic: same seeds every run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use crossrank::gguf::{convert, ConvertInput, Precision};
use crossrank::weights::WeightStore;
use crossrank::PairTokenizer;
use crossrank_fuzz::{
    gguf_metadata, pair_tokenizer, pytorch_loader, stored_zip_entries, Outcome, MICRO_CONFIG, MICRO_VOCAB, TINY_CONFIG, TINY_PYTORCH_BIN, TINY_SAFETENSORS,
    TINY_TOKENIZER,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Deterministic weights in [-0.5, 0.5) (a 64-bit LCG; no rand dependency).
fn values(count: usize, seed: &mut u64) -> Vec<f32> {
    (0..count)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// The micro BertForSequenceClassification's tensors, by checkpoint name.
fn micro_tensors() -> Vec<(String, Vec<usize>)> {
    let (vocab, hidden, inner, positions) = (16, 32, 32, 32);
    let mut shapes = vec![
        ("bert.embeddings.word_embeddings.weight".to_string(), vec![vocab, hidden]),
        ("bert.embeddings.position_embeddings.weight".into(), vec![positions, hidden]),
        ("bert.embeddings.token_type_embeddings.weight".into(), vec![2, hidden]),
        ("bert.embeddings.LayerNorm.weight".into(), vec![hidden]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![hidden]),
    ];
    let layer = "bert.encoder.layer.0";
    for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
        shapes.push((format!("{layer}.{name}.weight"), vec![hidden, hidden]));
        shapes.push((format!("{layer}.{name}.bias"), vec![hidden]));
    }
    for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
        shapes.push((format!("{layer}.{name}.weight"), vec![hidden]));
        shapes.push((format!("{layer}.{name}.bias"), vec![hidden]));
    }
    shapes.push((format!("{layer}.intermediate.dense.weight"), vec![inner, hidden]));
    shapes.push((format!("{layer}.intermediate.dense.bias"), vec![inner]));
    shapes.push((format!("{layer}.output.dense.weight"), vec![hidden, inner]));
    shapes.push((format!("{layer}.output.dense.bias"), vec![hidden]));
    shapes.push(("bert.pooler.dense.weight".into(), vec![hidden, hidden]));
    shapes.push(("bert.pooler.dense.bias".into(), vec![hidden]));
    shapes.push(("classifier.weight".into(), vec![1, hidden]));
    shapes.push(("classifier.bias".into(), vec![1]));
    shapes
}

fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("crossrank-fuzz-seed-{}.safetensors", std::process::id()));
    candle_core::safetensors::save(tensors, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

/// The GGUF `bytes` rewritten with `general.alignment` = `alignment` in its metadata.
fn with_alignment(bytes: &[u8], alignment: u32) -> Vec<u8> {
    let device = Device::Cpu;
    let mut reader = std::io::Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let tensors: Vec<(String, _)> =
        names.iter().map(|name| ((*name).clone(), content.tensor(&mut reader, name, &device).unwrap())).collect();
    let mut metadata: Vec<(String, gguf_file::Value)> = content.metadata.into_iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    metadata.push(("general.alignment".into(), gguf_file::Value::U32(alignment)));
    let metadata_refs: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &_)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata_refs, &tensor_refs).unwrap();
    out.into_inner()
}

fn main() {
    let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = fuzz_dir.join("corpus");
    let device = Device::Cpu;

    // Micro model: safetensors in f32, f16, bf16, and without the `bert.` prefix.
    let mut seed = 0x5eed_u64;
    let micro: HashMap<String, Tensor> = micro_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let count = shape.iter().product();
            (name, Tensor::from_vec(values(count, &mut seed), shape, &device).unwrap())
        })
        .collect();
    let micro_st = safetensors_bytes(&micro);
    let dir = corpus.join("safetensors_loader");
    write(&dir, "micro.f32.safetensors", &micro_st);
    for (name, dtype) in [("f16", DType::F16), ("bf16", DType::BF16)] {
        let cast: HashMap<String, Tensor> = micro.iter().map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap())).collect();
        write(&dir, &format!("micro.{name}.safetensors"), &safetensors_bytes(&cast));
    }
    let unprefixed: HashMap<String, Tensor> =
        micro.iter().map(|(k, v)| (k.strip_prefix("bert.").unwrap_or(k).to_string(), v.clone())).collect();
    write(&dir, "micro.noprefix.safetensors", &safetensors_bytes(&unprefixed));
    write(&dir, "tiny.safetensors", TINY_SAFETENSORS);

    // GGUFs: the micro model in every precision, one with an explicit alignment, and the tiny model.
    let dir = corpus.join("gguf_loader");
    let micro_store = WeightStore::from_safetensors("micro.safetensors", &micro_st, &device).unwrap();
    let micro_tokenizer = PairTokenizer::from_vocab_txt("vocab.txt", MICRO_VOCAB, true).unwrap();
    let input = ConvertInput { config_json: MICRO_CONFIG, tokenizer: &micro_tokenizer, source: "crossrank-fuzz/micro", max_length: None };
    for precision in [Precision::F32, Precision::F16, Precision::Q8_0, Precision::Q4_0] {
        let bytes = convert(&micro_store, &input, precision).unwrap();
        if precision == Precision::F32 {
            write(&dir, "micro.f32.align32.gguf", &with_alignment(&bytes, 32));
        }
        write(&dir, &format!("micro.{}.gguf", precision.name()), &bytes);
    }
    let tiny_store = WeightStore::from_safetensors("model.safetensors", TINY_SAFETENSORS, &device).unwrap();
    let tiny_tokenizer = PairTokenizer::from_tokenizer_json("tokenizer.json", TINY_TOKENIZER).unwrap();
    let tiny_config = std::str::from_utf8(TINY_CONFIG).unwrap();
    let input = ConvertInput { config_json: tiny_config, tokenizer: &tiny_tokenizer, source: "tests/models/tiny", max_length: None };
    write(&dir, "tiny.f32.gguf", &convert(&tiny_store, &input, Precision::F32).unwrap());

    // Config and tokenizer JSON.
    let dir = corpus.join("config_parser");
    write(&dir, "tiny.config.json", TINY_CONFIG);
    write(&dir, "micro.config.json", MICRO_CONFIG.as_bytes());
    write(&dir, "micro.tokenizer.json", micro_tokenizer.to_json().unwrap().as_bytes());
    write(&dir, "tiny.tokenizer.json", TINY_TOKENIZER);
    let minilm = fuzz_dir.join("../tests/models/minilm-l4/config.json");
    if let Ok(bytes) = std::fs::read(minilm) {
        write(&dir, "minilm-l4.config.json", &bytes);
    }

    // Pairs: every fixture case, under a few option headers (see PairInput::decode).
    let dir = corpus.join("pair_tokenizer");
    let fixtures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fuzz_dir.join("../tests/fixtures/tiny.json")).unwrap()).unwrap();
    let headers: [[u8; 4]; 5] = [
        [0, 2, 0x00, 16],  // max_length 512, defaults
        [64, 0, 0x21, 8],  // max_length 64, windows (max), overlap 8
        [12, 0, 0x32, 3],  // max_length 12, windows (mean), top_k 3
        [128, 0, 0x65, 1], // max_length 128, rrf, min-max, windows
        [0, 1, 0x88, 2],   // max_length 256, weighted fusion, first-stage scores
    ];
    let cases = fixtures["cases"].as_array().unwrap();
    let mut written = 0;
    for (index, case) in cases.iter().enumerate() {
        let query = case["query"].as_str().unwrap_or_default();
        let passage = case["passage"].as_str().unwrap_or_default();
        let header = headers[index % headers.len()];
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(query.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(passage.as_bytes());
        if index % 2 == 1 {
            bytes.push(0);
            bytes.extend_from_slice(b"Stock prices fell.");
        }
        pair_tokenizer(&bytes);
        write(&dir, &format!("fixture-{index:02}"), &bytes);
        written += 1;
    }
    // pytorch_loader: the tiny checkpoint whole (zip mode) and its pickle alone (pickle mode).
    let dir = corpus.join("pytorch_loader");
    let pickle = stored_zip_entries(TINY_PYTORCH_BIN)
        .and_then(|entries| entries.into_iter().find(|(name, _)| name.ends_with(b"/data.pkl")))
        .expect("the tiny checkpoint holds data.pkl")
        .1;
    assert!(matches!(pytorch_loader(&pickle), Outcome::Ok), "the tiny checkpoint's own pickle must load");
    write(&dir, "tiny-checkpoint.bin", TINY_PYTORCH_BIN);
    write(&dir, "tiny-data.pkl", &pickle);
    // gguf_metadata (input format: harness.rs `gguf_metadata_file`): no extra metadata, a u64
    // format_version in place of the file's own, an array of strings, a nested array, a filler array.
    let dir = corpus.join("gguf_metadata");
    let seeds: [(&str, &[u8]); 5] = [
        ("plain", &[0]),
        ("format-version-u64", &[1, 1, 10, 1, 0, 0, 0, 0, 0, 0, 0]),
        ("tokens-array", &[0, 4, 9, 8, 0, 3, 1, b'a', 2, b'b', b'c', 0]),
        ("nested-array", &[0, 0, 9, 9, 0, 2, 0, 0, 1, 5, 4, 0, 1, 7, 0, 0]),
        ("filler-array", &[0, 0, 9, 6, 2, 0, 1, 0]),
    ];
    for (name, bytes) in seeds {
        assert!(matches!(gguf_metadata(bytes), Outcome::Ok), "gguf_metadata seed {name} must load");
        write(&dir, name, bytes);
    }
    println!("seeds written under {} ({written} pair seeds)", corpus.display());
}

//! Bad input gives a named error (a stable code and a message naming the problem), never a panic.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{copy_dir, tiny_dir};
use crossrank::local::load_model;
use crossrank::{Error, RerankOptions};

fn load_error(dir: &Path) -> Error {
    match load_model(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded, but should not have", dir.display()),
        Err(error) => error,
    }
}

/// A copy of the tiny model in a fresh temporary directory, to be damaged by a test.
fn tiny_copy(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crossrank-errors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&tiny_dir(), &dir);
    dir
}

fn assert_error(error: Error, code: &str, needles: &[&str]) {
    assert_eq!(error.code(), code, "wrong code for: {error}");
    let message = error.to_string();
    for needle in needles {
        assert!(message.contains(needle), "message {message:?} does not mention {needle:?}");
    }
}

#[test]
fn missing_files() {
    assert_error(load_error(Path::new("/nonexistent/model")), "io", &["/nonexistent/model"]);
    let dir = tiny_copy("missing-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert_error(load_error(&dir), "io", &["no model.safetensors or pytorch_model.bin"]);
    let dir = tiny_copy("missing-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert_error(load_error(&dir), "io", &["config.json"]);
    let dir = tiny_copy("missing-tokenizer");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    std::fs::remove_file(dir.join("vocab.txt")).unwrap();
    assert_error(load_error(&dir), "io", &["no tokenizer.json or vocab.txt"]);
}

#[test]
fn truncated_safetensors() {
    let dir = tiny_copy("truncated");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert_error(load_error(&dir), "model_format", &["model.safetensors", "not a readable safetensors file"]);
}

/// Rewrites the tiny model's safetensors with `edit` applied to its tensors.
fn edit_tensors(dir: &Path, edit: impl FnOnce(&mut std::collections::HashMap<String, candle_core::Tensor>)) {
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, &path).unwrap();
}

#[test]
fn tensor_of_the_wrong_shape() {
    let dir = tiny_copy("wrong-shape");
    edit_tensors(&dir, |tensors| {
        tensors.insert("bert.encoder.layer.1.attention.self.key.weight".into(), candle_core::Tensor::zeros((32, 16), candle_core::DType::F32, &Device::Cpu).unwrap());
    });
    assert_error(load_error(&dir), "weights", &["bert.encoder.layer.1.attention.self.key.weight", "expected shape [32, 32], found [32, 16]"]);
}

#[test]
fn missing_tensor_and_bare_encoder() {
    let dir = tiny_copy("missing-tensor");
    edit_tensors(&dir, |tensors| {
        tensors.remove("bert.encoder.layer.0.output.dense.bias");
    });
    assert_error(load_error(&dir), "weights", &["bert.encoder.layer.0.output.dense.bias", "missing"]);
    let dir = tiny_copy("no-classifier");
    edit_tensors(&dir, |tensors| {
        tensors.remove("classifier.weight");
        tensors.remove("classifier.bias");
    });
    assert_error(load_error(&dir), "weights", &["classifier.weight", "not a cross-encoder"]);
}

#[test]
fn tensor_of_the_wrong_dtype() {
    let dir = tiny_copy("wrong-dtype");
    edit_tensors(&dir, |tensors| {
        let ids = candle_core::Tensor::zeros((32,), candle_core::DType::I64, &Device::Cpu).unwrap();
        tensors.insert("bert.encoder.layer.0.attention.self.value.bias".into(), ids);
    });
    assert_error(load_error(&dir), "weights", &["bert.encoder.layer.0.attention.self.value.bias", "expected a float tensor, found dtype I64"]);
    // The same directory fixed again loads: the error was about that tensor only.
    let good = load_model(&tiny_dir(), &Device::Cpu).unwrap();
    assert!(good.logits("q", &["d"]).unwrap()[0].is_finite());
}

#[test]
fn non_finite_weights_are_caught_at_load() {
    let dir = tiny_copy("nan");
    edit_tensors(&dir, |tensors| {
        let name = "bert.pooler.dense.weight".to_string();
        let mut values = tensors[&name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        values[5] = f32::NAN;
        tensors.insert(name, candle_core::Tensor::from_vec(values, (32, 32), &Device::Cpu).unwrap());
    });
    assert_error(load_error(&dir), "weights", &["bert.pooler.dense.weight", "non-finite"]);
}

/// Edits one JSON file of a model directory in place.
fn edit_json(dir: &Path, file: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(file);
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
}

/// The load error of a tiny model copy whose config.json was edited.
fn edit_config(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Error {
    let dir = tiny_copy(name);
    edit_json(&dir, "config.json", edit);
    load_error(&dir)
}

#[test]
fn bad_configs() {
    assert_error(
        edit_config("heads", |c| c["num_attention_heads"] = 5.into()),
        "config",
        &["config.json", "hidden_size 32 is not divisible by num_attention_heads 5"],
    );
    assert_error(edit_config("type", |c| c["model_type"] = "gpt2".into()), "config", &["unknown model_type \"gpt2\""]);
    assert_error(
        edit_config("positions", |c| c["max_position_embeddings"] = 1_000_000_000u64.into()),
        "config",
        &["max_position_embeddings = 1000000000 is out of range"],
    );
    assert_error(edit_config("labels", |c| c["num_labels"] = 2.into()), "config", &["2 labels", "exactly one logit"]);
    assert_error(edit_config("act", |c| c["hidden_act"] = "swish".into()), "config", &["not a BERT, ELECTRA or XLM-RoBERTa config", "swish"]);
    assert_error(
        edit_config("type", |c| c["model_type"] = "gpt2".into()),
        "config",
        &["crossrank runs BERT, ELECTRA and XLM-RoBERTa cross-encoders (model_type \"bert\", \"electra\", \"xlm-roberta\")"],
    );
    // BERT weights under another family's config: named by the tensor the family looks for.
    assert_error(
        edit_config("electra", |c| c["model_type"] = "electra".into()),
        "weights",
        &["electra.embeddings.word_embeddings.weight", "do not match config.json's model_type \"electra\""],
    );
    // RoBERTa positions start after the padding token, which must leave room for tokens.
    assert_error(
        edit_config("xlmr-pad", |c| {
            c["model_type"] = "xlm-roberta".into();
            c["pad_token_id"] = 600.into();
        }),
        "config",
        &["pad_token_id = 600"],
    );
}

#[test]
fn bad_calls() {
    let reranker = load_model(&tiny_dir(), &Device::Cpu).unwrap();
    let options = RerankOptions::default();
    assert_error(reranker.rerank("", &["a"], &options).unwrap_err(), "invalid_input", &["query is empty"]);
    assert_error(reranker.rerank(" \t\n", &["a"], &options).unwrap_err(), "invalid_input", &["query is empty"]);
    // No candidates: an empty ranking (the browser's answer too), but options are still checked.
    assert_eq!(reranker.rerank("q", &[], &options).unwrap(), vec![]);
    let top_zero = RerankOptions { top_k: Some(0), ..options };
    assert_error(reranker.rerank("q", &[], &top_zero).unwrap_err(), "invalid_input", &["topK"]);
    assert_error(reranker.rerank("q", &["a"], &top_zero).unwrap_err(), "invalid_input", &["topK"]);
    let too_long = RerankOptions { max_length: Some(513), ..options };
    assert_error(reranker.rerank("q", &["a"], &too_long).unwrap_err(), "invalid_input", &["maxLength 513 exceeds"]);
    let too_short = RerankOptions { max_length: Some(2), ..options };
    assert_error(reranker.rerank("q", &["a"], &too_short).unwrap_err(), "invalid_input", &["maxLength 2"]);
    // After all of that the same reranker still scores.
    assert_eq!(reranker.rerank("q", &["a", "", "\u{0}", "\u{fffd}"], &options).unwrap().len(), 4);
}

/// The load error of a tiny model copy whose tokenizer.json was edited.
fn edit_tokenizer(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Error {
    let dir = tiny_copy(name);
    edit_json(&dir, "tokenizer.json", edit);
    load_error(&dir)
}

/// Models that used to load and then score wrongly (issue 17): each is a named error at load.
#[test]
fn silent_mismatches_are_refused_at_load() {
    // No post-processor: pairs without [CLS]/[SEP].
    assert_error(
        edit_tokenizer("no-post-processor", |t| t["post_processor"] = serde_json::Value::Null),
        "tokenizer",
        &["tokenizer.json", "has no post_processor"],
    );
    // A BPE tokenizer for a BERT model (the WordPiece vocabulary, no merges).
    assert_error(
        edit_tokenizer("bpe", |t| {
            let vocab = t["model"]["vocab"].clone();
            t["model"] = serde_json::json!({ "type": "BPE", "vocab": vocab, "merges": [], "unk_token": "[UNK]" });
        }),
        "tokenizer",
        &["is a BPE tokenizer, but a model_type \"bert\" model reads WordPiece tokens"],
    );
    // A special token whose id is past the embedding table.
    assert_error(
        edit_tokenizer("cls-99999", |t| t["post_processor"]["cls"] = serde_json::json!(["[CLS]", 99999])),
        "tokenizer",
        &["produces token id 99999, past the model's 3000-row embedding table"],
    );
    // Type ids past the token type table: a one-row table (config and weights agree) under a
    // tokenizer that gives the passage type 1.
    let dir = tiny_copy("one-type");
    edit_tensors(&dir, |tensors| {
        let name = "bert.embeddings.token_type_embeddings.weight".to_string();
        let one_row = tensors[&name].narrow(0, 0, 1).unwrap().contiguous().unwrap();
        tensors.insert(name, one_row);
    });
    edit_json(&dir, "config.json", |c| c["type_vocab_size"] = 1.into());
    assert_error(load_error(&dir), "tokenizer", &["produces token type 1, but the model has type_vocab_size = 1"]);
    // An epsilon that flattens every LayerNorm.
    assert_error(edit_config("eps", |c| c["layer_norm_eps"] = 1e30.into()), "config", &["layer_norm_eps = 1000000000000000000000000000000 is out of range"]);
    // Weights for more layers than the config has.
    assert_error(
        edit_config("fewer-layers", |c| c["num_hidden_layers"] = 1.into()),
        "weights",
        &["bert.encoder.layer.1.", "num_hidden_layers = 1: the checkpoint and its config do not match"],
    );
}

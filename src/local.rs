//! Native-only loading from the filesystem (the CLI and tests): a Hugging Face model directory.
//! The library proper works on bytes; this module only finds and reads the files.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{Error, Result};
use crate::rerank::{Reranker, TokenizerSource};
use crate::weights::{StoredTensor, WeightStore};

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|name| dir.join(name)).find(|path| path.is_file())
}

/// Loads a Hugging Face cross-encoder directory: `config.json`, `model.safetensors` (or
/// `pytorch_model.bin`), and `tokenizer.json` (or `vocab.txt` with `tokenizer_config.json`).
pub fn load_hf_dir(dir: &Path, device: &Device) -> Result<Reranker> {
    if !dir.is_dir() {
        return Err(Error::Io { file: dir.display().to_string(), message: "not a directory".into() });
    }
    let config_path = dir.join("config.json");
    let config = read(&config_path)?;
    let weights = load_weights(dir, device)?;
    let tokenizer_json;
    let vocab_text;
    let tokenizer = if let Some(path) = find(dir, &["tokenizer.json"]) {
        tokenizer_json = read(&path)?;
        TokenizerSource::Json(&tokenizer_json)
    } else if let Some(path) = find(dir, &["vocab.txt"]) {
        vocab_text = String::from_utf8(read(&path)?)
            .map_err(|_| Error::tokenizer(&path.display().to_string(), "vocab.txt is not UTF-8"))?;
        TokenizerSource::VocabTxt { text: &vocab_text, lowercase: lowercase_from_tokenizer_config(dir)? }
    } else {
        return Err(Error::Io {
            file: dir.display().to_string(),
            message: "no tokenizer.json or vocab.txt in the model directory".into(),
        });
    };
    Reranker::from_parts(&config, &weights, tokenizer).map_err(|e| name_files(e, dir))
}

/// The weight file of a model directory, parsed.
pub fn load_weights(dir: &Path, device: &Device) -> Result<WeightStore> {
    if let Some(path) = find(dir, &["model.safetensors"]) {
        let file = path.display().to_string();
        WeightStore::from_safetensors(&file, &read(&path)?, device)
    } else if let Some(path) = find(dir, &["pytorch_model.bin"]) {
        let file = path.display().to_string();
        let tensors = candle_core::pickle::read_all(&path)
            .map_err(|e| Error::format(&file, format!("not a readable PyTorch checkpoint ({e})")))?;
        let tensors = tensors
            .into_iter()
            .map(|(name, tensor)| Ok((name, StoredTensor::Float(tensor.to_device(device)?))))
            .collect::<Result<_>>()?;
        Ok(WeightStore::new(file, tensors, device))
    } else {
        Err(Error::Io {
            file: dir.display().to_string(),
            message: "no model.safetensors or pytorch_model.bin in the model directory".into(),
        })
    }
}

/// `do_lower_case` from `tokenizer_config.json`; BERT's default (true) when the file is absent.
fn lowercase_from_tokenizer_config(dir: &Path) -> Result<bool> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(true);
    }
    let file = path.display().to_string();
    let value: serde_json::Value =
        serde_json::from_slice(&read(&path)?).map_err(|e| Error::tokenizer(&file, format!("not JSON ({e})")))?;
    Ok(value.get("do_lower_case").and_then(|v| v.as_bool()).unwrap_or(true))
}

/// The byte-level constructors name files by their role; here we know the real path.
fn name_files(error: Error, dir: &Path) -> Error {
    let with_dir = |file: String| if file.contains('/') { file } else { dir.join(file).display().to_string() };
    match error {
        Error::Config { file, message } => Error::Config { file: with_dir(file), message },
        Error::Tokenizer { file, message } => Error::Tokenizer { file: with_dir(file), message },
        other => other,
    }
}

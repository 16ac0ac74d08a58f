//! Native-only loading from the filesystem (the CLI and tests): a Hugging Face model directory or
//! a crossrank GGUF file. The library proper works on bytes; this module only finds and reads files.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{Error, Result};
use crate::gguf::GgufModel;
use crate::rerank::Reranker;
use crate::tokenize::{PairTokenizer, TokenizerSource};
use crate::weights::{StoredTensor, WeightStore};

pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|name| dir.join(name)).find(|path| path.is_file())
}

/// A Hugging Face cross-encoder directory, read and parsed but not yet built into a model.
pub struct HfDir {
    pub config_json: Vec<u8>,
    pub weights: WeightStore,
    pub tokenizer: PairTokenizer,
    /// `tokenizer_config.json`'s `model_max_length` when it is below the position embeddings:
    /// the length sentence-transformers truncates to by default, so crossrank does too.
    pub max_length: Option<usize>,
}

impl HfDir {
    /// Reads `config.json`, `model.safetensors` (or `pytorch_model.bin`), and `tokenizer.json`
    /// (or `vocab.txt` with `tokenizer_config.json`'s `do_lower_case`).
    pub fn read(dir: &Path, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Io { file: dir.display().to_string(), message: "not a directory".into() });
        }
        let config_json = read(&dir.join("config.json"))?;
        let weights = read_weights(dir, device)?;
        let tokenizer_config = read_tokenizer_config(dir)?;
        let tokenizer = read_tokenizer(dir, tokenizer_config.as_ref())?;
        let positions = config_positions(&config_json);
        let max_length = tokenizer_config
            .as_ref()
            .and_then(|config| config.get("model_max_length"))
            // transformers writes a huge float for "no limit": only an integer below the positions counts
            .and_then(|value| value.as_u64())
            .map(|n| n as usize)
            .filter(|&n| positions.is_some_and(|p| n < p));
        Ok(Self { config_json, weights, tokenizer, max_length })
    }

    pub fn into_reranker(self, dir: &Path) -> Result<Reranker> {
        let reranker = Reranker::from_parts(&self.config_json, &self.weights, self.tokenizer).map_err(|e| name_config(e, dir))?;
        match self.max_length {
            Some(max_length) => reranker.with_default_max_length(max_length),
            None => Ok(reranker),
        }
    }
}

/// Loads a model from a Hugging Face directory or a crossrank `.gguf` file.
pub fn load_model(path: &Path, device: &Device) -> Result<Reranker> {
    if path.is_dir() {
        return load_hf_dir(path, device);
    }
    let bytes = read(path)?;
    Reranker::from_gguf_model(&GgufModel::read(&path.display().to_string(), &bytes, device)?)
}

pub fn load_hf_dir(dir: &Path, device: &Device) -> Result<Reranker> {
    HfDir::read(dir, device)?.into_reranker(dir)
}

fn read_weights(dir: &Path, device: &Device) -> Result<WeightStore> {
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
        Err(Error::Io { file: dir.display().to_string(), message: "no model.safetensors or pytorch_model.bin in the model directory".into() })
    }
}

fn read_tokenizer(dir: &Path, tokenizer_config: Option<&serde_json::Value>) -> Result<PairTokenizer> {
    if let Some(path) = find(dir, &["tokenizer.json"]) {
        return PairTokenizer::from_tokenizer_json(&path.display().to_string(), &read(&path)?);
    }
    if let Some(path) = find(dir, &["vocab.txt"]) {
        let file = path.display().to_string();
        let text = String::from_utf8(read(&path)?).map_err(|_| Error::tokenizer(&file, "vocab.txt is not UTF-8"))?;
        // `do_lower_case`; BERT's default (true) when tokenizer_config.json is absent.
        let lowercase = tokenizer_config.and_then(|config| config.get("do_lower_case")).and_then(|v| v.as_bool()).unwrap_or(true);
        return PairTokenizer::from_source(TokenizerSource::VocabTxt { text: &text, lowercase });
    }
    Err(Error::Io { file: dir.display().to_string(), message: "no tokenizer.json or vocab.txt in the model directory".into() })
}

/// `tokenizer_config.json`, parsed, when the directory has one.
fn read_tokenizer_config(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let file = path.display().to_string();
    serde_json::from_slice(&read(&path)?).map(Some).map_err(|e| Error::tokenizer(&file, format!("not JSON ({e})")))
}

/// `max_position_embeddings` of a config.json, if it parses (the full check comes later).
fn config_positions(config_json: &[u8]) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    value.get("max_position_embeddings")?.as_u64().map(|n| n as usize)
}

/// The byte-level constructor calls it `config.json`; here we know the real path.
fn name_config(error: Error, dir: &Path) -> Error {
    match error {
        Error::Config { file, message } if file == "config.json" => Error::Config { file: dir.join(file).display().to_string(), message },
        other => other,
    }
}

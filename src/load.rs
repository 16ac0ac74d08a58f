//! Every way to build a [`Reranker`]: from a Hugging Face folder's parts or bytes, and from a
//! crossrank GGUF file. One home, so that the format modules (gguf.rs, weights.rs, hf.rs) stay
//! formats and each source of a model is checked the same way (config, tokenizer, recorded
//! max_length): every constructor below ends in [`Reranker::build`]. Reading files from disk is
//! src/local.rs's job (native only); the browser passes bytes (src/wasm.rs).

use candle_core::Device;

use crate::error::{Error, Result};
use crate::gguf::{GgufModel, KEY_CONFIG, KEY_MAX_LENGTH, KEY_TOKENIZER};
use crate::hf::{self, HfDir};
use crate::model::{Config, CrossEncoder};
use crate::rerank::Reranker;
use crate::tokenize::{PairTokenizer, TokenizerSource};
use crate::weights::{QuantizedMatmul, WeightStore};

impl Reranker {
    /// From the parts of a Hugging Face model directory: `config.json`, parsed weights, tokenizer.
    pub fn from_parts(config_json: &[u8], weights: &WeightStore, tokenizer: PairTokenizer) -> Result<Self> {
        Self::build(hf::CONFIG_JSON, config_json, weights, QuantizedMatmul::for_device(weights.device()), || Ok(tokenizer))
    }

    /// From the bytes of `config.json`, `model.safetensors` and the tokenizer.
    pub fn from_safetensors(config_json: &[u8], safetensors: &[u8], tokenizer: TokenizerSource<'_>, device: &Device) -> Result<Self> {
        let weights = WeightStore::from_safetensors(hf::SAFETENSORS, safetensors, device)?;
        Self::from_parts(config_json, &weights, PairTokenizer::from_source(tokenizer)?)
    }

    /// From a Hugging Face folder read by [`crate::local::read_hf_dir`] (the CLI's `--model DIR`;
    /// the browser converts instead), with the folder's default max_length and its files' names.
    pub fn from_hf_dir(dir: HfDir) -> Result<Self> {
        let matmul = QuantizedMatmul::for_device(dir.weights.device());
        let reranker = Self::build(&dir.config_file, &dir.config_json, &dir.weights, matmul, || Ok(dir.tokenizer))?;
        match dir.max_length {
            Some(max_length) => reranker.with_default_max_length(max_length),
            None => Ok(reranker),
        }
    }

    /// From a crossrank GGUF file held in memory.
    pub fn from_gguf(bytes: &[u8], device: &Device) -> Result<Self> {
        Self::from_gguf_model(&GgufModel::read("model.gguf", bytes, device)?)
    }

    /// From a read GGUF file, multiplying its quantised weights the device's default way
    /// ([`QuantizedMatmul::for_device`]).
    pub fn from_gguf_model(model: &GgufModel) -> Result<Self> {
        Self::from_gguf_model_with(model, QuantizedMatmul::for_device(model.weights.device()))
    }

    /// From a read GGUF file, multiplying its quantised weights as `matmul` says (the browser's
    /// `matmul` option, the tests that compare the paths).
    pub fn from_gguf_model_with(model: &GgufModel, matmul: QuantizedMatmul) -> Result<Self> {
        let file = model.weights.file();
        let tokenizer = || PairTokenizer::from_tokenizer_json(&format!("{file} ({KEY_TOKENIZER})"), model.tokenizer_json.as_bytes());
        let reranker = Self::build(&format!("{file} ({KEY_CONFIG})"), model.config_json.as_bytes(), &model.weights, matmul, tokenizer)?;
        match model.max_length()? {
            Some(max_length) => reranker.with_default_max_length(max_length).map_err(|e| {
                Error::format(file, format!("metadata `{KEY_MAX_LENGTH}`: {e}"))
            }),
            None => Ok(reranker),
        }
    }

    /// The one constructor every source ends in: `config_json` parsed and checked (named
    /// `config_file` in errors: a path, a URL or a GGUF key, never a bare "config.json" to be
    /// renamed later), then the tokenizer made (a GGUF's is parsed only once its config is good),
    /// the model built from `weights` with `matmul`, and the tokenizer checked against it.
    fn build(
        config_file: &str,
        config_json: &[u8],
        weights: &WeightStore,
        matmul: QuantizedMatmul,
        tokenizer: impl FnOnce() -> Result<PairTokenizer>,
    ) -> Result<Self> {
        let config = Config::from_json(config_file, config_json)?;
        let tokenizer = tokenizer()?;
        Self::new(CrossEncoder::load(weights, &config, matmul)?, tokenizer)
    }
}

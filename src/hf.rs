//! A Hugging Face model folder held in memory: the files a Hub repository serves (`config.json`,
//! the weights, `tokenizer.json` or `vocab.txt`, `tokenizer_config.json`). Parsed here once for the
//! CLI (src/local.rs reads the files from disk) and for the browser (the worker fetches them), so
//! that both build the same model and `convert` to the same GGUF bytes.

use crate::error::{Error, Result};
use crate::gguf::{self, ConvertInput, Precision};
use crate::model::Config;
use crate::tokenize::{PairTokenizer, TokenizerSource};
use crate::weights::WeightStore;

// The files crossrank reads from a folder, named once for every reader: src/local.rs (disk), the
// CLI's `convert` (through it) and the browser's `convertHf` (src/wasm.rs). The npm package fetches
// the same names from www/src/contract.js, which tests/contract.rs generates from `FILE_NAMES`.
pub const CONFIG_JSON: &str = "config.json";
pub const SAFETENSORS: &str = "model.safetensors";
/// Read natively only: candle's pickle reader needs a file on disk.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub const PYTORCH_BIN: &str = "pytorch_model.bin";
pub const TOKENIZER_JSON: &str = "tokenizer.json";
pub const VOCAB_TXT: &str = "vocab.txt";
pub const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";

/// Every name above by its const's name: what tests/contract.rs writes into www/src/contract.js.
pub const FILE_NAMES: [(&str, &str); 6] = [
    ("CONFIG_JSON", CONFIG_JSON),
    ("SAFETENSORS", SAFETENSORS),
    ("PYTORCH_BIN", PYTORCH_BIN),
    ("TOKENIZER_JSON", TOKENIZER_JSON),
    ("VOCAB_TXT", VOCAB_TXT),
    ("TOKENIZER_CONFIG_JSON", TOKENIZER_CONFIG_JSON),
];

/// The tokenizer files a folder may have; `tokenizer.json` wins over `vocab.txt`.
#[derive(Default, Clone, Copy)]
pub struct TokenizerFiles<'a> {
    pub tokenizer_json: Option<&'a [u8]>,
    pub vocab_txt: Option<&'a [u8]>,
    pub tokenizer_config_json: Option<&'a [u8]>,
}

/// A Hugging Face cross-encoder folder, read and parsed but not yet built into a model.
pub struct HfDir {
    pub config_json: Vec<u8>,
    /// How errors name `config.json`: its path on disk, its URL in the browser.
    pub config_file: String,
    pub weights: WeightStore,
    pub tokenizer: PairTokenizer,
    /// `tokenizer_config.json`'s `model_max_length` when it is below the position embeddings:
    /// the length sentence-transformers truncates to by default, so crossrank does too.
    pub max_length: Option<usize>,
}

impl HfDir {
    /// `name(file)` is how errors name a file of the folder: a path on disk, a URL in the browser.
    pub fn from_files(config_json: Vec<u8>, weights: WeightStore, tokenizer: TokenizerFiles<'_>, name: impl Fn(&str) -> String) -> Result<Self> {
        let tokenizer_config: Option<serde_json::Value> = tokenizer
            .tokenizer_config_json
            .map(|bytes| serde_json::from_slice(bytes).map_err(|e| Error::tokenizer(&name(TOKENIZER_CONFIG_JSON), format!("not JSON ({e})"))))
            .transpose()?;
        let pair_tokenizer = if let Some(bytes) = tokenizer.tokenizer_json {
            PairTokenizer::from_tokenizer_json(&name(TOKENIZER_JSON), bytes)?
        } else if let Some(bytes) = tokenizer.vocab_txt {
            let file = name(VOCAB_TXT);
            let text = std::str::from_utf8(bytes).map_err(|_| Error::tokenizer(&file, "vocab.txt is not UTF-8"))?;
            // `do_lower_case`; BERT's default (true) when tokenizer_config.json is absent.
            let lowercase =
                tokenizer_config.as_ref().and_then(|config| config.get("do_lower_case")).and_then(|v| v.as_bool()).unwrap_or(true);
            PairTokenizer::from_source(TokenizerSource::VocabTxt { text, lowercase })?
        } else {
            return Err(Error::Io { file: name(""), message: "no tokenizer.json or vocab.txt in the model folder".into() });
        };
        let positions = config_positions(&config_json);
        let max_length = tokenizer_config
            .as_ref()
            .and_then(|config| config.get("model_max_length"))
            // transformers writes a huge float for "no limit": only an integer below the positions counts
            .and_then(|value| value.as_u64())
            .map(|n| n as usize)
            .filter(|&n| positions.is_some_and(|p| n < p));
        Ok(Self { config_json, config_file: name(CONFIG_JSON), weights, tokenizer: pair_tokenizer, max_length })
    }

    /// The crossrank GGUF of this folder (`crossrank convert`, the browser's `convertHf`);
    /// `max_length` overrides the folder's.
    pub fn convert(&self, source: &str, max_length: Option<usize>, precision: Precision) -> Result<Vec<u8>> {
        let config_json = std::str::from_utf8(&self.config_json).map_err(|_| Error::config(&self.config_file, "not UTF-8"))?;
        let config = Config::from_json(&self.config_file, self.config_json.as_slice())?;
        let input = ConvertInput { config_json, tokenizer: &self.tokenizer, source, max_length: max_length.or(self.max_length) };
        gguf::convert_config(&self.weights, &config, &input, precision)
    }
}

/// `max_position_embeddings` of a config.json, if it parses (the full check comes later).
fn config_positions(config_json: &[u8]) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    value.get("max_position_embeddings")?.as_u64().map(|n| n as usize)
}

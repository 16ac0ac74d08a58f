//! The public entry point: a [`Reranker`] built from model bytes (never from paths, so the same
//! code runs in wasm), scoring a query against candidate documents and ordering them.

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Config, CrossEncoder};
use crate::tokenize::{EncodedPair, PairTokenizer, TokenizerSource};
use crate::weights::WeightStore;

/// How many pairs go through the model at once: bounds peak memory (activations grow with
/// batch × length²) while keeping matrix products large enough to be efficient.
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// Options of [`Reranker::rerank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RerankOptions {
    /// Keep only the best `top_k` documents (all when `None`).
    pub top_k: Option<usize>,
    /// Tokens per (query, document) pair; defaults to the model's `max_position_embeddings`.
    pub max_length: Option<usize>,
    /// Pairs per forward pass.
    pub batch_size: usize,
}

impl Default for RerankOptions {
    fn default() -> Self {
        Self { top_k: None, max_length: None, batch_size: DEFAULT_BATCH_SIZE }
    }
}

/// One document's place in the new order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankedDocument {
    /// Position of the document in the caller's input.
    pub index: usize,
    /// The cross-encoder's raw output (sentence-transformers' score with `activation_fn=Identity`).
    pub logit: f32,
    /// `sigmoid(logit)`, in (0, 1): sentence-transformers' default score for a one-label model.
    pub score: f32,
}

pub struct Reranker {
    model: CrossEncoder,
    tokenizer: PairTokenizer,
}

impl Reranker {
    /// From the parts of a Hugging Face model directory: `config.json`, parsed weights, tokenizer.
    pub fn from_parts(config_json: &[u8], weights: &WeightStore, tokenizer: PairTokenizer) -> Result<Self> {
        let config = Config::from_json("config.json", config_json)?;
        Self::new(CrossEncoder::load(weights, &config)?, tokenizer)
    }

    /// From the bytes of `config.json`, `model.safetensors` and the tokenizer.
    pub fn from_safetensors(config_json: &[u8], safetensors: &[u8], tokenizer: TokenizerSource<'_>, device: &Device) -> Result<Self> {
        let weights = WeightStore::from_safetensors("model.safetensors", safetensors, device)?;
        Self::from_parts(config_json, &weights, PairTokenizer::from_source(tokenizer)?)
    }

    pub(crate) fn new(model: CrossEncoder, tokenizer: PairTokenizer) -> Result<Self> {
        let vocab_size = model.config().vocab_size;
        if tokenizer.vocab_size() > vocab_size {
            return Err(Error::Tokenizer {
                file: "tokenizer".into(),
                message: format!(
                    "the tokenizer has {} tokens but the model's embedding table only {vocab_size}: they do not belong together",
                    tokenizer.vocab_size()
                ),
            });
        }
        Ok(Self { model, tokenizer })
    }

    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// The longest pair the model accepts, and the default `max_length`.
    pub fn max_positions(&self) -> usize {
        self.model.config().max_position_embeddings
    }

    /// Token ids of each (query, document) pair exactly as they enter the model.
    pub fn encode(&self, query: &str, documents: &[&str], max_length: Option<usize>) -> Result<Vec<EncodedPair>> {
        let max_length = self.check_max_length(max_length)?;
        self.tokenizer.encode_pairs(query, documents, max_length)
    }

    /// Raw logits, one per document, in input order.
    pub fn logits(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>> {
        self.logits_with(query, documents, &RerankOptions::default())
    }

    /// Raw logits with explicit `max_length` and `batch_size` (`top_k` is ignored).
    pub fn logits_with(&self, query: &str, documents: &[&str], options: &RerankOptions) -> Result<Vec<f32>> {
        if query.trim().is_empty() {
            return Err(Error::invalid("the query is empty"));
        }
        if documents.is_empty() {
            return Err(Error::invalid("no documents to score"));
        }
        if options.batch_size == 0 {
            return Err(Error::invalid("batch_size must be at least 1"));
        }
        let pairs = self.encode(query, documents, options.max_length)?;
        self.score_encoded(&pairs, options.batch_size)
    }

    /// Scores already-encoded pairs. Pairs are grouped by length (longest first) so that each
    /// batch is padded only to its own longest pair, then logits are put back in input order.
    pub fn score_encoded(&self, pairs: &[EncodedPair], batch_size: usize) -> Result<Vec<f32>> {
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by_key(|&index| std::cmp::Reverse(pairs[index].input_ids.len()));
        let mut logits = vec![0.0f32; pairs.len()];
        let device = self.model.device();
        for chunk in order.chunks(batch_size.max(1)) {
            let batch = self.tokenizer.pad(&chunk.iter().map(|&index| &pairs[index]).collect::<Vec<_>>());
            let shape = (batch.rows, batch.seq_len);
            let input_ids = Tensor::from_vec(batch.input_ids, shape, device)?;
            let token_type_ids = Tensor::from_vec(batch.token_type_ids, shape, device)?;
            let attention_mask = Tensor::from_vec(batch.attention_mask, shape, device)?;
            let batch_logits = self.model.forward(&input_ids, &token_type_ids, &attention_mask)?.to_vec1::<f32>()?;
            for (&index, logit) in chunk.iter().zip(batch_logits) {
                if !logit.is_finite() {
                    return Err(Error::Compute(format!("the model produced a non-finite logit ({logit}) for document {index}")));
                }
                logits[index] = logit;
            }
        }
        Ok(logits)
    }

    /// Scores every document against `query` and returns them best first (ties keep input order),
    /// cut to `top_k`.
    pub fn rerank(&self, query: &str, documents: &[&str], options: &RerankOptions) -> Result<Vec<RankedDocument>> {
        if options.top_k == Some(0) {
            return Err(Error::invalid("top_k must be at least 1"));
        }
        let logits = self.logits_with(query, documents, options)?;
        Ok(rank(&logits, options.top_k))
    }

    fn check_max_length(&self, max_length: Option<usize>) -> Result<usize> {
        let positions = self.max_positions();
        match max_length {
            None => Ok(positions),
            Some(length) if length > positions => Err(Error::invalid(format!(
                "max_length {length} exceeds the model's {positions} position embeddings"
            ))),
            Some(length) => Ok(length),
        }
    }
}

/// Orders logits best first, stably, and keeps the first `top_k`.
pub fn rank(logits: &[f32], top_k: Option<usize>) -> Vec<RankedDocument> {
    let mut ranked: Vec<RankedDocument> =
        logits.iter().enumerate().map(|(index, &logit)| RankedDocument { index, logit, score: sigmoid(logit) }).collect();
    // Sorting on the logit, not the score: sigmoid saturates to 1.0 and would make distinct logits tie.
    ranked.sort_by(|a, b| b.logit.total_cmp(&a.logit));
    if let Some(k) = top_k {
        ranked.truncate(k);
    }
    ranked
}

pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

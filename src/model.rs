//! `BertForSequenceClassification` as a cross-encoder: BERT encoder, tanh pooler on [CLS], one logit.
//!
//! One struct per PyTorch module, each with `load` and `forward`, mirroring
//! <https://github.com/huggingface/transformers/blob/main/src/transformers/models/bert/modeling_bert.py>.
//! Every linear layer is a [`Linear`], so the same code holds f32 or quantised weights.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::weights::{StoredTensor, WeightStore, Weights};

/// Sizes beyond these are rejected before anything is allocated: no real BERT comes near them.
const MAX_VOCAB_SIZE: usize = 1 << 20;
const MAX_HIDDEN_SIZE: usize = 8192;
const MAX_LAYERS: usize = 128;
const MAX_POSITIONS: usize = 1 << 14;
const MAX_TYPE_VOCAB: usize = 16;

/// The activation inside the feed-forward block (`hidden_act` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// `gelu` in transformers is the exact, erf-based GELU.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
    Relu,
}

/// The fields of a Hugging Face BERT `config.json` that shape the computation.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: HiddenAct,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub num_labels: Option<usize>,
    #[serde(default)]
    pub id2label: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl Config {
    /// Parses and validates `config.json`; `file` names it in errors.
    pub fn from_json(file: &str, bytes: &[u8]) -> Result<Self> {
        let config: Config = serde_json::from_slice(bytes).map_err(|e| Error::config(file, format!("not a BERT config: {e}")))?;
        config.validate(file)?;
        Ok(config)
    }

    /// How many outputs the classifier has: `num_labels`, else `id2label`'s size, else transformers' default of 2.
    pub fn num_labels(&self) -> usize {
        self.num_labels.or_else(|| self.id2label.as_ref().map(|labels| labels.len())).unwrap_or(2)
    }

    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    fn validate(&self, file: &str) -> Result<()> {
        match self.model_type.as_deref() {
            Some("bert") | None => {}
            Some(other) => {
                return Err(Error::config(file, format!("unknown model_type \"{other}\": crossrank runs BERT cross-encoders (model_type \"bert\")")))
            }
        }
        if let Some(kind) = self.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(Error::config(file, format!("position_embedding_type \"{kind}\" is not supported (only \"absolute\")")));
            }
        }
        let limits = [
            ("vocab_size", self.vocab_size, MAX_VOCAB_SIZE),
            ("hidden_size", self.hidden_size, MAX_HIDDEN_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HIDDEN_SIZE),
            ("intermediate_size", self.intermediate_size, 8 * MAX_HIDDEN_SIZE),
            ("max_position_embeddings", self.max_position_embeddings, MAX_POSITIONS),
            ("type_vocab_size", self.type_vocab_size, MAX_TYPE_VOCAB),
        ];
        for (name, value, max) in limits {
            if value == 0 || value > max {
                return Err(Error::config(file, format!("{name} = {value} is out of range (1..={max})")));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(Error::config(
                file,
                format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(Error::config(file, format!("layer_norm_eps = {} must be a positive number", self.layer_norm_eps)));
        }
        if self.num_labels() != 1 {
            return Err(Error::config(
                file,
                format!("the classifier has {} labels; a cross-encoder scores with exactly one logit (num_labels = 1)", self.num_labels()),
            ));
        }
        Ok(())
    }
}

/// A LayerNorm over the last dimension (names `weight`/`bias`, or the older `gamma`/`beta`).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(weights: &Weights, size: usize, eps: f64) -> Result<Self> {
        let legacy = !weights.store().contains(&weights.join("weight")) && weights.store().contains(&weights.join("gamma"));
        let (weight_name, bias_name) = if legacy { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(Self { weight: weights.tensor(weight_name, &[size])?, bias: weights.tensor(bias_name, &[size])?, eps: eps as f32 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)?)
    }
}

/// An embedding table; the word table may stay quantised and is then read row by row.
enum EmbeddingTable {
    Float(Tensor),
    Quantized(Arc<QTensor>),
}

impl EmbeddingTable {
    fn load(weights: &Weights, rows: usize, width: usize) -> Result<Self> {
        let (_, stored) = weights.stored("weight", &[rows, width])?;
        match stored {
            StoredTensor::Quantized(qtensor) if qtensor.dtype() != candle_core::quantized::GgmlDType::F32 => {
                // Check for NaN/Inf (by the block scales where the type allows, else by
                // dequantising once); the quantised table itself is what we keep.
                let (name, _) = weights.stored("weight", &[rows, width])?;
                if !crate::int8::check_block_scales(weights.store().file(), &name, qtensor)? {
                    weights.tensor("weight", &[rows, width])?;
                }
                Ok(EmbeddingTable::Quantized(qtensor.clone()))
            }
            _ => Ok(EmbeddingTable::Float(weights.tensor("weight", &[rows, width])?)),
        }
    }

    /// `ids`: `(batch, seq)` u32 → `(batch, seq, width)`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            EmbeddingTable::Float(table) => {
                let (batch, seq) = ids.dims2()?;
                let rows = table.index_select(&ids.flatten_all()?, 0)?;
                Ok(rows.reshape((batch, seq, table.dim(1)?))?)
            }
            EmbeddingTable::Quantized(qtensor) => Ok(qtensor.embedding(ids)?),
        }
    }
}

/// `BertEmbeddings`: word + absolute position + token type, then LayerNorm.
struct Embeddings {
    word_embeddings: EmbeddingTable,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    layer_norm: LayerNorm,
}

impl Embeddings {
    fn load(weights: &Weights, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        Ok(Self {
            word_embeddings: EmbeddingTable::load(&weights.pp("word_embeddings"), config.vocab_size, hidden)?,
            position_embeddings: weights.pp("position_embeddings").tensor("weight", &[config.max_position_embeddings, hidden])?,
            token_type_embeddings: weights.pp("token_type_embeddings").tensor("weight", &[config.type_vocab_size, hidden])?,
            layer_norm: LayerNorm::load(&weights.pp("LayerNorm"), hidden, config.layer_norm_eps)?,
        })
    }

    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor) -> Result<Tensor> {
        let (batch, seq) = input_ids.dims2()?;
        let words = self.word_embeddings.forward(input_ids)?;
        let types = self.token_type_embeddings.index_select(&token_type_ids.flatten_all()?, 0)?.reshape(words.shape())?;
        let positions = self.position_embeddings.narrow(0, 0, seq)?.unsqueeze(0)?;
        let summed = words.add(&types)?.broadcast_add(&positions)?;
        debug_assert_eq!(summed.dims3()?, (batch, seq, self.position_embeddings.dim(1)?));
        self.layer_norm.forward(&summed)
    }
}

/// At most this many attention scores (f32) exist at once per copy: 1 Mi = 4 MiB, e.g. 4 heads
/// of one 512-token pair or all 12 heads of 5 pairs of 128 tokens.
pub const ATTENTION_ELEMENTS_PER_STEP: usize = 1 << 20;

/// `BertSelfAttention` + `BertSelfOutput`: multi-head attention, projection, residual LayerNorm.
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    num_heads: usize,
    head_size: usize,
}

impl Attention {
    fn load(weights: &Weights, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        let self_weights = weights.pp("self");
        let output_weights = weights.pp("output");
        Ok(Self {
            query: Linear::load(&self_weights.pp("query"), hidden, hidden)?,
            key: Linear::load(&self_weights.pp("key"), hidden, hidden)?,
            value: Linear::load(&self_weights.pp("value"), hidden, hidden)?,
            output: Linear::load(&output_weights.pp("dense"), hidden, hidden)?,
            layer_norm: LayerNorm::load(&output_weights.pp("LayerNorm"), hidden, config.layer_norm_eps)?,
            num_heads: config.num_attention_heads,
            head_size: config.head_size(),
        })
    }

    /// `hidden`: `(batch, seq, hidden)`; `mask_bias`: `(batch, 1, 1, seq)`, 0 for tokens and a large
    /// negative number for padding (`None`: no padding). With `cls_only`, only the first position attends (its keys and
    /// values still come from every token) and the output is `(batch, 1, hidden)`.
    fn forward(&self, hidden: &Tensor, mask_bias: Option<&Tensor>, cls_only: bool) -> Result<Tensor> {
        let (batch, seq, width) = hidden.dims3()?;
        let split_heads = |x: Tensor, rows: usize| -> Result<Tensor> {
            Ok(x.reshape((batch, rows, self.num_heads, self.head_size))?.transpose(1, 2)?.contiguous()?)
        };
        let (queries_from, rows) = if cls_only { (hidden.narrow(1, 0, 1)?, 1) } else { (hidden.clone(), seq) };
        // Scaling the queries (rows × width) is cheaper than scaling the scores (heads × rows × seq).
        let scale = 1.0 / (self.head_size as f64).sqrt();
        let query = split_heads((self.query.forward(&queries_from)? * scale)?, rows)?;
        let key = split_heads(self.key.forward(hidden)?, seq)?;
        let value = split_heads(self.value.forward(hidden)?, seq)?;
        // Heads in groups, so that one group's scores (batch × heads × rows × seq) stay within
        // ATTENTION_ELEMENTS_PER_STEP whatever the pair length or head count: peak memory is
        // then bounded by the budget, not by the square of the length. Heads are independent,
        // so grouping does not change any value.
        let per_head = batch.saturating_mul(rows).saturating_mul(seq).max(1);
        let group = (ATTENTION_ELEMENTS_PER_STEP / per_head).clamp(1, self.num_heads);
        let attend = |query: &Tensor, key: &Tensor, value: &Tensor| -> Result<Tensor> {
            let mut scores = query.matmul(&key.t()?)?;
            if let Some(mask_bias) = mask_bias {
                scores = scores.broadcast_add(mask_bias)?;
            }
            let probabilities = crate::activations::softmax_last_dim(&scores)?;
            Ok(probabilities.matmul(value)?)
        };
        let context = if group >= self.num_heads {
            attend(&query, &key, &value)?
        } else {
            let mut parts = Vec::with_capacity(self.num_heads.div_ceil(group));
            for start in (0..self.num_heads).step_by(group) {
                let n = group.min(self.num_heads - start);
                let take = |x: &Tensor| -> Result<Tensor> { Ok(x.narrow(1, start, n)?.contiguous()?) };
                parts.push(attend(&take(&query)?, &take(&key)?, &take(&value)?)?);
            }
            Tensor::cat(&parts, 1)?
        };
        let context = context.transpose(1, 2)?.reshape((batch, rows, width))?;
        let projected = self.output.forward(&context)?;
        self.layer_norm.forward(&projected.add(&queries_from)?)
    }
}

/// `BertIntermediate` + `BertOutput`: the feed-forward block with its residual LayerNorm.
struct FeedForward {
    intermediate: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    activation: HiddenAct,
}

impl FeedForward {
    fn load(weights: &Weights, config: &Config) -> Result<Self> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        Ok(Self {
            intermediate: Linear::load(&weights.pp("intermediate").pp("dense"), hidden, inner)?,
            output: Linear::load(&weights.pp("output").pp("dense"), inner, hidden)?,
            layer_norm: LayerNorm::load(&weights.pp("output").pp("LayerNorm"), hidden, config.layer_norm_eps)?,
            activation: config.hidden_act,
        })
    }

    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let inner = self.intermediate.forward(hidden)?;
        let inner = match self.activation {
            HiddenAct::Gelu => crate::activations::gelu_erf(&inner)?,
            HiddenAct::GeluNew => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        let projected = self.output.forward(&inner)?;
        self.layer_norm.forward(&projected.add(hidden)?)
    }
}

/// `BertLayer`.
struct Layer {
    attention: Attention,
    feed_forward: FeedForward,
}

impl Layer {
    fn load(weights: &Weights, config: &Config) -> Result<Self> {
        Ok(Self { attention: Attention::load(&weights.pp("attention"), config)?, feed_forward: FeedForward::load(weights, config)? })
    }

    fn forward(&self, hidden: &Tensor, mask_bias: Option<&Tensor>, cls_only: bool) -> Result<Tensor> {
        let attended = self.attention.forward(hidden, mask_bias, cls_only)?;
        self.feed_forward.forward(&attended)
    }
}

/// `BertPooler`: dense + tanh on the first ([CLS]) token.
struct Pooler {
    dense: Linear,
}

impl Pooler {
    fn load(weights: &Weights, config: &Config) -> Result<Self> {
        Ok(Self { dense: Linear::load(&weights.pp("dense"), config.hidden_size, config.hidden_size)? })
    }

    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.dense.forward(&cls)?.tanh()?)
    }
}

/// Where the BERT weights sit in a checkpoint: under `bert.` (as `BertForSequenceClassification`
/// saves them) or at the top level (some exports strip the prefix). Decided from the names present,
/// never guessed per tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightPrefix {
    Bert,
    None,
}

impl WeightPrefix {
    pub fn detect(store: &WeightStore) -> Result<Self> {
        const PROBE: &str = "embeddings.word_embeddings.weight";
        let with_prefix = store.contains(&format!("bert.{PROBE}"));
        let without_prefix = store.contains(PROBE);
        match (with_prefix, without_prefix) {
            (true, false) => Ok(WeightPrefix::Bert),
            (false, true) => Ok(WeightPrefix::None),
            (true, true) => Err(Error::weights(store.file(), PROBE, "found both with and without the `bert.` prefix; the checkpoint is ambiguous")),
            (false, false) => Err(Error::weights(
                store.file(),
                &format!("bert.{PROBE}"),
                "missing (looked for it with and without the `bert.` prefix): not a BERT checkpoint",
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            WeightPrefix::Bert => "bert",
            WeightPrefix::None => "",
        }
    }
}

/// The whole cross-encoder: `BertForSequenceClassification` with one label.
pub struct CrossEncoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Pooler,
    classifier: Linear,
    config: Config,
    device: Device,
}

impl CrossEncoder {
    pub fn load(store: &WeightStore, config: &Config) -> Result<Self> {
        let prefix = WeightPrefix::detect(store)?;
        let bert = store.root(prefix.as_str());
        let embeddings = Embeddings::load(&bert.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| Layer::load(&bert.pp("encoder").pp("layer").pp(index), config))
            .collect::<Result<Vec<_>>>()?;
        let pooler = Pooler::load(&bert.pp("pooler"), config)?;
        // The classifier sits beside `bert`, at the top level, whatever the prefix.
        let classifier_weights = store.root("").pp("classifier");
        if !store.contains(&classifier_weights.join("weight")) {
            return Err(Error::weights(
                store.file(),
                "classifier.weight",
                "missing: this looks like a bare BertModel, not a cross-encoder (BertForSequenceClassification)",
            ));
        }
        let classifier = Linear::load(&classifier_weights, config.hidden_size, 1)?;
        Ok(Self { embeddings, layers, pooler, classifier, config: config.clone(), device: store.device().clone() })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Raw logits `(batch,)` for a padded batch: `input_ids`, `token_type_ids` u32 and
    /// `attention_mask` (1 for tokens, 0 for padding) f32, all `(batch, seq)`; `None` when no pair
    /// is padded (length-sorted batches often are not), which skips the mask addition.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let (batch, seq) = input_ids.dims2()?;
        // transformers adds dtype-min to masked scores; any large negative gives the same exact zeros.
        let mask_bias = match attention_mask {
            Some(mask) => Some(((mask.to_dtype(DType::F32)? - 1.0)? * f32::MAX as f64)?.reshape((batch, 1, 1, seq))?),
            None => None,
        };
        let mask_bias = mask_bias.as_ref();
        let mut hidden = self.embeddings.forward(input_ids, token_type_ids)?;
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            // Only [CLS] reaches the pooler, so the last layer computes its row alone: same logits,
            // a quarter less work for a 4-layer model.
            hidden = layer.forward(&hidden, mask_bias, index == last)?;
        }
        let pooled = self.pooler.forward(&hidden)?;
        let logits = self.classifier.forward(&pooled)?;
        Ok(logits.squeeze(D::Minus1)?)
    }
}

//! The pieces every family shares: BERT's embeddings (word + position + token type, LayerNorm)
//! and its encoder layer (self-attention and feed-forward, each with a residual LayerNorm).
//! ELECTRA and XLM-RoBERTa use exactly this layer; they differ only in how embeddings are sized and
//! positioned and in the head (see the family modules).

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::Tensor;

use super::{Config, HiddenAct};
use crate::error::Result;
use crate::linear::Linear;
use crate::weights::{StoredTensor, Weights};

/// A LayerNorm over the last dimension (names `weight`/`bias`, or the older `gamma`/`beta`).
pub(super) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
    /// The checkpoint path (`….LayerNorm`), for errors.
    name: String,
}

impl LayerNorm {
    pub(super) fn load(weights: &Weights, size: usize, eps: f64) -> Result<Self> {
        let legacy = !weights.store().contains(&weights.join("weight")) && weights.store().contains(&weights.join("gamma"));
        let (weight_name, bias_name) = if legacy { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(Self {
            weight: weights.tensor(weight_name, &[size])?,
            bias: weights.tensor(bias_name, &[size])?,
            eps: eps as f32,
            name: weights.join("").trim_end_matches('.').to_string(),
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        // The variance is summed in f32: past this bound its squares overflow and the output is
        // silently the bias alone (and inf or NaN would reach the next layer).
        let width = x.dim(candle_core::D::Minus1)?.max(1);
        let limit = (f32::MAX / width as f32).sqrt() / 2.0;
        crate::activations::check_activations(&x, limit, || format!("the input of `{}`", self.name))?;
        Ok(candle_nn::ops::layer_norm(&x, &self.weight, &self.bias, self.eps)?)
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

/// `BertEmbeddings`: word + absolute position + token type, then LayerNorm, `width` wide (ELECTRA's
/// `embedding_size` may be smaller than the hidden size). Positions start at `position_offset`
/// (RoBERTa counts from `padding_idx + 1`; the padding it gives `padding_idx` is masked anyway).
pub(super) struct Embeddings {
    word_embeddings: EmbeddingTable,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    layer_norm: LayerNorm,
    position_offset: usize,
}

impl Embeddings {
    pub(super) fn load(weights: &Weights, config: &Config, width: usize) -> Result<Self> {
        Ok(Self {
            word_embeddings: EmbeddingTable::load(&weights.pp("word_embeddings"), config.vocab_size, width)?,
            position_embeddings: weights.pp("position_embeddings").tensor("weight", &[config.max_position_embeddings, width])?,
            token_type_embeddings: weights.pp("token_type_embeddings").tensor("weight", &[config.type_vocab_size, width])?,
            layer_norm: LayerNorm::load(&weights.pp("LayerNorm"), width, config.layer_norm_eps)?,
            position_offset: config.family().position_offset(config),
        })
    }

    pub(super) fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor) -> Result<Tensor> {
        let (batch, seq) = input_ids.dims2()?;
        let words = self.word_embeddings.forward(input_ids)?;
        let types = self.token_type_embeddings.index_select(&token_type_ids.flatten_all()?, 0)?.reshape(words.shape())?;
        let positions = self.position_embeddings.narrow(0, self.position_offset, seq)?.unsqueeze(0)?;
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
        let queries_from = if cls_only { hidden.narrow(1, 0, 1)? } else { hidden.clone() };
        // Scaling the queries (rows × width) is cheaper than scaling the scores (heads × rows × seq).
        let scale = 1.0 / (self.head_size as f64).sqrt();
        // One input, quantised once on the int8 path (the query too, unless only [CLS] asks).
        let (query, key, value) = if cls_only {
            let [key, value] = Linear::forward_shared([&self.key, &self.value], hidden)?;
            (self.query.forward(&queries_from)?, key, value)
        } else {
            let [query, key, value] = Linear::forward_shared([&self.query, &self.key, &self.value], hidden)?;
            (query, key, value)
        };
        // A quantised model's attention runs on the int8 kernel too, where there is one (the
        // relaxed-SIMD build, x86-64 with AVX2): head by head in this layout, scaling as it goes.
        let context = if self.query.is_int8() && crate::int8::attention::available() && crate::int8::attention::supports(self.head_size) {
            let context = crate::int8::attention::attend(&query, &key, &value, mask_bias, self.num_heads, scale as f32)?;
            // Freed before the projection allocates, so that its buffers can take their place.
            drop((query, key, value));
            context
        } else {
            self.attend_f32((query * scale)?, key, value, mask_bias)?
        };
        let projected = self.output.forward(&context)?;
        self.layer_norm.forward(&projected.add(&queries_from)?)
    }

    /// `softmax(Q Kᵀ + mask) V` in f32 for `query` `(batch, rows, width)` (scaled) and `key`,
    /// `value` `(batch, seq, width)`: the context `(batch, rows, width)`.
    fn attend_f32(&self, query: Tensor, key: Tensor, value: Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
        let (batch, rows, width) = query.dims3()?;
        let seq = key.dim(1)?;
        let split_heads = |x: Tensor, rows: usize| -> Result<Tensor> {
            Ok(x.reshape((batch, rows, self.num_heads, self.head_size))?.transpose(1, 2)?.contiguous()?)
        };
        let (query, key, value) = (split_heads(query, rows)?, split_heads(key, seq)?, split_heads(value, seq)?);
        // Heads in groups, so that one group's scores (batch × heads × rows × seq) stay within
        // ATTENTION_ELEMENTS_PER_STEP whatever the pair length or head count: peak memory is
        // then bounded by the budget, not by the square of the length. Heads are independent,
        // so grouping does not change any value.
        let per_head = batch.saturating_mul(rows).saturating_mul(seq).max(1);
        let group = (ATTENTION_ELEMENTS_PER_STEP / per_head).clamp(1, self.num_heads);
        let attend = |query: &Tensor, key: &Tensor, value: &Tensor| -> Result<Tensor> {
            let scores = query.matmul(&key.t()?)?;
            let probabilities = crate::activations::masked_softmax(&scores, mask_bias)?;
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
        Ok(context.transpose(1, 2)?.reshape((batch, rows, width))?)
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

/// `BertLayer` (also ELECTRA's and XLM-RoBERTa's).
pub(super) struct Layer {
    attention: Attention,
    feed_forward: FeedForward,
}

impl Layer {
    pub(super) fn load(weights: &Weights, config: &Config) -> Result<Self> {
        Ok(Self { attention: Attention::load(&weights.pp("attention"), config)?, feed_forward: FeedForward::load(weights, config)? })
    }

    /// Whether its linear layers run on the int8 kernels (a quantised model, `matmul: "int8"`).
    pub(super) fn runs_int8(&self) -> bool {
        self.attention.query.is_int8()
    }

    pub(super) fn forward(&self, hidden: &Tensor, mask_bias: Option<&Tensor>, cls_only: bool) -> Result<Tensor> {
        let attended = self.attention.forward(hidden, mask_bias, cls_only)?;
        self.feed_forward.forward(&attended)
    }
}

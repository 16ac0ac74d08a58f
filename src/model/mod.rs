//! A cross-encoder: one of the families below read from `config.json`, as transformers' `*ForSequenceClassification`
//! with one label. The encoder layer is BERT's in every family ([`layers`]); each family module
//! says how its embeddings are sized and positioned and which head turns [CLS] into the logit.
//!
//! One struct per PyTorch module, each with `load` and `forward`, mirroring transformers'
//! `modeling_bert.py`, `modeling_electra.py` and `modeling_xlm_roberta.py`. Every linear layer is a
//! [`Linear`], so the same code holds f32 or quantised weights.

mod bert;
mod electra;
mod layers;
pub mod plan;
mod xlm_roberta;

use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::weights::{QuantizedMatmul, WeightStore, Weights};
use layers::{Embeddings, Layer};

pub use layers::ATTENTION_ELEMENTS_PER_STEP;

/// Sizes beyond these are rejected before anything is allocated: no real BERT comes near them.
const MAX_VOCAB_SIZE: usize = 1 << 20;
const MAX_HIDDEN_SIZE: usize = 8192;
const MAX_LAYERS: usize = 128;
const MAX_POSITIONS: usize = 1 << 14;
const MAX_TYPE_VOCAB: usize = 16;
const MAX_LAYER_NORM_EPS: f64 = 1e-2;

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

/// The architectures crossrank runs, told apart by `config.json`'s `model_type` (or, without
/// one, its `architectures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `BertForSequenceClassification`: ms-marco-MiniLM, TinyBERT, crossrank's own models.
    Bert,
    /// `ElectraForSequenceClassification`: ms-marco-electra-base.
    Electra,
    /// `XLMRobertaForSequenceClassification` (and RoBERTa's): bge-reranker-base, bge-reranker-v2-m3.
    XlmRoberta,
}

impl Family {
    /// The `model_type` a config of this family has.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Electra => "electra",
            Family::XlmRoberta => "xlm-roberta",
        }
    }

    /// Where the encoder's weights sit in a `*ForSequenceClassification` checkpoint.
    fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Electra => "electra",
            Family::XlmRoberta => "roberta",
        }
    }

    /// The first position id: RoBERTa counts from `padding_idx + 1`.
    fn position_offset(self, config: &Config) -> usize {
        match self {
            Family::XlmRoberta => config.pad_token_id.unwrap_or(1) + 1,
            _ => 0,
        }
    }
}

/// The fields of a Hugging Face `config.json` that shape the computation.
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
    /// ELECTRA: the embeddings' width when it differs from `hidden_size` (then projected up).
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// RoBERTa: the padding token, from which position ids are counted.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
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
        let config: Config = serde_json::from_slice(bytes).map_err(|e| Error::config(file, format!("not a BERT, ELECTRA or XLM-RoBERTa config: {e}")))?;
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

    /// The family (checked by `from_json`, so never an unknown one here).
    pub fn family(&self) -> Family {
        self.try_family().unwrap_or(Family::Bert)
    }

    fn try_family(&self) -> std::result::Result<Family, String> {
        match self.model_type.as_deref() {
            Some("bert") => Ok(Family::Bert),
            Some("electra") => Ok(Family::Electra),
            Some("xlm-roberta" | "roberta") => Ok(Family::XlmRoberta),
            Some(other) => Err(format!(
                "unknown model_type \"{other}\": crossrank runs BERT, ELECTRA and XLM-RoBERTa cross-encoders (model_type \"bert\", \"electra\", \"xlm-roberta\")"
            )),
            None => {
                let architectures = self.architectures.as_deref().unwrap_or_default();
                let named = |prefix: &str| architectures.iter().any(|name| name.starts_with(prefix));
                Ok(if named("Electra") {
                    Family::Electra
                } else if named("XLMRoberta") || named("Roberta") {
                    Family::XlmRoberta
                } else {
                    Family::Bert
                })
            }
        }
    }

    /// The width of the embeddings (ELECTRA's `embedding_size`, else the hidden size).
    pub fn embedding_width(&self) -> usize {
        match self.family() {
            Family::Electra => self.embedding_size.unwrap_or(self.hidden_size),
            _ => self.hidden_size,
        }
    }

    /// The longest pair the model accepts: its position embeddings, less RoBERTa's offset
    /// (xlm-roberta-base's 514 positions hold 512 tokens).
    pub fn max_positions(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.family().position_offset(self))
    }

    fn validate(&self, file: &str) -> Result<()> {
        let family = self.try_family().map_err(|message| Error::config(file, message))?;
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
        if family == Family::Electra {
            let width = self.embedding_width();
            if width == 0 || width > MAX_HIDDEN_SIZE {
                return Err(Error::config(file, format!("embedding_size = {width} is out of range (1..={MAX_HIDDEN_SIZE})")));
            }
        }
        if family == Family::XlmRoberta {
            let offset = family.position_offset(self);
            if self.pad_token_id.unwrap_or(1) >= self.vocab_size || offset >= self.max_position_embeddings {
                return Err(Error::config(
                    file,
                    format!(
                        "pad_token_id = {} must be a token (vocab_size {}) below max_position_embeddings {} - 1",
                        self.pad_token_id.unwrap_or(1),
                        self.vocab_size,
                        self.max_position_embeddings
                    ),
                ));
            }
        }
        // Real models use 1e-12 … 1e-5; an epsilon near the activations' variance silently flattens
        // every LayerNorm (1e30 gave the same logit for every pair).
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0 && self.layer_norm_eps <= MAX_LAYER_NORM_EPS) {
            return Err(Error::config(
                file,
                format!("layer_norm_eps = {} is out of range (a positive number up to {MAX_LAYER_NORM_EPS})", self.layer_norm_eps),
            ));
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

/// Where the encoder's weights sit: under the family's prefix (`bert.`, `electra.`, `roberta.`, as
/// the `*ForSequenceClassification` classes save them) or at the top level (some exports strip
/// it). Decided from the names present, never guessed per tensor.
fn encoder_root<'a>(top: &Weights<'a>, family: Family) -> Result<Weights<'a>> {
    const PROBE: &str = "embeddings.word_embeddings.weight";
    let store = top.store();
    let prefix = family.prefix();
    let with_prefix = store.contains(&format!("{prefix}.{PROBE}"));
    let without_prefix = store.contains(PROBE);
    match (with_prefix, without_prefix) {
        (true, false) => Ok(top.pp(prefix)),
        (false, true) => Ok(top.clone()),
        (true, true) => Err(Error::weights(
            store.file(),
            PROBE,
            format!("found both with and without the `{prefix}.` prefix; the checkpoint is ambiguous"),
        )),
        (false, false) => Err(Error::weights(
            store.file(),
            &format!("{prefix}.{PROBE}"),
            format!(
                "missing (looked for it with and without the `{prefix}.` prefix): these weights do not match config.json's model_type \"{}\"",
                family.name()
            ),
        )),
    }
}

/// Weights of a layer past `num_hidden_layers` mean the config and the checkpoint disagree (a
/// 6-layer checkpoint with a 4-layer config would otherwise load and score, wrongly).
fn check_no_extra_layers(store: &WeightStore, config: &Config) -> Result<()> {
    for name in store.names() {
        let Some((_, after)) = name.split_once("encoder.layer.") else { continue };
        let layer = after.split('.').next().and_then(|index| index.parse::<usize>().ok());
        if let Some(layer) = layer.filter(|&layer| layer >= config.num_hidden_layers) {
            return Err(Error::weights(
                store.file(),
                name,
                format!(
                    "is a weight of layer {layer}, but config.json has num_hidden_layers = {}: the checkpoint and its config do not match",
                    config.num_hidden_layers
                ),
            ));
        }
    }
    Ok(())
}

/// The encoder layers, written once for every family.
fn encoder_layers(root: &Weights, config: &Config) -> Result<Vec<Layer>> {
    (0..config.num_hidden_layers).map(|index| Layer::load(&root.pp("encoder").pp("layer").pp(index), config)).collect()
}

/// The top-level `classifier` module, with a clear error when a checkpoint has none (a bare
/// encoder, not a cross-encoder).
fn classifier<'a>(top: &Weights<'a>, probe: &str, class: &str) -> Result<Weights<'a>> {
    let store = top.store();
    let weights = top.pp("classifier");
    if !store.contains(&weights.join(probe)) {
        return Err(Error::weights(
            store.file(),
            &weights.join(probe),
            format!("missing: this looks like a bare encoder, not a cross-encoder ({class})"),
        ));
    }
    Ok(weights)
}

/// What turns the last hidden state's [CLS] row into the logit.
enum Head {
    /// BERT: `pooler.dense` + tanh, then `classifier`.
    Pooler { dense: Linear, classifier: Linear },
    /// ELECTRA (GELU) and RoBERTa (tanh): `classifier.dense`, the activation, `classifier.out_proj`.
    Classification { dense: Linear, tanh: bool, out_proj: Linear },
}

impl Head {
    /// `hidden`: `(batch, seq, hidden)` (only row 0 is read) → `(batch, 1)`.
    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        match self {
            Head::Pooler { dense, classifier } => classifier.forward(&dense.forward(&cls)?.tanh()?),
            Head::Classification { dense, tanh, out_proj } => {
                let x = dense.forward(&cls)?;
                let x = if *tanh { x.tanh()? } else { crate::activations::gelu_erf(&x)? };
                out_proj.forward(&x)
            }
        }
    }
}

/// The whole cross-encoder: a `*ForSequenceClassification` with one label.
pub struct CrossEncoder {
    embeddings: Embeddings,
    /// ELECTRA's `embeddings_project`, when its embeddings are narrower than the hidden size.
    project: Option<Linear>,
    layers: Vec<Layer>,
    head: Head,
    config: Config,
    device: Device,
}

impl CrossEncoder {
    /// Builds the model from `store`, its linear layers multiplying quantised weights as `matmul`
    /// says (f32 weights ignore it).
    pub fn load(store: &WeightStore, config: &Config, matmul: QuantizedMatmul) -> Result<Self> {
        let family = config.family();
        let top = store.root(matmul);
        let root = encoder_root(&top, family)?;
        check_no_extra_layers(store, config)?;
        let embeddings = Embeddings::load(&root.pp("embeddings"), config, config.embedding_width())?;
        let layers = encoder_layers(&root, config)?;
        let (project, head) = match family {
            Family::Bert => (None, bert::head(&top, &root, config)?),
            Family::Electra => electra::load(&top, &root, config)?,
            Family::XlmRoberta => (None, xlm_roberta::head(&top, config)?),
        };
        Ok(Self { embeddings, project, layers, head, config: config.clone(), device: store.device().clone() })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether its linear layers run on the int8 kernels (all or none of them do).
    pub fn runs_int8(&self) -> bool {
        self.layers.first().is_some_and(Layer::runs_int8)
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
        if let Some(project) = &self.project {
            hidden = project.forward(&hidden)?;
        }
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            // Only [CLS] reaches the head, so the last layer computes its row alone: same logits,
            // a quarter less work for a 4-layer model.
            hidden = layer.forward(&hidden, mask_bias, index == last)?;
        }
        let logits = self.head.forward(&hidden)?;
        Ok(logits.squeeze(D::Minus1)?)
    }
}

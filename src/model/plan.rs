//! The model as data, for an encoder written elsewhere (the browser's WebGPU shaders): its sizes,
//! what differs by family (embedding width and projection, position offset, head), and every
//! tensor under one canonical, family-independent name. It is read from the checkpoint with the
//! same family rules and tensor names as [`super::CrossEncoder::load`] and checked the same way
//! (shapes, no tensor left over), so the two backends run one description of the model.
//!
//! Quantised tensors keep their GGUF blocks (Q8_0, Q4_0: the shader dequantises them); every
//! other tensor is f32.

use candle_core::quantized::GgmlDType;

use super::{check_no_extra_layers, classifier, encoder_root, Config, Family, HiddenAct};
use crate::error::{Error, Result};
use crate::weights::{StoredTensor, WeightStore, Weights};

/// How a tensor's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanDType {
    /// Little-endian f32.
    F32,
    /// GGUF Q8_0 blocks along the last dimension: an f16 scale, then 32 i8.
    Q8_0,
    /// GGUF Q4_0 blocks: an f16 scale, then 16 bytes of nibbles (value = nibble − 8).
    Q4_0,
}

impl PlanDType {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
        }
    }
}

/// One tensor of the plan.
#[derive(Debug, Clone)]
pub struct PlanTensor {
    /// The canonical name (`layers.0.query.weight`), see the contract in `www/src/webgpu/`.
    pub name: String,
    /// The name in the checkpoint it came from, for errors and tests.
    pub source: String,
    pub dtype: PlanDType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// What turns row 0 of the last hidden state into the logit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanHead {
    /// BERT: `tanh(head.dense(cls))`, then `head.out`.
    Pooler,
    /// ELECTRA (exact GELU) and RoBERTa (tanh): `head.dense`, the activation, `head.out`.
    Classification { tanh: bool },
}

/// The whole model for another encoder.
#[derive(Debug, Clone)]
pub struct Plan {
    pub family: Family,
    pub config: Config,
    pub position_offset: usize,
    pub head: PlanHead,
    pub tensors: Vec<PlanTensor>,
}

impl Plan {
    /// Reads the plan of the cross-encoder `config` describes from `store`.
    pub fn read(store: &WeightStore, config: &Config) -> Result<Self> {
        let family = config.family();
        let top = store.root(Default::default());
        let root = encoder_root(&top, family)?;
        check_no_extra_layers(store, config)?;
        let (width, hidden, inner) = (config.embedding_width(), config.hidden_size, config.intermediate_size);
        let mut tensors = Vec::new();
        let mut take = |name: String, weights: &Weights, field: &str, shape: &[usize]| -> Result<()> {
            tensors.push(plan_tensor(name, weights, field, shape)?);
            Ok(())
        };

        let embeddings = root.pp("embeddings");
        take("embeddings.word".into(), &embeddings.pp("word_embeddings"), "weight", &[config.vocab_size, width])?;
        take("embeddings.position".into(), &embeddings.pp("position_embeddings"), "weight", &[config.max_position_embeddings, width])?;
        take("embeddings.tokenType".into(), &embeddings.pp("token_type_embeddings"), "weight", &[config.type_vocab_size, width])?;
        layer_norm(&mut take, "embeddings.norm", &embeddings.pp("LayerNorm"), width)?;
        if family == Family::Electra && width != hidden {
            linear(&mut take, "embeddings.project", &root.pp("embeddings_project"), width, hidden)?;
        }

        for index in 0..config.num_hidden_layers {
            let layer = root.pp("encoder").pp("layer").pp(index);
            let name = |part: &str| format!("layers.{index}.{part}");
            let attention = layer.pp("attention");
            for part in ["query", "key", "value"] {
                linear(&mut take, &name(part), &attention.pp("self").pp(part), hidden, hidden)?;
            }
            linear(&mut take, &name("attentionOutput"), &attention.pp("output").pp("dense"), hidden, hidden)?;
            layer_norm(&mut take, &name("attentionNorm"), &attention.pp("output").pp("LayerNorm"), hidden)?;
            linear(&mut take, &name("intermediate"), &layer.pp("intermediate").pp("dense"), hidden, inner)?;
            linear(&mut take, &name("output"), &layer.pp("output").pp("dense"), inner, hidden)?;
            layer_norm(&mut take, &name("outputNorm"), &layer.pp("output").pp("LayerNorm"), hidden)?;
        }

        let head = match family {
            Family::Bert => {
                linear(&mut take, "head.dense", &root.pp("pooler").pp("dense"), hidden, hidden)?;
                let weights = classifier(&top, "weight", "BertForSequenceClassification")?;
                linear(&mut take, "head.out", &weights, hidden, 1)?;
                PlanHead::Pooler
            }
            Family::Electra | Family::XlmRoberta => {
                let class = if family == Family::Electra { "ElectraForSequenceClassification" } else { "XLMRobertaForSequenceClassification" };
                let weights = classifier(&top, "dense.weight", class)?;
                linear(&mut take, "head.dense", &weights.pp("dense"), hidden, hidden)?;
                linear(&mut take, "head.out", &weights.pp("out_proj"), hidden, 1)?;
                // transformers' ElectraClassificationHead uses the exact GELU whatever `hidden_act` says.
                PlanHead::Classification { tanh: family == Family::XlmRoberta }
            }
        };
        Ok(Self { family, config: config.clone(), position_offset: family.position_offset(config), head, tensors })
    }

    /// The feed-forward activation's name as the contract spells it.
    pub fn hidden_act(&self) -> &'static str {
        match self.config.hidden_act {
            HiddenAct::Gelu => "gelu",
            HiddenAct::GeluNew => "gelu_new",
            HiddenAct::Relu => "relu",
        }
    }
}

type Take<'t> = dyn FnMut(String, &Weights, &str, &[usize]) -> Result<()> + 't;

fn linear(take: &mut Take, name: &str, weights: &Weights, in_features: usize, out_features: usize) -> Result<()> {
    take(format!("{name}.weight"), weights, "weight", &[out_features, in_features])?;
    take(format!("{name}.bias"), weights, "bias", &[out_features])
}

/// A LayerNorm's `weight`/`bias` (or the older `gamma`/`beta`, as [`super::layers`] reads them).
fn layer_norm(take: &mut Take, name: &str, weights: &Weights, size: usize) -> Result<()> {
    let legacy = !weights.store().contains(&weights.join("weight")) && weights.store().contains(&weights.join("gamma"));
    let (weight, bias) = if legacy { ("gamma", "beta") } else { ("weight", "bias") };
    take(format!("{name}.weight"), weights, weight, &[size])?;
    take(format!("{name}.bias"), weights, bias, &[size])
}

/// One tensor, checked for shape (and, dequantised or f32, for finite values) as the CPU loader does.
fn plan_tensor(name: String, weights: &Weights, field: &str, shape: &[usize]) -> Result<PlanTensor> {
    let (source, stored) = weights.stored(field, shape)?;
    let file = weights.store().file();
    let quantized = match stored {
        StoredTensor::Quantized(qtensor) => match qtensor.dtype() {
            GgmlDType::Q8_0 => Some((PlanDType::Q8_0, qtensor)),
            GgmlDType::Q4_0 => Some((PlanDType::Q4_0, qtensor)),
            _ => None,
        },
        StoredTensor::Float(_) => None,
    };
    let (dtype, data) = match quantized {
        Some((dtype, qtensor)) => {
            // The blocks travel as they are; a NaN or infinite block scale is refused here, as the
            // int8 loader refuses it (otherwise the dequantised check below runs).
            if !crate::int8::check_block_scales(file, &source, qtensor)? {
                weights.tensor(field, shape)?;
            }
            let data = qtensor.data().map_err(|e| Error::weights(file, &source, e.to_string()))?.into_owned();
            (dtype, data)
        }
        None => {
            let values = weights.tensor(field, shape)?.flatten_all()?.to_vec1::<f32>()?;
            (PlanDType::F32, values.iter().flat_map(|value| value.to_le_bytes()).collect())
        }
    };
    Ok(PlanTensor { name, source, dtype, shape: shape.to_vec(), data })
}

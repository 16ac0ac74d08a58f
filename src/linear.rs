//! A dense layer `y = x Wᵀ + b` whose weight is either f32 or quantised (GGUF blocks), so that one
//! model definition serves every precision. candle's `QMatMul` has no bias and wants contiguous
//! input; both are handled here, once.

use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Module, Tensor};

use crate::activations::{check_activations, overflow, with_values};
use crate::error::{Error, Result};
use crate::int8::{Int8Weight, OutputBound};
use crate::weights::{check_finite, QuantizedMatmul, StoredTensor, Weights};

enum LinearWeight {
    /// `(out, in)` as in the checkpoint.
    Float(Tensor),
    Quantized(QMatMul),
    /// With the bias's values, which the int8 kernel adds as it writes its output, and the
    /// weight's and bias's part of the bound that usually proves the outputs finite.
    Int8(Int8Weight, Vec<f32>, OutputBound),
}

pub struct Linear {
    weight: LinearWeight,
    bias: Tensor,
    /// The layer's checkpoint path (`….dense`), for errors.
    name: String,
}

impl Linear {
    /// Whether this layer runs on the int8 kernel (a quantised weight, `matmul: "int8"`).
    pub fn is_int8(&self) -> bool {
        matches!(self.weight, LinearWeight::Int8(..))
    }

    /// Loads `weight` `(out_features, in_features)` and `bias` `(out_features,)` under `weights`.
    pub fn load(weights: &Weights, in_features: usize, out_features: usize) -> Result<Self> {
        let (name, stored) = weights.stored("weight", &[out_features, in_features])?;
        let file = weights.store().file();
        let weight = match stored {
            StoredTensor::Quantized(qtensor)
                if qtensor.dtype() != GgmlDType::F32 && weights.matmul() == QuantizedMatmul::Blocks =>
            {
                // Quantised blocks cannot hold NaN checks cheaply per element; check the dequantised copy once.
                let dense = qtensor
                    .dequantize(weights.store().device())
                    .map_err(|e| Error::weights(file, &name, e.to_string()))?;
                check_finite(file, &name, &dense)?;
                let matmul = QMatMul::from_arc(qtensor.clone())
                    .map_err(|e| Error::weights(file, &name, e.to_string()))?;
                LinearWeight::Quantized(matmul)
            }
            StoredTensor::Quantized(qtensor) if weights.matmul() == QuantizedMatmul::Int8 => {
                // Integers are finite and from_qtensor refuses a non-finite block scale.
                match Int8Weight::from_qtensor(file, &name, qtensor)? {
                    Some(matrix) => {
                        let bias = weights.tensor("bias", &[out_features])?.to_vec1::<f32>()?;
                        let bound = matrix.output_bound(&bias);
                        LinearWeight::Int8(matrix, bias, bound)
                    }
                    None => LinearWeight::Float(weights.tensor("weight", &[out_features, in_features])?),
                }
            }
            _ => LinearWeight::Float(weights.tensor("weight", &[out_features, in_features])?),
        };
        let bias = weights.tensor("bias", &[out_features])?;
        let name = name.strip_suffix(".weight").unwrap_or(&name).to_string();
        Ok(Self { weight, bias, name })
    }

    /// `x`: `(..., in_features)` → `(..., out_features)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [y] = Self::forward_shared([self], x)?;
        Ok(y)
    }

    /// Several layers of the same input width applied to one input `x`: on the int8 path the
    /// input is quantised once for all of them (attention's query, key and value).
    pub fn forward_shared<const N: usize>(layers: [&Self; N], x: &Tensor) -> Result<[Tensor; N]> {
        let dims = x.dims().to_vec();
        let in_features = dims[dims.len() - 1];
        let rows = x.elem_count() / in_features.max(1);
        let x2 = x.reshape((rows, in_features))?.contiguous()?;
        let mut quantized = None;
        let mut outputs = Vec::with_capacity(N);
        for layer in layers {
            let mut proven_finite = false;
            let y = match &layer.weight {
                LinearWeight::Float(weight) => x2.matmul(&weight.t()?)?.broadcast_add(&layer.bias)?,
                LinearWeight::Quantized(matmul) => {
                    // candle rounds the input to 8-bit blocks, where NaN becomes a finite integer.
                    check_activations(&x2, f32::INFINITY, || format!("the input of `{}`", layer.name))?;
                    matmul.forward(&x2)?.broadcast_add(&layer.bias)?
                }
                LinearWeight::Int8(matrix, bias, bound) => {
                    if quantized.is_none() {
                        let activations = with_values(&x2, |values| matrix.quantize(values, in_features))?;
                        // Rounding would make inf and NaN finite: the quantiser marks them instead.
                        if !activations.all_finite() {
                            return Err(overflow(&format!("the input of `{}`", layer.name), "a non-finite value"));
                        }
                        // Once for every layer that reads these activations.
                        let largest_scale = activations.largest_scale();
                        quantized = Some((activations, largest_scale));
                    }
                    let (activations, largest_scale) = quantized.as_ref().expect("quantised just above");
                    let y = matrix.matmul(activations, bias);
                    // Usually a bound on the inputs' scales proves the outputs finite: no pass over them.
                    proven_finite = bound.proves_finite(*largest_scale);
                    Tensor::from_vec(y, (rows, matrix.rows()), x2.device())?
                }
            };
            // Whatever follows (tanh, GELU, LayerNorm, the next quantiser) could hide inf or NaN.
            if !proven_finite {
                check_activations(&y, f32::INFINITY, || format!("the output of `{}`", layer.name))?;
            }
            let mut out_dims = dims.clone();
            out_dims[dims.len() - 1] = y.dim(1)?;
            outputs.push(y.reshape(out_dims)?);
        }
        Ok(outputs.try_into().unwrap_or_else(|_| unreachable!("one output per layer")))
    }
}

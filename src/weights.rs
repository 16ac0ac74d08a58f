//! Where the weights come from: a flat map of named tensors (from safetensors, a PyTorch pickle or
//! a GGUF file) and a path builder that mirrors the checkpoint's nesting, so that a missing or
//! misshapen tensor is reported with its full name and the file it was looked for in.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// One stored tensor: plain floats, or quantised blocks kept as they are for [`crate::linear::Linear`].
#[derive(Clone)]
pub enum StoredTensor {
    Float(Tensor),
    Quantized(Arc<QTensor>),
}

impl StoredTensor {
    pub fn dims(&self) -> &[usize] {
        match self {
            StoredTensor::Float(tensor) => tensor.dims(),
            StoredTensor::Quantized(qtensor) => qtensor.shape().dims(),
        }
    }
}

/// How a linear layer with quantised weights multiplies. Natively the default is `Int8` where
/// [`crate::int8::Kernel::detect`] finds AVX2 (its kernel, on `InterleavedMatrix`, measured faster than
/// candle's f32 GEMM) and `Dequantize` elsewhere (candle's multi-threaded f32 GEMM beats the scalar
/// int8 loops) and on GPUs; the wasm build defaults to `Int8` (src/wasm.rs), whose SIMD128 kernels
/// are faster there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantizedMatmul {
    /// Dequantise the weights once at load and multiply in f32: only the weights carry rounding
    /// error (Q8_0 on the MiniLM-L-4 fixture: 1.2e-2 max |Δlogit| vs 4.7e-2 below), and the f32
    /// GEMM is fast for the many rows a rerank batch has. The download stays quantised.
    #[default]
    Dequantize,
    /// Keep the blocks and use candle's quantised matmul (activations are quantised to 8 bits):
    /// a quarter of the memory, but less exact and tuned for one row at a time.
    Blocks,
    /// Keep Q8_0/Q4_0 weights as integers with their block scales and multiply with integer dot
    /// products (activations quantised per row to 16 bits: as exact as `Dequantize`); see
    /// [`crate::int8`]. Other quantisations take the `Dequantize` path.
    Int8,
}

impl QuantizedMatmul {
    /// The default for models loaded onto `device` (see the type's comment).
    pub fn for_device(device: &Device) -> Self {
        if matches!(device, Device::Cpu) && matches!(crate::int8::Kernel::detect(), crate::int8::Kernel::Avx2 | crate::int8::Kernel::Avx512Vnni) {
            Self::Int8
        } else {
            Self::default()
        }
    }
}

/// All tensors of one model file, by their checkpoint names.
pub struct WeightStore {
    file: String,
    tensors: HashMap<String, StoredTensor>,
    device: Device,
}

impl WeightStore {
    pub fn new(file: impl Into<String>, tensors: HashMap<String, StoredTensor>, device: &Device) -> Self {
        Self { file: file.into(), tensors, device: device.clone() }
    }

    /// Reads a safetensors file held in memory; float16/bfloat16 tensors are widened to f32 on use.
    pub fn from_safetensors(file: &str, bytes: &[u8], device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, device)
            .map_err(|e| Error::format(file, format!("not a readable safetensors file ({e})")))?;
        let tensors = tensors.into_iter().map(|(name, tensor)| (name, StoredTensor::Float(tensor))).collect();
        Ok(Self::new(file, tensors, device))
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    pub fn get(&self, name: &str) -> Option<&StoredTensor> {
        self.tensors.get(name)
    }

    /// A path builder at the top of the checkpoint's name tree, for a model whose linear layers
    /// multiply quantised weights as `matmul` says: the choice is the loader's, made when the
    /// model is built, not a property of the weights.
    pub fn root(&self, matmul: QuantizedMatmul) -> Weights<'_> {
        Weights { store: self, path: String::new(), matmul }
    }
}

/// A position in the checkpoint's name tree, like candle's `VarBuilder::pp`; like a `VarBuilder`'s
/// dtype, the matmul choice travels with it into every layer it loads.
#[derive(Clone)]
pub struct Weights<'a> {
    store: &'a WeightStore,
    path: String,
    matmul: QuantizedMatmul,
}

impl<'a> Weights<'a> {
    /// The child named `name`: `weights.pp("encoder").pp("layer").pp(0)`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self { store: self.store, path: self.join(&name.to_string()), matmul: self.matmul }
    }

    pub fn store(&self) -> &'a WeightStore {
        self.store
    }

    /// How the linear layers loaded from here multiply quantised weights.
    pub fn matmul(&self) -> QuantizedMatmul {
        self.matmul
    }

    pub fn join(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The stored tensor `name` after checking its shape, without dequantising it.
    pub fn stored(&self, name: &str, shape: &[usize]) -> Result<(String, &'a StoredTensor)> {
        let full_name = self.join(name);
        let stored = self.store.get(&full_name).ok_or_else(|| {
            Error::weights(&self.store.file, &full_name, format!("missing (expected shape {shape:?})"))
        })?;
        if stored.dims() != shape {
            return Err(Error::weights(
                &self.store.file,
                &full_name,
                format!("expected shape {shape:?}, found {:?}", stored.dims()),
            ));
        }
        Ok((full_name, stored))
    }

    /// The tensor `name` as f32 on the store's device, checked for shape and finite values.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (full_name, stored) = self.stored(name, shape)?;
        let at = |e: candle_core::Error| Error::weights(&self.store.file, &full_name, e.to_string());
        let tensor = match stored {
            StoredTensor::Float(tensor) => match tensor.dtype() {
                DType::F32 | DType::F16 | DType::BF16 | DType::F64 => tensor.to_dtype(DType::F32).map_err(at)?,
                other => {
                    return Err(Error::weights(
                        &self.store.file,
                        &full_name,
                        format!("expected a float tensor, found dtype {other:?}"),
                    ))
                }
            },
            StoredTensor::Quantized(qtensor) => qtensor.dequantize(&self.store.device).map_err(at)?,
        };
        check_finite(&self.store.file, &full_name, &tensor)?;
        Ok(tensor)
    }
}

/// NaN or infinite weights would turn every score into NaN; catch them when the model loads.
pub fn check_finite(file: &str, name: &str, tensor: &Tensor) -> Result<()> {
    let at = |e: candle_core::Error| Error::weights(file, name, e.to_string());
    let values = tensor.flatten_all().map_err(at)?.to_vec1::<f32>().map_err(at)?;
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::weights(file, name, format!("holds a non-finite value ({}) at flat index {position}", values[position])));
    }
    Ok(())
}

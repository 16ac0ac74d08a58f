//! crossrank's model file: one GGUF holding every tensor (f32, f16, Q8_0 or Q4_0) plus the
//! `config.json` and `tokenizer.json` texts as metadata, so the browser downloads a single file.
//!
//! Which tensors stay in float is an explicit rule ([`keeps_float`]); any other tensor that the
//! requested precision cannot represent is an error, never a silent fallback.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::model::{Config, CrossEncoder};
use crate::rerank::check_default_max_length;
use crate::tokenize::PairTokenizer;
use crate::weights::{QuantizedMatmul, StoredTensor, WeightStore};

pub const KEY_FORMAT_VERSION: &str = "crossrank.format_version";
pub const KEY_CONFIG: &str = "crossrank.config_json";
pub const KEY_TOKENIZER: &str = "tokenizer.huggingface.json";
pub const KEY_PRECISION: &str = "crossrank.precision";
pub const KEY_SOURCE: &str = "crossrank.source";
/// Optional: the `max_length` a call without one gets (the length the model was trained at).
pub const KEY_MAX_LENGTH: &str = "crossrank.max_length";
pub const FORMAT_VERSION: u32 = 1;

/// What a GGUF header may make the reader hold, checked by [`preflight`] before candle reads the
/// file. candle 0.11.1 turns every metadata value into a 32-byte `Value` (16 on wasm32) whatever
/// its size in the file, so a 1-byte `u8` element costs 32 bytes, more while its `Vec` grows: a
/// 121 MB file of one `u8` array took 3.2 GB, a 300 MB one aborted. Bounds by the file size alone
/// cannot stop that; these fixed caps do.
///
/// Metadata values in all: keys plus every array element, nested ones included. crossrank writes 7 or 8
/// keys and no arrays; llama.cpp-style tokenizer metadata for the largest vocabulary in use (262,144
/// tokens) is 4 arrays of that length (tokens, scores, types, merges) = 2^20. At most 32 MiB of
/// `Value`s natively, 16 MiB in the browser.
pub const MAX_METADATA_VALUES: u64 = 1 << 20;
/// Arrays inside arrays: GGUF writers use one level (an array of strings).
pub const MAX_METADATA_NESTING: usize = 4;
/// Tensors: bge-reranker-large (24 layers) has about 390; each one costs candle a map entry and a tensor.
pub const MAX_TENSORS: u64 = 16_384;

/// The precisions crossrank writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl Precision {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            "q8_0" => Ok(Precision::Q8_0),
            "q4_0" => Ok(Precision::Q4_0),
            k if k.ends_with("_k") || k.starts_with("q") && k.contains('k') => Err(Error::Unsupported(format!(
                "{name}: K-quants need rows divisible by 256 and BERT-small rows are 384 (MiniLM) wide; use q8_0 or q4_0 (blocks of 32)"
            ))),
            _ => Err(Error::invalid(format!("unknown precision \"{name}\" (expected f32, f16, q8_0 or q4_0)"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Q8_0 => "q8_0",
            Precision::Q4_0 => "q4_0",
        }
    }

    fn ggml(self) -> GgmlDType {
        match self {
            Precision::F32 => GgmlDType::F32,
            Precision::F16 => GgmlDType::F16,
            Precision::Q8_0 => GgmlDType::Q8_0,
            Precision::Q4_0 => GgmlDType::Q4_0,
        }
    }
}

/// Tensors kept in f32 at every precision: small, and precision-critical (normalisation, biases,
/// the added position and type embeddings, and the one-row classifier whose rounding error would go
/// straight into the logit: on the MiniLM-L-4 fixture it was two thirds of Q8_0's error).
pub fn keeps_float(name: &str) -> bool {
    name.ends_with(".bias")
        || name.starts_with("classifier.")
        || name.contains("LayerNorm")
        || name.contains("position_embeddings")
        || name.contains("token_type_embeddings")
}

/// What a GGUF holds beside the tensors.
pub struct ConvertInput<'a> {
    pub config_json: &'a str,
    pub tokenizer: &'a PairTokenizer,
    /// Where the weights came from, e.g. `cross-encoder/ms-marco-MiniLM-L-4-v2@<revision>`.
    pub source: &'a str,
    /// The default `max_length` to record (an HF directory's `model_max_length`); `None` means the
    /// model's position embeddings.
    pub max_length: Option<usize>,
}

/// Writes a crossrank GGUF from an HF checkpoint's tensors. The model is built once first, so a
/// checkpoint that would not load is rejected here rather than in the user's browser.
pub fn convert(weights: &WeightStore, input: &ConvertInput<'_>, precision: Precision) -> Result<Vec<u8>> {
    convert_config(weights, &Config::from_json(crate::hf::CONFIG_JSON, input.config_json.as_bytes())?, input, precision)
}

/// [`convert`] with `input.config_json` already parsed as `config` (by a reader that knows the
/// file's real name, src/hf.rs).
pub(crate) fn convert_config(weights: &WeightStore, config: &Config, input: &ConvertInput<'_>, precision: Precision) -> Result<Vec<u8>> {
    CrossEncoder::load(weights, config, QuantizedMatmul::for_device(weights.device()))?;
    // Before the slow part: a length the loader would refuse is not worth quantising for.
    if let Some(max_length) = input.max_length {
        check_default_max_length(max_length, config.max_positions())?;
    }
    let tokenizer_json = input.tokenizer.to_json()?;

    let mut names: Vec<&String> = weights.names().filter(|name| !name.ends_with("position_ids")).collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = match weights.get(name) {
            Some(StoredTensor::Float(tensor)) => tensor.to_dtype(DType::F32)?,
            Some(StoredTensor::Quantized(qtensor)) => qtensor.dequantize(&Device::Cpu)?,
            None => continue,
        };
        let target = if keeps_float(name) { GgmlDType::F32 } else { precision.ggml() };
        let block = target.block_size();
        let row = tensor.dims().last().copied().unwrap_or(0);
        if row % block != 0 {
            return Err(Error::Unsupported(format!(
                "tensor `{name}` has rows of {row} values, which {} cannot store (blocks of {block}); \
                 K-quants would need rows divisible by 256",
                precision.name()
            )));
        }
        let qtensor = QTensor::quantize(&tensor.to_device(&Device::Cpu)?, target)
            .map_err(|e| Error::weights(weights.file(), name, format!("cannot quantise to {}: {e}", precision.name())))?;
        tensors.push((name.clone(), qtensor));
    }

    let mut metadata = vec![
        ("general.architecture", Value::String("bert".into())),
        ("general.name", Value::String(input.source.into())),
        (KEY_FORMAT_VERSION, Value::U32(FORMAT_VERSION)),
        (KEY_PRECISION, Value::String(precision.name().into())),
        (KEY_SOURCE, Value::String(input.source.into())),
        (KEY_CONFIG, Value::String(input.config_json.into())),
        (KEY_TOKENIZER, Value::String(tokenizer_json)),
    ];
    if let Some(max_length) = input.max_length {
        metadata.push((KEY_MAX_LENGTH, Value::U32(u32::try_from(max_length).unwrap_or(u32::MAX))));
    }
    let metadata_refs: Vec<(&str, &Value)> = metadata.iter().map(|(key, value)| (*key, value)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, qtensor)| (name.as_str(), qtensor)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata_refs, &tensor_refs).map_err(|e| Error::Compute(format!("writing GGUF: {e}")))?;
    Ok(out.into_inner())
}

/// A parsed crossrank GGUF: its metadata and tensors.
pub struct GgufModel {
    pub metadata: HashMap<String, Value>,
    pub weights: WeightStore,
    pub config_json: String,
    pub tokenizer_json: String,
}

impl GgufModel {
    pub fn read(file: &str, bytes: &[u8], device: &Device) -> Result<Self> {
        preflight(file, bytes)?;
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| Error::format(file, format!("not a readable GGUF file ({e})")))?;
        let text = |key: &str| -> Result<String> {
            match content.metadata.get(key) {
                Some(Value::String(text)) => Ok(text.clone()),
                Some(_) => Err(Error::format(file, format!("metadata `{key}` is not a string"))),
                None => Err(Error::format(file, format!("metadata `{key}` is missing: not a crossrank model file"))),
            }
        };
        match content.metadata.get(KEY_FORMAT_VERSION) {
            None => return Err(Error::format(file, format!("metadata `{KEY_FORMAT_VERSION}` is missing: not a crossrank model file"))),
            Some(value) => match integer(value) {
                Some(version) if version == i128::from(FORMAT_VERSION) => {}
                Some(version) => {
                    return Err(Error::format(file, format!("crossrank format version {version} is not supported (expected {FORMAT_VERSION})")))
                }
                None => return Err(Error::format(file, format!("metadata `{KEY_FORMAT_VERSION}` is not an unsigned integer (it is {})", describe(value)))),
            },
        }
        let config_json = text(KEY_CONFIG)?;
        let tokenizer_json = text(KEY_TOKENIZER)?;
        let mut tensors = HashMap::with_capacity(content.tensor_infos.len());
        for name in content.tensor_infos.keys() {
            let qtensor = content
                .tensor(&mut reader, name, device)
                .map_err(|e| Error::format(file, format!("tensor `{name}` cannot be read ({e})")))?;
            let stored = match qtensor.dtype() {
                GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => StoredTensor::Float(
                    qtensor.dequantize(device).map_err(|e| Error::weights(file, name, e.to_string()))?,
                ),
                _ => StoredTensor::Quantized(Arc::new(qtensor)),
            };
            tensors.insert(name.clone(), stored);
        }
        Ok(Self { metadata: content.metadata, weights: WeightStore::new(file, tensors, device), config_json, tokenizer_json })
    }

    pub fn precision(&self) -> &str {
        match self.metadata.get(KEY_PRECISION) {
            Some(Value::String(precision)) => precision,
            _ => "unknown",
        }
    }

    /// The default `max_length` the file records, if any.
    pub fn max_length(&self) -> Result<Option<usize>> {
        let Some(value) = self.metadata.get(KEY_MAX_LENGTH) else { return Ok(None) };
        match integer(value) {
            Some(n) if n < 0 => Err(Error::format(self.weights.file(), format!("metadata `{KEY_MAX_LENGTH}` is not an unsigned integer ({n})"))),
            // Past usize (wasm32): the loader's check against the position embeddings names it.
            Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            None => Err(Error::format(self.weights.file(), format!("metadata `{KEY_MAX_LENGTH}` is not an unsigned integer (it is {})", describe(value)))),
        }
    }

    pub fn source(&self) -> &str {
        match self.metadata.get(KEY_SOURCE) {
            Some(Value::String(source)) => source,
            _ => "unknown",
        }
    }
}

/// A metadata integer of any GGUF integer type: crossrank writes u32, other writers may use u64 or
/// a signed type for the same number.
fn integer(value: &Value) -> Option<i128> {
    Some(match *value {
        Value::U8(n) => n.into(),
        Value::I8(n) => n.into(),
        Value::U16(n) => n.into(),
        Value::I16(n) => n.into(),
        Value::U32(n) => n.into(),
        Value::I32(n) => n.into(),
        Value::U64(n) => n.into(),
        Value::I64(n) => n.into(),
        _ => return None,
    })
}

/// A metadata value's type, for messages ("a string", "an array", "an f32").
fn describe(value: &Value) -> &'static str {
    match value {
        Value::F32(_) => "an f32",
        Value::F64(_) => "an f64",
        Value::Bool(_) => "a bool",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        _ => "an integer",
    }
}

/// Walks a GGUF header before candle reads it, rejecting what candle's reader (0.11.1) does not
/// survive: a `general.alignment` of 0 (it divides by it: a panic, an abort in the wasm build), a
/// tensor whose dimensions multiply past `usize` (an overflow panic with overflow checks, a wrapped
/// size without), and a tensor with no elements (candle builds its slice from the empty buffer's
/// dangling pointer: undefined behaviour, an abort with debug assertions). A tensor with more
/// elements than 4 × the file's bytes cannot be stored in it (no GGML type packs more than 4
/// elements per byte), so it is rejected before any size is computed from it.
///
/// It also bounds what candle would allocate for the header: counts and array lengths that the
/// rest of the file cannot hold (each element takes at least its type's size on disk), and more
/// than [`MAX_METADATA_VALUES`], [`MAX_METADATA_NESTING`] or [`MAX_TENSORS`], are refused here, so
/// candle never reads them. Anything else this walk cannot follow (truncation, unknown value types)
/// is left to candle, whose errors name the problem: candle reads in the same order and stops
/// there too, so nothing past that point is read unchecked.
fn preflight(file: &str, bytes: &[u8]) -> Result<()> {
    struct Walk<'a> {
        bytes: &'a [u8],
        at: usize,
        wide: bool,
        /// Metadata values seen so far (keys and array elements), against [`MAX_METADATA_VALUES`].
        values: u64,
        /// Why the walk stopped, when it stopped at a bound rather than at something it cannot follow.
        refusal: Option<String>,
    }
    impl Walk<'_> {
        fn take(&mut self, n: u64) -> Option<&[u8]> {
            let end = self.at.checked_add(usize::try_from(n).ok()?)?;
            let slice = self.bytes.get(self.at..end)?;
            self.at = end;
            Some(slice)
        }
        fn remaining(&self) -> u64 {
            (self.bytes.len() - self.at) as u64
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        /// Lengths and dimensions: u32 in GGUF v1, u64 from v2 on.
        fn length(&mut self) -> Option<u64> {
            if self.wide { self.u64() } else { self.u32().map(u64::from) }
        }
        fn string(&mut self) -> Option<&[u8]> {
            let len = self.length()?;
            self.take(len)
        }
        /// Stops the walk at a bound: `None` for the caller, with the reason kept.
        fn refuse<T>(&mut self, reason: String) -> Option<T> {
            self.refusal = Some(reason);
            None
        }
        /// Counts `n` more metadata values against [`MAX_METADATA_VALUES`].
        fn count(&mut self, n: u64) -> Option<()> {
            self.values = self.values.saturating_add(n);
            if self.values > MAX_METADATA_VALUES {
                return self.refuse(format!(
                    "takes the metadata past {MAX_METADATA_VALUES} values in all (keys and array elements), the most a crossrank GGUF may hold"
                ));
            }
            Some(())
        }
        /// The fewest bytes a value of GGUF type `kind` takes in the file.
        fn min_size(&self, kind: u32) -> Option<u64> {
            let prefix = if self.wide { 8 } else { 4 };
            match kind {
                0 | 1 | 7 => Some(1u64),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                8 => Some(prefix),
                9 => Some(4 + prefix),
                _ => None,
            }
        }
        /// A little-endian integer of `n` bytes (1, 2 or 4).
        fn int(&mut self, n: usize, signed: bool) -> Option<i128> {
            let mut buf = [0u8; 8];
            buf[..n].copy_from_slice(self.take(n as u64)?);
            let value = u64::from_le_bytes(buf);
            let shift = 64 - 8 * n as u32;
            Some(if signed { ((value << shift) as i64 >> shift) as i128 } else { value as i128 })
        }
        /// Skips a value of GGUF type `kind` inside `depth` arrays, returning it when it is an
        /// integer of at most 32 bits.
        fn value(&mut self, kind: u32, depth: usize) -> Option<Option<i128>> {
            match kind {
                // u8, i8, u16, i16, u32, i32: the odd ones are signed.
                0..=5 => Some(Some(self.int(self.min_size(kind)? as usize, kind % 2 == 1)?)),
                6 | 7 | 10..=12 => self.take(self.min_size(kind)?).map(|_| None),
                8 => self.string().map(|_| None),
                9 if depth >= MAX_METADATA_NESTING => {
                    self.refuse(format!("nests arrays more than {MAX_METADATA_NESTING} deep"))
                }
                9 => {
                    let element = self.u32()?;
                    let len = self.length()?;
                    let size = self.min_size(element)?;
                    // Before anything is counted or allocated: the elements must fit in the file.
                    let remaining = self.remaining();
                    if len.saturating_mul(size) > remaining {
                        return self.refuse(format!(
                            "is an array of {len} elements of GGUF type {element}, which need at least {} bytes: \
                             only {remaining} are left in the file",
                            len.saturating_mul(size)
                        ));
                    }
                    self.count(len)?;
                    if element == 8 || element == 9 {
                        // Strings and arrays: walked one by one (at most MAX_METADATA_VALUES of them).
                        for _ in 0..len {
                            self.value(element, depth + 1)?;
                        }
                    } else {
                        self.take(len * size)?;
                    }
                    Some(None)
                }
                _ => None,
            }
        }
    }

    let Some(version) = bytes.get(4..8).map(|b| u32::from_le_bytes(b.try_into().unwrap())) else { return Ok(()) };
    // Not a GGUF candle reads (magic, versions 1-3): its own error says so better than counts would.
    if !bytes.starts_with(b"GGUF") || !(1..=3).contains(&version) {
        return Ok(());
    }
    let mut walk = Walk { bytes, at: 8, wide: version >= 2, values: 0, refusal: None };
    let (Some(tensor_count), Some(metadata_count)) = (walk.length(), walk.length()) else { return Ok(()) };
    // The fewest bytes a metadata entry (key length, type, a 1-byte value) and a tensor entry (name
    // length, dimension count, type, offset) take.
    let prefix = if walk.wide { 8 } else { 4 };
    let needed = metadata_count.saturating_mul(prefix + 5).saturating_add(tensor_count.saturating_mul(prefix + 16));
    if needed > walk.remaining() {
        return Err(Error::format(
            file,
            format!(
                "the header claims {metadata_count} metadata entries and {tensor_count} tensors, which need at least {needed} bytes: \
                 the file has {} left",
                walk.remaining()
            ),
        ));
    }
    if metadata_count > MAX_METADATA_VALUES {
        return Err(Error::format(file, format!("the header claims {metadata_count} metadata entries, more than the {MAX_METADATA_VALUES} a crossrank GGUF may hold")));
    }
    if tensor_count > MAX_TENSORS {
        return Err(Error::format(file, format!("the header claims {tensor_count} tensors, more than the {MAX_TENSORS} a crossrank GGUF may hold")));
    }
    // What candle's metadata map will hold for `general.alignment`, as an integer.
    let mut alignment = None;
    // candle keeps the last of two equal keys or tensor names: a file that says two things is refused.
    let mut keys = std::collections::HashSet::new();
    for _ in 0..metadata_count {
        let Some(key) = walk.string().map(|key| String::from_utf8_lossy(key).into_owned()) else { return Ok(()) };
        let Some(kind) = walk.u32() else { return Ok(()) };
        let value = walk.count(1).and_then(|()| walk.value(kind, 0));
        let Some(value) = value else {
            return match walk.refusal.take() {
                Some(reason) => Err(Error::format(file, format!("metadata `{key}` {reason}"))),
                None => Ok(()),
            };
        };
        if key == "general.alignment" {
            // candle takes u8/u16/u32 and non-negative i8/i16/i32 values, else its default of 32.
            alignment = value;
        }
        if !keys.insert(key.clone()) {
            return Err(Error::format(file, format!("metadata key `{key}` appears twice: the file is ambiguous")));
        }
    }
    if alignment == Some(0) {
        return Err(Error::format(file, "metadata `general.alignment` is 0"));
    }
    let alignment = alignment.and_then(|a| u64::try_from(a).ok()).unwrap_or(32);
    let mut names = std::collections::HashSet::new();
    // (offset, bytes when the type's size is known, name), to find tensors that share bytes.
    let mut extents: Vec<(u64, Option<u64>, String)> = Vec::new();
    let max_elements = bytes.len().saturating_mul(4);
    for _ in 0..tensor_count {
        let Some(name) = walk.string().map(|name| String::from_utf8_lossy(name).into_owned()) else { return Ok(()) };
        let Some(dims) = walk.u32() else { return Ok(()) };
        if dims > 4 {
            return Ok(());
        }
        let mut shape = Vec::with_capacity(dims as usize);
        for _ in 0..dims {
            let Some(dim) = walk.length() else { return Ok(()) };
            shape.push(dim);
        }
        // candle reads each dimension `as usize`.
        let elements = shape.iter().try_fold(1usize, |count, &dim| count.checked_mul(dim as usize));
        match elements {
            Some(0) => return Err(Error::format(file, format!("tensor `{name}` has no elements (dimensions {shape:?})"))),
            Some(count) if count <= max_elements => {}
            _ => {
                return Err(Error::format(
                    file,
                    format!("tensor `{name}` has dimensions {shape:?}, more elements than a {}-byte file can hold", bytes.len()),
                ))
            }
        }
        let (Some(kind), Some(offset)) = (walk.u32(), walk.u64()) else { return Ok(()) };
        if !names.insert(name.clone()) {
            return Err(Error::format(file, format!("tensor `{name}` appears twice: the file is ambiguous")));
        }
        if offset % alignment != 0 {
            return Err(Error::format(file, format!("tensor `{name}` starts at offset {offset}, not a multiple of the alignment {alignment}")));
        }
        let count = elements.unwrap_or(0) as u64;
        extents.push((offset, ggml_bytes(kind, count), name));
    }
    extents.sort();
    for pair in extents.windows(2) {
        let ((offset, size, name), (next, _, next_name)) = (&pair[0], &pair[1]);
        if size.is_some_and(|size| offset.saturating_add(size) > *next) {
            return Err(Error::format(
                file,
                format!("tensors `{name}` (offset {offset}) and `{next_name}` (offset {next}) overlap: the file is damaged or crafted"),
            ));
        }
    }
    Ok(())
}

/// Bytes a tensor of GGML type `kind` with `count` elements takes, for the types crossrank writes
/// and reads (others: unknown, and not checked for overlap).
fn ggml_bytes(kind: u32, count: u64) -> Option<u64> {
    use crate::int8::blocks::{BLOCK, Q4_0_BYTES, Q8_0_BYTES};
    let (block, bytes) = match kind {
        0 => (1, 4),                   // F32
        1 => (1, 2),                   // F16
        30 => (1, 2),                  // BF16
        2 => (BLOCK, Q4_0_BYTES),      // Q4_0
        3 => (BLOCK, Q4_0_BYTES + 2),  // Q4_1: Q4_0's and an f16 minimum
        8 => (BLOCK, Q8_0_BYTES),      // Q8_0
        _ => return None,
    };
    Some(count.div_ceil(block as u64) * bytes as u64)
}


//! GGUF's Q8_0 and Q4_0 block formats, the one home of their sizes (the GGUF reader's bounds use
//! them too): 32 values per block after a little-endian f16 scale, as bytes (Q8_0) or as nibbles
//! offset by 8 (Q4_0). Read here into an [`Int8Matrix`]; Q8_0's rounding, for f32 matrices that
//! the int8 kernels multiply (attention's keys and values), is [`Int8Matrix::quantize`].

use candle_core::quantized::{GgmlDType, QTensor};

use super::row_major::RowMajor;
use super::Int8Matrix;
use crate::error::{Error, Result};

/// Values per quantisation block (Q8_0 and Q4_0 alike).
pub const BLOCK: usize = 32;
/// Bytes per Q8_0 block: the f16 scale, then 32 signed bytes.
pub const Q8_0_BYTES: usize = 2 + BLOCK;
/// Bytes per Q4_0 block: the f16 scale, then 32 nibbles.
pub const Q4_0_BYTES: usize = 2 + BLOCK / 2;

/// Bytes per block of 32 values for the types the int8 path reads; `None` for others.
pub fn block_bytes(dtype: GgmlDType) -> Option<usize> {
    match dtype {
        GgmlDType::Q8_0 => Some(Q8_0_BYTES),
        GgmlDType::Q4_0 => Some(Q4_0_BYTES),
        _ => None,
    }
}

impl Int8Matrix {
    /// The blocks of a Q8_0 or Q4_0 tensor `(rows, cols)`; `None` for other types (they take the
    /// f32 path). `cols` must be a multiple of 32, which GGUF guarantees for these types.
    pub fn from_qtensor(file: &str, name: &str, tensor: &QTensor) -> Result<Option<Self>> {
        let dims = tensor.shape().dims();
        let bad = |message: String| Error::weights(file, name, message);
        let &[rows, cols] = dims else { return Err(bad(format!("expected a matrix, found shape {dims:?}"))) };
        if cols % BLOCK != 0 {
            return Ok(None);
        }
        let Some(block_bytes) = block_bytes(tensor.dtype()) else { return Ok(None) };
        let data = tensor.data().map_err(|e| bad(e.to_string()))?;
        let blocks = rows * cols / BLOCK;
        if data.len() != blocks * block_bytes {
            return Err(bad(format!("holds {} bytes of blocks, expected {}", data.len(), blocks * block_bytes)));
        }
        let mut values = vec![0i8; rows * cols];
        let mut scales = vec![0f32; blocks];
        for ((block, out), scale) in data.chunks_exact(block_bytes).zip(values.chunks_exact_mut(BLOCK)).zip(&mut scales) {
            // ggml's layout: a little-endian f16 scale, then the values.
            *scale = half_to_f32(u16::from_le_bytes([block[0], block[1]]));
            if !scale.is_finite() {
                return Err(bad(format!("holds a non-finite block scale ({scale})")));
            }
            let packed = &block[2..];
            match tensor.dtype() {
                GgmlDType::Q8_0 => out.iter_mut().zip(packed).for_each(|(v, &b)| *v = b as i8),
                // Q4_0: byte j holds value j in its low nibble and value j + 16 in its high one,
                // both offset by 8.
                _ => {
                    for (j, &b) in packed.iter().enumerate() {
                        out[j] = (b & 0x0f) as i8 - 8;
                        out[j + BLOCK / 2] = (b >> 4) as i8 - 8;
                    }
                }
            }
        }
        Ok(Some(Self { rows, cols, values, scales, layout: RowMajor }))
    }

    /// `(rows, cols)` f32 values rounded as Q8_0 rounds them: per block of 32, a scale of the
    /// largest |value| / 127 and integers in −127..=127. `cols` must be a multiple of 32.
    pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Self {
        assert!(values.len() == rows * cols, "quantize wants rows × cols values");
        Self::quantize_strided(values, rows, cols, cols)
    }

    /// [`Int8Matrix::quantize`] of the rows `values[i × stride ..][.. cols]`: one head's keys
    /// read where they lie among all heads' (a `(positions, heads × head)` tensor).
    pub fn quantize_strided(values: &[f32], rows: usize, cols: usize, stride: usize) -> Self {
        assert!(cols % BLOCK == 0 && (rows == 0 || values.len() >= (rows - 1) * stride + cols), "quantize wants whole blocks");
        let mut quantized = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * cols / BLOCK];
        round_as_q8_0(values, cols, stride, &mut quantized, &mut scales);
        Self { rows, cols, values: quantized, scales, layout: RowMajor }
    }
}

crate::cpu::multiversioned! {
    /// [`Int8Matrix::quantize_strided`]'s blocks, `quantized.len()` values wide rows `stride`
    /// apart in `values` (natively with AVX2, where `round_ties_even` is one `vroundps` rather
    /// than a libm call per value: attention quantises every head's keys and values this way).
    fn round_as_q8_0(values: &[f32], cols: usize, stride: usize, quantized: &mut [i8], scales: &mut [f32]) {
        let rows = quantized.chunks_exact_mut(cols.max(1)).zip(scales.chunks_exact_mut((cols / BLOCK).max(1)));
        for (row, (quantized, scales)) in rows.enumerate() {
            let blocks = values[row * stride..][..cols].chunks_exact(BLOCK).zip(quantized.chunks_exact_mut(BLOCK)).zip(scales);
            for ((block, out), scale) in blocks {
                let largest = block.iter().fold(0f32, |a, v| if v.abs() > a { v.abs() } else { a });
                if largest == 0.0 || !largest.is_finite() {
                    continue;
                }
                *scale = largest / 127.0;
                let inverse = 1.0 / *scale;
                out.iter_mut().zip(block).for_each(|(q, v)| *q = ((v * inverse).round_ties_even() as i32).clamp(-127, 127) as i8);
            }
        }
    }
}

/// Whether every value of a Q8_0/Q4_0 tensor is finite, read from its block scales alone (the
/// values are small integers): checking a 30k-row embedding table this way allocates nothing,
/// where dequantising it would grow wasm memory, which never shrinks, by 47 MB. `Ok(false)` for
/// other types: the caller must check another way.
pub fn check_block_scales(file: &str, name: &str, tensor: &QTensor) -> Result<bool> {
    let Some(block_bytes) = block_bytes(tensor.dtype()) else { return Ok(false) };
    let bad = |message: String| Error::weights(file, name, message);
    let data = tensor.data().map_err(|e| bad(e.to_string()))?;
    let blocks = tensor.shape().elem_count() / BLOCK;
    if tensor.shape().elem_count() % BLOCK != 0 || data.len() != blocks * block_bytes {
        return Err(bad(format!("holds {} bytes of blocks, expected {}", data.len(), blocks * block_bytes)));
    }
    for (position, block) in data.chunks_exact(block_bytes).enumerate() {
        let scale = half_to_f32(u16::from_le_bytes([block[0], block[1]]));
        if !scale.is_finite() {
            return Err(bad(format!("holds a non-finite block scale ({scale}) in block {position}")));
        }
    }
    Ok(true)
}

/// IEEE half to f32 (the block scales), without a dependency.
fn half_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let fraction = (bits & 0x3ff) as f32;
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + fraction / 1024.0) * 2f32.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::quantized;
    use candle_core::Device;

    #[test]
    fn blocks_read_back_equal_candle_dequantisation() {
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let q = quantized(dtype, 6, 64);
            let matrix = Int8Matrix::from_qtensor("t", "w", &q).unwrap().expect("supported");
            let expected = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (i, &e) in expected.iter().enumerate() {
                let got = matrix.values[i] as f32 * matrix.scales[i / BLOCK];
                assert_eq!(got, e, "{dtype:?} value {i}");
            }
        }
    }

    #[test]
    fn block_sizes_are_ggml_s() {
        for (dtype, bytes) in [(GgmlDType::Q8_0, Q8_0_BYTES), (GgmlDType::Q4_0, Q4_0_BYTES)] {
            assert_eq!((dtype.block_size(), dtype.type_size()), (BLOCK, bytes), "{dtype:?}");
        }
    }

    #[test]
    fn other_types_are_not_read() {
        assert!(Int8Matrix::from_qtensor("t", "w", &quantized(GgmlDType::F16, 2, 32)).unwrap().is_none());
    }

    #[test]
    fn half_floats() {
        for (bits, value) in [(0x3c00u16, 1.0f32), (0xc000, -2.0), (0x0001, 5.960_464_5e-8), (0x7bff, 65504.0), (0, 0.0)] {
            assert_eq!(half_to_f32(bits), value);
        }
        assert!(half_to_f32(0x7e00).is_nan());
    }
}

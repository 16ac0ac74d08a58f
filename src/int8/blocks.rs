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
                let largest = largest_magnitude_of_block(block);
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

/// The largest |v| of a block of 32 (NaN left out: `v > largest` is false for it), in lanes: a
/// fold over the block is one compare after another, and made a tenth of a native profile of
/// short pairs, where each head's keys and values are quantised for a small product. A maximum
/// does not depend on the order, so this is the fold's value. Natively LLVM vectorises the eight
/// lanes; in wasm it loaded them one by one (slower than the fold), so SIMD128 is written out.
#[inline(always)]
fn largest_magnitude_of_block(block: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        assert!(block.len() == BLOCK);
        // SAFETY: eight loads of four f32 inside the block of 32 just checked.
        let lanes = unsafe {
            let from = block.as_ptr() as *const v128;
            // pmax(a, b) is `a < b ? b : a`: a NaN in `b` leaves `a`, as the fold does.
            (0..BLOCK / 4).fold(f32x4_splat(0.0), |largest, i| f32x4_pmax(largest, f32x4_abs(v128_load(from.add(i)))))
        };
        let lanes = [f32x4_extract_lane::<0>(lanes), f32x4_extract_lane::<1>(lanes), f32x4_extract_lane::<2>(lanes), f32x4_extract_lane::<3>(lanes)];
        lanes.iter().fold(0f32, |a, &v| if v > a { v } else { a })
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut lanes = [0f32; 8];
        for eight in block.chunks_exact(8) {
            for (lane, v) in lanes.iter_mut().zip(eight) {
                *lane = if v.abs() > *lane { v.abs() } else { *lane };
            }
        }
        lanes.iter().fold(0f32, |a, &v| if v > a { v } else { a })
    }
}

/// Whether [`Int8Matrix::quantize_strided`] (its largest |v| in SIMD128 in wasm, in lanes
/// natively) gives the integers and scales of the plain definition, a fold over each block, bit for
/// bit (`Err` names the first row that does not): blocks whose largest value is negative, a tie
/// at half a step, zeros, −0, a NaN (left out), an inf (a block of zeros), values wider than the
/// block rows, read with a stride. A Rust test natively; the browser tests call it through the
/// wasm module, where no Rust test runs.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub fn q8_rounding_agrees() -> std::result::Result<(), String> {
    let (rows, cols, stride) = (6, 2 * BLOCK, 2 * BLOCK + 5);
    let mut values: Vec<f32> = (0..rows * stride).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 61.0).collect();
    values[3] = -100.0; // row 0's largest |v| is negative
    values[stride + 4] = 127.0; // row 1: a step of 1, so that 2.5 ties
    values[stride + 5] = 2.5;
    values[2 * stride..2 * stride + BLOCK].fill(0.0); // row 2: a block of zeros with a −0
    values[2 * stride + 7] = -0.0;
    values[3 * stride + 9] = f32::NAN; // row 3: a NaN among finite values
    values[4 * stride + BLOCK + 1] = f32::INFINITY; // row 4: an inf
    let got = Int8Matrix::quantize_strided(&values, rows, cols, stride);
    for row in 0..rows {
        for b in 0..cols / BLOCK {
            let block = &values[row * stride + b * BLOCK..][..BLOCK];
            let largest = block.iter().fold(0f32, |a, v| if v.abs() > a { v.abs() } else { a });
            let (scale, integers) = if largest == 0.0 || !largest.is_finite() {
                (0.0, vec![0i8; BLOCK])
            } else {
                let scale = largest / 127.0;
                (scale, block.iter().map(|v| ((v * (1.0 / scale)).round_ties_even() as i32).clamp(-127, 127) as i8).collect())
            };
            let at = row * cols + b * BLOCK;
            if got.scales[at / BLOCK].to_bits() != f32::to_bits(scale) || got.values[at..at + BLOCK] != integers[..] {
                return Err(format!("row {row}, block {b}: the integers or the scale differ from the definition's"));
            }
        }
    }
    Ok(())
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
    fn q8_rounding_equals_its_definition() {
        super::q8_rounding_agrees().unwrap();
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

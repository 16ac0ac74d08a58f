//! Integer matrix products for quantised linear layers: the weights stay in their GGUF blocks
//! (Q8_0 or Q4_0: 32 integers and one scale per block), activations are quantised per row to
//! 16-bit integers at run time, and each block's integer dot product is scaled by the block's
//! scale before it is summed in f32.
//!
//! Why 16 bits for activations: the integer products then carry no more rounding than the
//! dequantised f32 path (a row's values are rounded to 1/32767 of its largest one), so the int8
//! path keeps Q8_0's accuracy, while the products run as SIMD128's `i32x4.dot_i16x8_s` (8
//! multiply-adds per instruction, twice f32x4's). A block's sum of 32 products stays below
//! 32767 × 127 × 32 < 2³¹, so the i32 lanes cannot overflow whatever the input.
//!
//! `Int8Matrix::matmul_into` is the plain definition the SIMD128 kernel is tested against.
//! A module built with relaxed SIMD multiplies in another layout instead ([`interleaved`]);
//! [`Int8Weight`] is whichever this build uses.

use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{Error, Result};

pub mod attention;
mod interleaved;
#[cfg(target_arch = "x86_64")]
mod paired;
pub(crate) use interleaved::largest_magnitude;
pub use interleaved::{DigitRows, InterleavedMatrix};
#[cfg(target_arch = "x86_64")]
pub use paired::PairedMatrix;

/// Whether this is the relaxed-SIMD build (where the int8 path is fastest).
pub const RELAXED: bool = cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd"));

/// The int8 kernel this build runs, as the wasm module's `info()` reports it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub const KERNEL: &str = if RELAXED {
    "relaxed-simd"
} else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
    "simd128"
} else {
    "portable"
};

/// Activations quantised for one of [`Int8Weight`]'s forms.
pub enum Activations {
    Rows(QuantizedRows),
    Digits(DigitRows),
}

impl Activations {
    /// Whether every input value was finite: the quantisers mark a row holding inf or NaN with a
    /// NaN scale (found while they look for its largest value, so this costs one scale per row).
    pub fn all_finite(&self) -> bool {
        match self {
            Self::Rows(rows) => rows.scales.iter().all(|scale| scale.is_finite()),
            Self::Digits(rows) => rows.all_finite(),
        }
    }
}

/// A quantised linear weight as this build multiplies it: interleaved for the relaxed dot in a
/// relaxed-SIMD module, in column pairs with row scales on x86-64 CPUs with AVX2, row-major
/// everywhere else. Only one form is kept in memory.
pub enum Int8Weight {
    RowMajor(Int8Matrix),
    Interleaved(InterleavedMatrix),
    #[cfg(target_arch = "x86_64")]
    Paired(PairedMatrix),
}

impl Int8Weight {
    /// See [`Int8Matrix::from_qtensor`]: `None` for types the int8 path does not take.
    pub fn from_qtensor(file: &str, name: &str, tensor: &QTensor) -> Result<Option<Self>> {
        Ok(Int8Matrix::from_qtensor(file, name, tensor)?.map(|matrix| {
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::avx2_fma() {
                return Self::Paired(PairedMatrix::new(&matrix));
            }
            if RELAXED {
                Self::Interleaved(InterleavedMatrix::new(&matrix))
            } else {
                Self::RowMajor(matrix)
            }
        }))
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        match self {
            Self::RowMajor(matrix) => matrix.rows(),
            Self::Interleaved(matrix) => matrix.rows(),
            #[cfg(target_arch = "x86_64")]
            Self::Paired(matrix) => matrix.rows(),
        }
    }

    /// `x` `(m, cols)` f32 row-major, quantised as this kernel needs it: once for every layer
    /// that reads the same input (attention's key and value, and query).
    pub fn quantize(&self, x: &[f32], cols: usize) -> Activations {
        match self {
            Self::RowMajor(_) => Activations::Rows(QuantizedRows::new(x, cols)),
            Self::Interleaved(_) => Activations::Digits(DigitRows::new(x, cols)),
            #[cfg(target_arch = "x86_64")]
            Self::Paired(_) => Activations::Rows(PairedMatrix::quantize(x, cols)),
        }
    }

    /// `x Wᵀ + bias`. The bias is added here, in place, rather than by a broadcast that allocates.
    pub fn matmul(&self, x: &Activations, bias: &[f32]) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if let (Self::Paired(matrix), Activations::Rows(x)) = (self, x) {
            return matrix.matmul(x, bias); // adds the bias as it writes
        }
        let mut out = match (self, x) {
            (Self::RowMajor(matrix), Activations::Rows(x)) => matrix.matmul(x),
            (Self::Interleaved(matrix), Activations::Digits(x)) => matrix.matmul(x),
            // Every layer of a build has the same form (RELAXED decides it).
            _ => unreachable!("activations quantised for another int8 layout"),
        };
        for row in out.chunks_exact_mut(bias.len().max(1)) {
            row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
        }
        out
    }
}

crate::cpu::multiversioned! {
    /// Rounds each row of `x` to ±`limit` times its scale; written to vectorise (the largest
    /// |value| in eight lanes, [`round_clamped`]).
    fn quantize_rows(x: &[f32], cols: usize, limit: i32, values: &mut [i16], scales: &mut [f32]) {
        for ((row, out), scale) in x.chunks_exact(cols.max(1)).zip(values.chunks_exact_mut(cols.max(1))).zip(scales) {
            let largest = interleaved::largest_magnitude(row);
            if !largest.is_finite() {
                // inf or NaN would round to finite integers and give a finite, wrong score: a
                // NaN scale marks the row, and the caller refuses it (`Activations::all_finite`).
                *scale = f32::NAN;
                continue;
            }
            if largest == 0.0 {
                continue; // all zeros: the row contributes nothing
            }
            *scale = largest / limit as f32;
            let inverse = 1.0 / *scale;
            for (q, v) in out.iter_mut().zip(row) {
                *q = round_clamped(v * inverse, limit as f32) as i16;
            }
        }
    }
}

/// `v` rounded to the nearest integer (ties to even) and clamped to ±`limit` (≤ 2²²; NaN gives
/// −limit). Written to vectorise: `round` is a libm call and a float-to-int cast saturates
/// lane by lane, while adding 1.5·2²³ leaves the rounded integer in the low mantissa bits.
#[inline(always)]
pub(crate) fn round_clamped(v: f32, limit: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    let v = v.max(-limit).min(limit);
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// Values per quantisation block (Q8_0 and Q4_0 alike).
pub const BLOCK: usize = 32;

/// A `(rows, cols)` weight matrix as integers with one f32 scale per block of 32 along `cols`.
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    /// `rows × cols`, row-major: row `n` holds output feature `n`'s weights.
    values: Vec<i8>,
    /// `rows × cols / BLOCK`: weight `[n][k]` is `values[n][k] × scales[n][k / BLOCK]`.
    scales: Vec<f32>,
}

/// Activations quantised per row: `x[m][k] ≈ values[m][k] × scales[m]`, `|values| ≤ limit`.
pub struct QuantizedRows {
    cols: usize,
    /// Checked by kernels whose integer sums are bounded for smaller values (x86-64's AVX2).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    limit: i32,
    values: Vec<i16>,
    scales: Vec<f32>,
}

impl QuantizedRows {
    /// `x`: `rows × cols` f32, row-major, rounded to 16 bits (±32767).
    pub fn new(x: &[f32], cols: usize) -> Self {
        Self::with_limit(x, cols, i16::MAX as i32)
    }

    /// As [`QuantizedRows::new`], rounded to ±`limit` (at most 32767).
    pub fn with_limit(x: &[f32], cols: usize, limit: i32) -> Self {
        let limit = limit.min(i16::MAX as i32);
        let rows = if cols == 0 { 0 } else { x.len() / cols };
        let mut values = vec![0i16; rows * cols];
        let mut scales = vec![0f32; rows];
        // Blocks of rows shared by the threads.
        const ROWS_PER_TASK: usize = 64;
        crate::cpu::for_each_chunk_pair(&mut values, ROWS_PER_TASK * cols, &mut scales, ROWS_PER_TASK, |i, values, scales| {
            quantize_rows(&x[i * ROWS_PER_TASK * cols..][..values.len()], cols, limit, values, scales)
        });
        Self { cols, limit, values, scales }
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
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
        Ok(Some(Self { rows, cols, values, scales }))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `(rows, cols)` f32 values rounded as Q8_0 rounds them: per block of 32, a scale of the
    /// largest |value| / 127 and integers in −127..=127. `cols` must be a multiple of 32.
    pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Self {
        assert!(cols % BLOCK == 0 && values.len() == rows * cols, "quantize wants whole blocks");
        let mut quantized = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * cols / BLOCK];
        for ((block, out), scale) in values.chunks_exact(BLOCK).zip(quantized.chunks_exact_mut(BLOCK)).zip(&mut scales) {
            let largest = block.iter().fold(0f32, |a, v| if v.abs() > a { v.abs() } else { a });
            if largest == 0.0 || !largest.is_finite() {
                continue;
            }
            *scale = largest / 127.0;
            let inverse = 1.0 / *scale;
            out.iter_mut().zip(block).for_each(|(q, v)| *q = ((v * inverse).round_ties_even() as i32).clamp(-127, 127) as i8);
        }
        Self { rows, cols, values: quantized, scales }
    }

    /// `x Wᵀ` for `x` `(m, cols)`: returns `(m, rows)` row-major.
    pub fn matmul(&self, x: &QuantizedRows) -> Vec<f32> {
        assert_eq!(x.cols, self.cols, "activation width must equal the weight's columns");
        let mut out = vec![0f32; x.rows() * self.rows];
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        simd128::matmul(self, x, &mut out);
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        self.matmul_into(x, &mut out);
        out
    }

    /// The definition, one (row, output) pair at a time.
    // In the SIMD128 build only the tests reach it.
    #[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128", not(test)), allow(dead_code))]
    fn matmul_into(&self, x: &QuantizedRows, out: &mut [f32]) {
        let blocks = self.cols / BLOCK;
        for (m, out_row) in out.chunks_exact_mut(self.rows.max(1)).enumerate() {
            let xq = &x.values[m * self.cols..(m + 1) * self.cols];
            for (n, y) in out_row.iter_mut().enumerate() {
                let wq = &self.values[n * self.cols..(n + 1) * self.cols];
                let ws = &self.scales[n * blocks..(n + 1) * blocks];
                let mut sum = 0f32;
                for ((xb, wb), &scale) in xq.chunks_exact(BLOCK).zip(wq.chunks_exact(BLOCK)).zip(ws) {
                    let dot: i32 = xb.iter().zip(wb).map(|(&a, &b)| a as i32 * b as i32).sum();
                    sum += dot as f32 * scale;
                }
                *y = sum * x.scales[m];
            }
        }
    }
}

/// Bytes per block of 32 values: a little-endian f16 scale, then the values.
fn block_bytes(dtype: GgmlDType) -> Option<usize> {
    match dtype {
        GgmlDType::Q8_0 => Some(2 + BLOCK),
        GgmlDType::Q4_0 => Some(2 + BLOCK / 2),
        _ => None,
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

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    //! Four activation rows against two weight rows at a time: each weight vector loaded (and
    //! widened from i8) is used four times, each activation vector twice.
    use core::arch::wasm32::*;

    use super::{Int8Matrix, QuantizedRows, BLOCK};

    const ROWS: usize = 4;
    const OUTS: usize = 2;

    pub fn matmul(w: &Int8Matrix, x: &QuantizedRows, out: &mut [f32]) {
        let (m_total, n_total, k) = (x.rows(), w.rows, w.cols);
        let blocks = k / BLOCK;
        let mut m = 0;
        while m < m_total {
            let rows = ROWS.min(m_total - m);
            let mut n = 0;
            while n < n_total {
                let outs = OUTS.min(n_total - n);
                if rows == ROWS && outs == OUTS {
                    // SAFETY: the pointers stay inside x.values / w.values: rows m..m+4 and
                    // outputs n..n+2 exist, each `k` long, and k is a multiple of BLOCK.
                    let sums = unsafe { tile(x.values.as_ptr().add(m * k), w.values.as_ptr().add(n * k), &w.scales[n * blocks..], k, blocks) };
                    for (i, row_sums) in sums.iter().enumerate() {
                        for (j, &sum) in row_sums.iter().enumerate() {
                            out[(m + i) * n_total + n + j] = sum * x.scales[m + i];
                        }
                    }
                } else {
                    for i in 0..rows {
                        for j in 0..outs {
                            // SAFETY: as above, for one row and one output.
                            let sum = unsafe { single(x.values.as_ptr().add((m + i) * k), w.values.as_ptr().add((n + j) * k), &w.scales[(n + j) * blocks..], blocks) };
                            out[(m + i) * n_total + n + j] = sum * x.scales[m + i];
                        }
                    }
                }
                n += outs;
            }
            m += rows;
        }
    }

    /// Σ over the block's 32 values of x·w, as four i32 lanes (eight products each).
    #[inline(always)]
    unsafe fn block_dot(x: *const i16, w: *const i8) -> v128 {
        let mut acc = i32x4_dot_i16x8(v128_load(x as *const v128), i16x8_load_extend_i8x8(w as *const i8 as *const _));
        acc = i32x4_add(acc, i32x4_dot_i16x8(v128_load(x.add(8) as *const v128), i16x8_load_extend_i8x8(w.add(8) as *const _)));
        acc = i32x4_add(acc, i32x4_dot_i16x8(v128_load(x.add(16) as *const v128), i16x8_load_extend_i8x8(w.add(16) as *const _)));
        i32x4_add(acc, i32x4_dot_i16x8(v128_load(x.add(24) as *const v128), i16x8_load_extend_i8x8(w.add(24) as *const _)))
    }

    #[inline(always)]
    fn horizontal_sum(v: v128) -> f32 {
        f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
    }

    unsafe fn single(x: *const i16, w: *const i8, scales: &[f32], blocks: usize) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for b in 0..blocks {
            let dot = f32x4_convert_i32x4(block_dot(x.add(b * BLOCK), w.add(b * BLOCK)));
            acc = f32x4_add(acc, f32x4_mul(dot, f32x4_splat(scales[b])));
        }
        horizontal_sum(acc)
    }

    unsafe fn tile(x: *const i16, w: *const i8, scales: &[f32], k: usize, blocks: usize) -> [[f32; OUTS]; ROWS] {
        let mut acc = [[f32x4_splat(0.0); OUTS]; ROWS];
        for b in 0..blocks {
            let offset = b * BLOCK;
            for j in 0..OUTS {
                let wj = w.add(j * k + offset);
                // The weight block, widened once and used for all four rows.
                let w0 = i16x8_load_extend_i8x8(wj as *const _);
                let w1 = i16x8_load_extend_i8x8(wj.add(8) as *const _);
                let w2 = i16x8_load_extend_i8x8(wj.add(16) as *const _);
                let w3 = i16x8_load_extend_i8x8(wj.add(24) as *const _);
                let scale = f32x4_splat(*scales.get_unchecked(j * blocks + b));
                for i in 0..ROWS {
                    let xi = x.add(i * k + offset);
                    let mut dot = i32x4_dot_i16x8(v128_load(xi as *const v128), w0);
                    dot = i32x4_add(dot, i32x4_dot_i16x8(v128_load(xi.add(8) as *const v128), w1));
                    dot = i32x4_add(dot, i32x4_dot_i16x8(v128_load(xi.add(16) as *const v128), w2));
                    dot = i32x4_add(dot, i32x4_dot_i16x8(v128_load(xi.add(24) as *const v128), w3));
                    acc[i][j] = f32x4_add(acc[i][j], f32x4_mul(f32x4_convert_i32x4(dot), scale));
                }
            }
        }
        let mut sums = [[0f32; OUTS]; ROWS];
        for i in 0..ROWS {
            for j in 0..OUTS {
                sums[i][j] = horizontal_sum(acc[i][j]);
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 5) as f32)).collect();
        let tensor = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&tensor, dtype).unwrap()
    }

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
    fn matmul_is_as_exact_as_dequantised_f32() {
        let (rows, cols, m) = (5, 96, 7);
        let q = quantized(GgmlDType::Q8_0, rows, cols);
        let matrix = Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap();
        let weights = q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        let x: Vec<f32> = (0..m * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0).collect();
        let got = matrix.matmul(&QuantizedRows::new(&x, cols));
        let mut reference = vec![0f32; m * rows];
        matrix.matmul_into(&QuantizedRows::new(&x, cols), &mut reference);
        assert_eq!(got, reference);
        for i in 0..m {
            for n in 0..rows {
                let exact: f32 = (0..cols).map(|k| x[i * cols + k] * weights[n][k]).sum();
                let largest = x[i * cols..(i + 1) * cols].iter().fold(0f32, |a, v| a.max(v.abs()));
                let bound = largest / 32767.0 * weights[n].iter().map(|w| w.abs()).sum::<f32>() + 1e-4;
                assert!((got[i * rows + n] - exact).abs() <= bound, "({i}, {n}): {} vs {exact}", got[i * rows + n]);
            }
        }
    }

    #[test]
    fn zero_rows_and_other_types() {
        let q = quantized(GgmlDType::Q8_0, 2, 32);
        let matrix = Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap();
        assert_eq!(matrix.matmul(&QuantizedRows::new(&[0.0; 32], 32)), vec![0.0, 0.0]);
        let f16 = quantized(GgmlDType::F16, 2, 32);
        assert!(Int8Matrix::from_qtensor("t", "w", &f16).unwrap().is_none());
    }

    #[test]
    fn half_floats() {
        for (bits, value) in [(0x3c00u16, 1.0f32), (0xc000, -2.0), (0x0001, 5.960_464_5e-8), (0x7bff, 65504.0), (0, 0.0)] {
            assert_eq!(half_to_f32(bits), value);
        }
        assert!(half_to_f32(0x7e00).is_nan());
    }
}

//! The int8 path for the relaxed-SIMD build: weights interleaved four outputs at a time, and
//! activations as two 7-bit digits, so that one `i32x4.relaxed_dot_i8x16_i7x16_add_s` does 16
//! multiply-adds for four outputs at once and needs no horizontal sum.
//!
//! Why digits: the relaxed dot multiplies signed bytes by bytes in 0..=127 (the "i7" operand;
//! above 127 its result depends on the CPU). Activations are rounded per row to ±8191 (14 bits,
//! close to the plain path's 16 and far finer than Q8_0's weights), offset by [`ZERO_POINT`] to
//! 1..=16383 and split into a high and a low digit: `x = 128·high + low − ZERO_POINT`. Each block's
//! integer dot is then `128·Σw·high + Σw·low − ZERO_POINT·Σw`, the last term precomputed per
//! block. Every product and sum is an exact integer below 2³¹ (16383 × 127 × 32 < 2²⁷), so the SIMD
//! kernel and `InterleavedMatrix::matmul_scalar` agree to the last bit in the integers; the f32
//! sums run in the same order (the SIMD kernel may fuse their multiply-add: `f32x4.relaxed_madd`).
//!
//! Layout: output `n` belongs to group `n / 4`; step `t` of a group is 16 bytes holding, for each of
//! its four outputs in turn, the weights `k = 4t .. 4t + 4`. The dot of that vector with the four
//! activation digits `4t .. 4t + 4` splatted to every lane gives each output's partial sum in its
//! own lane.

use super::{Int8Matrix, BLOCK};

/// Outputs per group: one per i32 lane.
const GROUP: usize = 4;
/// Columns per step: the bytes one i32 lane sums.
const STEP: usize = 4;
/// Steps per quantisation block.
const STEPS_PER_BLOCK: usize = BLOCK / STEP;
/// Activations are rounded to ±[`LARGEST`] and offset by this, which keeps both digits in 0..=127.
const ZERO_POINT: i32 = 8192;
const LARGEST: f32 = 8191.0;

/// A quantised `(rows, cols)` weight in the interleaved layout (rows padded to a multiple of 4
/// with zero weights).
pub struct InterleavedMatrix {
    rows: usize,
    cols: usize,
    /// `groups × cols / 4 × 16` bytes, see the module's comment.
    values: Vec<i8>,
    /// `groups × blocks × 4`: output `4g + j`'s scale for block `b` at `(g · blocks + b) · 4 + j`.
    scales: Vec<f32>,
    /// Same layout: `−ZERO_POINT × Σ` of the block's integer weights, where each block's low-digit
    /// dot starts.
    offsets: Vec<i32>,
}

/// Activations per row as `128·high + low − ZERO_POINT`, times the row's scale.
pub struct DigitRows {
    cols: usize,
    low: Vec<u8>,
    high: Vec<u8>,
    scales: Vec<f32>,
}

impl DigitRows {
    /// `x`: `rows × cols` f32, row-major.
    pub fn new(x: &[f32], cols: usize) -> Self {
        let rows = if cols == 0 { 0 } else { x.len() / cols };
        // Digits of zero, so that a row left out below contributes exactly nothing.
        let mut low = vec![(ZERO_POINT % 128) as u8; rows * cols];
        let mut high = vec![(ZERO_POINT / 128) as u8; rows * cols];
        let mut scales = vec![0f32; rows];
        for (m, row) in x.chunks_exact(cols.max(1)).enumerate() {
            let largest = largest_magnitude(row);
            if !largest.is_finite() {
                // As QuantizedRows: a NaN scale marks the row, and the caller refuses it
                // (rounded, inf and NaN would become finite integers and a wrong score).
                scales[m] = f32::NAN;
                continue;
            }
            if largest == 0.0 {
                continue;
            }
            let scale = largest / LARGEST;
            let span = m * cols..(m + 1) * cols;
            split(row, 1.0 / scale, &mut low[span.clone()], &mut high[span]);
            scales[m] = scale;
        }
        Self { cols, low, high, scales }
    }

    /// Rows known to lie in [−1, 1] (no search for the largest value), whose true values are
    /// `x × row_scales`: attention's probabilities before their division by the row sum.
    pub fn in_unit_range(x: &[f32], cols: usize, row_scales: &[f32]) -> Self {
        let rows = row_scales.len();
        assert_eq!(x.len(), rows * cols, "one scale per row");
        let mut low = vec![0u8; rows * cols];
        let mut high = vec![0u8; rows * cols];
        for (m, row) in x.chunks_exact(cols.max(1)).enumerate() {
            let span = m * cols..(m + 1) * cols;
            split(row, LARGEST, &mut low[span.clone()], &mut high[span]);
        }
        // A non-finite scale (a fully masked row) would make NaN of every product: zero instead.
        let scales = row_scales.iter().map(|s| if s.is_finite() { s / LARGEST } else { 0.0 }).collect();
        Self { cols, low, high, scales }
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// Whether every row was finite (see [`DigitRows::new`]).
    pub fn all_finite(&self) -> bool {
        self.scales.iter().all(|scale| scale.is_finite())
    }
}

/// Rounds `row × inverse` to ±LARGEST and writes its two digits. Written to vectorise: ties to
/// even is wasm's `f32.nearest` (`round` is a libm call), the cast saturates (NaN gives 0), and
/// the clamp is on integers.
#[inline(always)]
fn split(row: &[f32], inverse: f32, low: &mut [u8], high: &mut [u8]) {
    for ((v, l), h) in row.iter().zip(low).zip(high) {
        let offset = ((v * inverse).round_ties_even() as i32).clamp(-(LARGEST as i32), LARGEST as i32) + ZERO_POINT;
        *l = (offset & 127) as u8;
        *h = (offset >> 7) as u8;
    }
}

/// The largest |v| of a row, NaN if any value is NaN (so that a non-finite row is seen: the
/// quantisers would round NaN to a finite integer), in eight lanes so that it vectorises:
/// `f32::max` does not, on wasm. A lane that holds NaN keeps it (`v > NaN` is false).
#[inline(always)]
pub(crate) fn largest_magnitude(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let v = v.abs();
            *lane = if v > *lane || v.is_nan() { v } else { *lane };
        }
    }
    tail.iter().map(|v| v.abs()).chain(lanes).fold(0f32, |a, v| if v > a || v.is_nan() { v } else { a })
}

impl InterleavedMatrix {
    pub fn new(matrix: &Int8Matrix) -> Self {
        let (rows, cols) = (matrix.rows, matrix.cols);
        let groups = rows.div_ceil(GROUP);
        let (steps, blocks) = (cols / STEP, cols / BLOCK);
        let mut values = vec![0i8; groups * steps * GROUP * STEP];
        let mut scales = vec![0f32; groups * blocks * GROUP];
        let mut offsets = vec![0i32; groups * blocks * GROUP];
        for n in 0..rows {
            let (g, j) = (n / GROUP, n % GROUP);
            let row = &matrix.values[n * cols..(n + 1) * cols];
            for (t, four) in row.chunks_exact(STEP).enumerate() {
                let at = ((g * steps + t) * GROUP + j) * STEP;
                values[at..at + STEP].copy_from_slice(four);
            }
            for (b, block) in row.chunks_exact(BLOCK).enumerate() {
                let at = (g * blocks + b) * GROUP + j;
                scales[at] = matrix.scales[n * blocks + b];
                offsets[at] = -ZERO_POINT * block.iter().map(|&v| v as i32).sum::<i32>();
            }
        }
        Self { rows, cols, values, scales, offsets }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `x Wᵀ` for `x` `(m, cols)`: returns `(m, rows)` row-major.
    pub fn matmul(&self, x: &DigitRows) -> Vec<f32> {
        assert_eq!(x.cols, self.cols, "activation width must equal the weight's columns");
        let mut out = vec![0f32; x.rows() * self.rows];
        kernel(self, x, &mut out);
        out
    }

    /// The same arithmetic one lane at a time: the definition the relaxed-SIMD kernel follows.
    // In the relaxed-SIMD build only the tests reach it.
    #[cfg_attr(all(target_arch = "wasm32", target_feature = "relaxed-simd", not(test)), allow(dead_code))]
    fn matmul_scalar(&self, x: &DigitRows, out: &mut [f32]) {
        let (cols, steps, blocks) = (self.cols, self.cols / STEP, self.cols / BLOCK);
        for m in 0..x.rows() {
            let (low, high) = (&x.low[m * cols..(m + 1) * cols], &x.high[m * cols..(m + 1) * cols]);
            for g in 0..self.rows.div_ceil(GROUP) {
                let mut sums = [0f32; GROUP];
                for b in 0..blocks {
                    let at = (g * blocks + b) * GROUP;
                    let mut low_dot: [i32; GROUP] = self.offsets[at..at + GROUP].try_into().expect("a group's offsets");
                    let mut high_dot = [0i32; GROUP];
                    for t in b * STEPS_PER_BLOCK..(b + 1) * STEPS_PER_BLOCK {
                        let step = &self.values[(g * steps + t) * GROUP * STEP..][..GROUP * STEP];
                        for j in 0..GROUP {
                            for i in 0..STEP {
                                let w = step[j * STEP + i] as i32;
                                low_dot[j] += w * low[t * STEP + i] as i32;
                                high_dot[j] += w * high[t * STEP + i] as i32;
                            }
                        }
                    }
                    for j in 0..GROUP {
                        let dot = (high_dot[j] << 7) + low_dot[j];
                        sums[j] += dot as f32 * self.scales[at + j];
                    }
                }
                for (j, sum) in sums.iter().enumerate() {
                    let n = g * GROUP + j;
                    if n < self.rows {
                        out[m * self.rows + n] = sum * x.scales[m];
                    }
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
use relaxed::matmul as kernel;

#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
fn kernel(w: &InterleavedMatrix, x: &DigitRows, out: &mut [f32]) {
    w.matmul_scalar(x, out);
}

#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
mod relaxed {
    //! Two activation rows against two groups (eight outputs) at a time: each weight vector is
    //! used for both rows, each splatted digit for both groups; 8 dots per 4 loads and 4 splats.
    use core::arch::wasm32::*;

    use super::{DigitRows, InterleavedMatrix, BLOCK, GROUP, STEP, STEPS_PER_BLOCK};

    const ROWS: usize = 2;
    const GROUPS: usize = 2;

    pub fn matmul(w: &InterleavedMatrix, x: &DigitRows, out: &mut [f32]) {
        let (m_total, groups) = (x.rows(), w.rows.div_ceil(GROUP));
        let mut m = 0;
        while m < m_total {
            let mut g = 0;
            while g < groups {
                // SAFETY (each call): rows m.. and groups g.. exist for the counts passed, and every
                // offset the tile reads stays inside x's and w's vectors (cols is a multiple of BLOCK).
                match (m_total - m >= ROWS, groups - g >= GROUPS) {
                    (true, true) => unsafe { tile::<ROWS, GROUPS>(w, x, m, g, out) },
                    (true, false) => unsafe { tile::<ROWS, 1>(w, x, m, g, out) },
                    (false, true) => unsafe { tile::<1, GROUPS>(w, x, m, g, out) },
                    (false, false) => unsafe { tile::<1, 1>(w, x, m, g, out) },
                }
                g += if groups - g >= GROUPS { GROUPS } else { 1 };
            }
            m += if m_total - m >= ROWS { ROWS } else { 1 };
        }
    }

    #[inline(always)]
    unsafe fn tile<const R: usize, const G: usize>(w: &InterleavedMatrix, x: &DigitRows, m: usize, g: usize, out: &mut [f32]) {
        let (cols, steps, blocks) = (w.cols, w.cols / STEP, w.cols / BLOCK);
        let values = w.values.as_ptr();
        let (low, high) = (x.low.as_ptr(), x.high.as_ptr());
        let mut sums = [[f32x4_splat(0.0); G]; R];
        for b in 0..blocks {
            let mut low_dot = [[i32x4_splat(0); G]; R];
            for gi in 0..G {
                let offsets = v128_load(w.offsets.as_ptr().add(((g + gi) * blocks + b) * GROUP) as *const v128);
                for dot in low_dot.iter_mut() {
                    dot[gi] = offsets;
                }
            }
            let mut high_dot = [[i32x4_splat(0); G]; R];
            for t in b * STEPS_PER_BLOCK..(b + 1) * STEPS_PER_BLOCK {
                let mut weights = [i32x4_splat(0); G];
                for (gi, v) in weights.iter_mut().enumerate() {
                    *v = v128_load(values.add(((g + gi) * steps + t) * GROUP * STEP) as *const v128);
                }
                for r in 0..R {
                    let at = (m + r) * cols + t * STEP;
                    let l = v128_load32_splat(low.add(at) as *const u32);
                    let h = v128_load32_splat(high.add(at) as *const u32);
                    for gi in 0..G {
                        low_dot[r][gi] = i32x4_relaxed_dot_i8x16_i7x16_add(weights[gi], l, low_dot[r][gi]);
                        high_dot[r][gi] = i32x4_relaxed_dot_i8x16_i7x16_add(weights[gi], h, high_dot[r][gi]);
                    }
                }
            }
            for gi in 0..G {
                let at = ((g + gi) * blocks + b) * GROUP;
                let scales = v128_load(w.scales.as_ptr().add(at) as *const v128);
                for r in 0..R {
                    let dot = i32x4_add(i32x4_shl(high_dot[r][gi], 7), low_dot[r][gi]);
                    sums[r][gi] = f32x4_relaxed_madd(f32x4_convert_i32x4(dot), scales, sums[r][gi]);
                }
            }
        }
        for r in 0..R {
            let scale = f32x4_splat(*x.scales.get_unchecked(m + r));
            for gi in 0..G {
                let y = f32x4_mul(sums[r][gi], scale);
                let first = (g + gi) * GROUP;
                let row = &mut out[(m + r) * w.rows..(m + r + 1) * w.rows];
                if first + GROUP <= w.rows {
                    v128_store(row.as_mut_ptr().add(first) as *mut v128, y);
                } else {
                    let lanes: [f32; GROUP] = core::mem::transmute(y);
                    for (j, &lane) in lanes.iter().enumerate().take(w.rows - first) {
                        row[first + j] = lane;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::QuantizedRows;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 5) as f32)).collect();
        QTensor::quantize(&Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap(), dtype).unwrap()
    }

    #[test]
    fn digits_hold_each_value() {
        let x = [0.0, 1.0, -1.0, 0.5, -0.25, 1e-4, 0.999];
        let rows = DigitRows::new(&x, x.len());
        for (k, &v) in x.iter().enumerate() {
            let offset = 128 * rows.high[k] as i32 + rows.low[k] as i32;
            assert!(rows.high[k] <= 127 && rows.low[k] <= 127, "digits of {v} stay in 0..=127");
            let back = (offset - ZERO_POINT) as f32 * rows.scales[0];
            assert!((back - v).abs() <= 0.5 / LARGEST + 1e-7, "{v} came back as {back}");
        }
    }

    #[test]
    fn equals_the_row_major_int8_path_within_the_activation_rounding() {
        // Rows not a multiple of 4 (padding lanes) and a row count not a multiple of the tile.
        for (dtype, rows, cols, m) in [(GgmlDType::Q8_0, 9, 96, 5), (GgmlDType::Q4_0, 4, 64, 2), (GgmlDType::Q8_0, 1, 32, 3)] {
            let q = quantized(dtype, rows, cols);
            let matrix = Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap();
            let interleaved = InterleavedMatrix::new(&matrix);
            let weights = q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
            let x: Vec<f32> = (0..m * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0).collect();
            let digits = DigitRows::new(&x, cols);
            let got = interleaved.matmul(&digits);
            let mut scalar = vec![0f32; m * rows];
            interleaved.matmul_scalar(&digits, &mut scalar);
            assert_eq!(got, scalar);
            let plain = matrix.matmul(&QuantizedRows::new(&x, cols));
            for i in 0..m {
                let largest = x[i * cols..(i + 1) * cols].iter().fold(0f32, |a, v| a.max(v.abs()));
                for n in 0..rows {
                    let exact: f32 = (0..cols).map(|k| x[i * cols + k] * weights[n][k]).sum();
                    // Rounding to ±8191 moves each activation by at most half a step.
                    let bound = 0.5 * largest / LARGEST * weights[n].iter().map(|w| w.abs()).sum::<f32>() + 1e-4;
                    let (value, row_major) = (got[i * rows + n], plain[i * rows + n]);
                    assert!((value - exact).abs() <= bound, "{dtype:?} ({i}, {n}): {value} vs exact {exact}");
                    assert!((value - row_major).abs() <= bound, "{dtype:?} ({i}, {n}): {value} vs row-major {row_major}");
                }
            }
        }
    }

    #[test]
    fn zero_rows_give_zero() {
        let matrix = Int8Matrix::from_qtensor("t", "w", &quantized(GgmlDType::Q8_0, 3, 32)).unwrap().unwrap();
        assert_eq!(InterleavedMatrix::new(&matrix).matmul(&DigitRows::new(&[0.0; 64], 32)), vec![0.0; 6]);
    }
}

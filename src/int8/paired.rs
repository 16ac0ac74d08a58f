//! The paired layout, for the AVX2 kernel (x86-64): 16-bit integer products with `vpmaddwd`
//! (`_mm256_madd_epi16`: 16 multiply-adds per instruction, twice an 8-wide f32 FMA's), weights in
//! column pairs of eight outputs.
//!
//! Why one scale per row rather than Q8_0's per block: the i32 sums can then run 128 columns
//! between conversions to f32, and the f32 totals stay out of the hot loop (per-block scales would
//! add a conversion, a scale load and a multiply-add per 32 columns and accumulator, and the f32
//! totals would compete with the eight integer accumulators for AVX2's 16 registers); the two were
//! not measured against each other. So a Q8_0/Q4_0 row's values `scale_b × q` are rounded once,
//! at load, to integers within ±[`WEIGHT_LIMIT`] (12 bits, finer than Q8_0's 8 bits per block
//! unless a block's largest weight is 16× below its row's). Activations are rounded per row
//! to ±[`ACTIVATION_LIMIT`] (14 bits, as the relaxed-SIMD kernel's). Then integer sums run along
//! whole rows, converted to f32 only every [`FLUSH`] columns: 128 × 8191 × 2047 < 2³¹, so no i32
//! lane can overflow whatever the input.
//!
//! Layout: output `n` belongs to group `n / 8`; step `p` of a group is 16 `i16`: for each of its
//! eight outputs, the weights of columns `2p` and `2p + 1`. `vpmaddwd` of that vector with
//! the activations `2p, 2p + 1` broadcast to every lane gives each output's two products, summed,
//! in its own lane: no horizontal sums. The kernels are in [`super::kernels`].

use super::panel::Panel;
use super::quantize::{largest_magnitude, round_clamped};
use super::{kernels, Int8Matrix, Kernel, QuantizedRows, BLOCK};

/// Outputs per group: one per i32 lane of a 256-bit vector.
pub(in crate::int8) const GROUP: usize = 8;
/// Weights are rounded per row to ±this (12 bits).
pub const WEIGHT_LIMIT: i32 = 2047;
/// Activations are rounded per row to ±this (14 bits).
pub const ACTIVATION_LIMIT: i32 = 8191;
/// Columns summed in i32 before the sum moves to f32: FLUSH × 8191 × 2047 < 2³¹.
pub(in crate::int8) const FLUSH: usize = 128;
const _: () = assert!(FLUSH as i64 * ACTIVATION_LIMIT as i64 * WEIGHT_LIMIT as i64 <= i32::MAX as i64);
/// Rows of activations per tile, and groups of outputs per tile (4 × 16 outputs).
pub(in crate::int8) const TILE_ROWS: usize = 4;
pub(in crate::int8) const TILE_GROUPS: usize = 2;
/// Rows one weight panel is reused for while it sits in cache (their activations stay in L2).
pub(in crate::int8) const ROWS_PER_BLOCK: usize = 64;

/// The paired layout (rows padded with zeros to a multiple of 16): `values` is
/// `groups × cols / 2 × 16`, see the module's comment; `scales` has one per output row (padding
/// included: 0): weight `[n][k] ≈ integer × scales[n]`.
pub struct Paired;

/// A quantised `(rows, cols)` weight as 12-bit integers with one scale per row, in pairs of columns.
pub type PairedMatrix = Panel<i16, Paired>;

impl PairedMatrix {
    /// The blocks of a Q8_0/Q4_0 weight, each row rounded once more to one scale.
    pub fn new(matrix: &Int8Matrix) -> Self {
        let (rows, cols) = (matrix.rows, matrix.cols);
        let blocks = cols / BLOCK;
        let mut values = vec![0f32; rows * cols];
        for (k, v) in values.iter_mut().enumerate() {
            *v = matrix.values[k] as f32 * matrix.scales[(k / cols) * blocks + (k % cols) / BLOCK];
        }
        Self::from_rows(&values, rows, cols)
    }

    /// An f32 `(rows, cols)` matrix (`cols` even), each row rounded to ±[`WEIGHT_LIMIT`] times
    /// its scale. Non-finite rows become zero (the model never makes them from finite weights).
    pub fn from_rows(weights: &[f32], rows: usize, cols: usize) -> Self {
        assert!(cols % 2 == 0 && weights.len() == rows * cols, "from_rows wants (rows, even cols)");
        let groups = rows.div_ceil(GROUP * TILE_GROUPS) * TILE_GROUPS;
        let mut values = vec![0i16; groups * GROUP * cols];
        let mut scales = vec![0f32; groups * GROUP];
        pack_rows(weights, cols, &mut values, &mut scales);
        Self { rows, cols, values, scales, layout: Paired }
    }

    /// Activations as this kernel needs them (rounded to ±[`ACTIVATION_LIMIT`]).
    pub fn quantize(x: &[f32], cols: usize) -> QuantizedRows {
        QuantizedRows::with_limit(x, cols, ACTIVATION_LIMIT)
    }

    /// Rows known to lie in [−1, 1] whose true values are `x × row_scales` (attention's
    /// probabilities before their division by the row's sum), as [`PairedMatrix::quantize`] would
    /// round them with a largest value of 1.
    pub fn quantize_unit_range(x: &[f32], cols: usize, row_scales: &[f32]) -> QuantizedRows {
        QuantizedRows::in_unit_range(x, cols, row_scales, ACTIVATION_LIMIT)
    }

    /// `x Wᵀ + bias` for `x` `(m, cols)` (`bias` empty, or one per output): `(m, rows)`
    /// row-major, on as many threads as rayon has. The bias is added as each tile is written.
    pub fn matmul(&self, x: &QuantizedRows, bias: &[f32]) -> Vec<f32> {
        let mut out = self.output(x.rows(), x.cols);
        if out.is_empty() {
            return out;
        }
        // One contiguous share of the rows per thread: rayon's finer splits cost more in waking
        // threads than they gained (futex wake-ups were a tenth of a 1-thread profile).
        let threads = rayon::current_num_threads().max(1);
        let share = x.rows().div_ceil(threads).div_ceil(ROWS_PER_BLOCK) * ROWS_PER_BLOCK;
        crate::cpu::for_each_chunk(&mut out, share * self.rows, |i, out| self.rows_into(x, i * share, bias, out));
        out
    }

    /// `x Wᵀ` on this thread alone (for callers that share the threads out themselves).
    pub fn matmul_here(&self, x: &QuantizedRows) -> Vec<f32> {
        let mut out = self.output(x.rows(), x.cols);
        self.rows_into(x, 0, &[], &mut out);
        out
    }

    /// Every product goes through here: the one place its inputs are checked.
    fn rows_into(&self, x: &QuantizedRows, first: usize, bias: &[f32], out: &mut [f32]) {
        assert_eq!(x.cols, self.cols, "activation width must equal the weight's columns");
        assert!(x.limit <= ACTIVATION_LIMIT, "activations rounded for another kernel");
        assert!(bias.is_empty() || bias.len() == self.rows, "one bias per output, or none");
        if out.is_empty() {
            return;
        }
        if Kernel::detect() == Kernel::Avx2 {
            // SAFETY: the CPU has AVX2 (that is what detect() checks).
            unsafe { kernels::avx2::paired(self, x, first, bias, out) }
        } else {
            kernels::scalar::paired(self, x, first, bias, out);
        }
    }
}

crate::cpu::multiversioned! {
    /// Rounds each row of `weights` to ±WEIGHT_LIMIT times its scale, into the paired layout.
    fn pack_rows(weights: &[f32], cols: usize, values: &mut [i16], scales: &mut [f32]) {
        for (n, row) in weights.chunks_exact(cols.max(1)).enumerate() {
            let largest = largest_magnitude(row);
            if largest == 0.0 || !largest.is_finite() {
                continue; // stays zero, scale 0
            }
            let scale = largest / WEIGHT_LIMIT as f32;
            let inverse = 1.0 / scale;
            let (group, lane) = (n / GROUP, n % GROUP);
            let out = &mut values[group * GROUP * cols..(group + 1) * GROUP * cols];
            for (p, pair) in row.chunks_exact(2).enumerate() {
                for (j, v) in pair.iter().enumerate() {
                    out[p * 2 * GROUP + lane * 2 + j] = round_clamped(v * inverse, WEIGHT_LIMIT as f32) as i16;
                }
            }
            scales[n] = scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::{activations, quantized};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn within_the_rounding_of_row_scales() {
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let (rows, cols, m) = (20, 256, 9);
            let q = quantized(dtype, rows, cols);
            let matrix = PairedMatrix::new(&Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap());
            let weights = q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
            let x = activations(m, cols);
            let got = crate::cpu::with_baseline(|| matrix.matmul(&PairedMatrix::quantize(&x, cols), &[]));
            for i in 0..m {
                let row = &x[i * cols..(i + 1) * cols];
                let x_step = row.iter().fold(0f32, |a, v| a.max(v.abs())) / ACTIVATION_LIMIT as f32;
                for n in 0..rows {
                    let exact: f32 = row.iter().zip(&weights[n]).map(|(a, b)| a * b).sum();
                    let w_step = weights[n].iter().fold(0f32, |a, v| a.max(v.abs())) / WEIGHT_LIMIT as f32;
                    // Each product is off by at most half a step of each factor.
                    let bound: f32 = row.iter().zip(&weights[n]).map(|(a, b)| (a.abs() * w_step + b.abs() * x_step + x_step * w_step) / 2.0).sum::<f32>() + 1e-4;
                    let y = got[i * rows + n];
                    assert!((y - exact).abs() <= bound, "{dtype:?} ({i}, {n}): {y} vs {exact}, bound {bound}");
                }
            }
        }
    }

    #[test]
    fn zero_rows_and_extreme_values_do_not_overflow() {
        let cols = 1536;
        let mut x = vec![0f32; 2 * cols];
        x[cols..].iter_mut().enumerate().for_each(|(k, v)| *v = if k % 2 == 0 { 3e4 } else { -3e4 });
        // A weight matrix of its extreme value everywhere, with the signs that maximise the sum.
        let values: Vec<f32> = (0..16 * cols).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let q = QTensor::quantize(&Tensor::from_vec(values, (16, cols), &Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
        let matrix = PairedMatrix::new(&Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap());
        let y = matrix.matmul(&PairedMatrix::quantize(&x, cols), &[]);
        assert!(y[..16].iter().all(|&v| v == 0.0));
        let exact = 3e4 * cols as f32;
        assert!(y[16..].iter().all(|&v| (v - exact).abs() <= exact * 1e-3), "{:?} vs {exact}", &y[16..20]);
    }
}

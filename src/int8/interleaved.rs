//! The interleaved layout, for the relaxed-SIMD and AVX2 kernels: weights interleaved four
//! outputs at a time, and activations as one 7-bit digit each ([`DigitRows`]), so that each 16
//! multiply-adds for four outputs are one dot of signed bytes with bytes in 0..=127 and need no
//! horizontal sum.
//!
//! Why one 7-bit digit: the relaxed dot multiplies signed bytes by bytes in 0..=127 (the "i7"
//! operand; above 127 its result depends on the CPU). Without AVX-VNNI it costs a `pmaddubsw`, a
//! `pmaddwd` and an add (BENCHMARKS.md, issue 34), so the two 7-bit digits the 14-bit
//! activations were split into before cost two of those per product. One digit with a scale and
//! zero point per block of 32 (where the weights' Q8_0 scales change anyway) keeps the error
//! within the acceptance (BENCHMARKS.md: max |Δlogit| per fixture, nDCG on the default model).
//! Each block's integer dot is `Σw·digit − zero_point·Σw`, `Σw` kept per block beside the
//! weights' scales. Every product and sum is an exact integer (|Σw·digit| ≤ 32 × 127 × 127 <
//! 2²⁰), so the SIMD kernels and their scalar definition agree to the last bit in the integers;
//! the f32 sums run in the same order with the same operations (no fused multiply-add), so
//! they agree to the last bit in f32 too: the same logits on every CPU. The kernels are in
//! [`super::kernels`].
//!
//! Layout: output `n` belongs to group `n / width`; step `t` of a group is `4 × width` bytes holding,
//! for each of its outputs in turn, the weights `k = 4t .. 4t + 4`. The dot of that vector with the
//! four activation digits `4t .. 4t + 4` splatted to every lane gives each output's partial sum in
//! its own lane. The width is the kernel's i32 lanes: 4 (relaxed SIMD's 128 bits; AVX2, which
//! takes two steps per 256-bit vector) or 16 (AVX-512 VNNI, whose `vpdpbusd` takes one step of 16
//! outputs per 512-bit vector, so that its sums need no shuffles). The numbers do not depend on it.

use super::kernels;
use super::panel::Panel;
use super::{DigitRows, Int8Matrix, BLOCK};

/// Outputs per group for the 128-bit kernels (relaxed SIMD, AVX2): one per i32 lane.
pub(in crate::int8) const GROUP: usize = 4;
/// Outputs per group for AVX-512 VNNI: one per i32 lane of a 512-bit vector.
pub(in crate::int8) const WIDE_GROUP: usize = 16;
/// Columns per step: the bytes one i32 lane sums.
pub(in crate::int8) const STEP: usize = 4;
/// Steps per quantisation block.
pub(in crate::int8) const STEPS_PER_BLOCK: usize = BLOCK / STEP;
/// Rows of activations a thread's share is a multiple of.
const ROWS_PER_TASK: usize = 16;

/// The interleaved layout (rows padded to a multiple of the group width with zero weights):
/// `values` is `groups × cols / 4 × 4 · width` bytes, see the module's comment; `scales` is
/// `groups × blocks × width`, output `width · g + j`'s scale for block `b` at
/// `(g · blocks + b) · width + j`.
pub struct Interleaved {
    /// Outputs per group: [`GROUP`] or [`WIDE_GROUP`].
    pub(in crate::int8) width: usize,
    /// Laid out as the scales: the sum of each block's integer weights (for the zero points).
    pub(in crate::int8) weight_sums: Vec<i32>,
}

/// A quantised `(rows, cols)` weight in the interleaved layout.
pub type InterleavedMatrix = Panel<i8, Interleaved>;

impl InterleavedMatrix {
    /// In the group width of the kernel [`super::Kernel::detect`] picks.
    pub fn new(matrix: &Int8Matrix) -> Self {
        Self::with_width(matrix, super::Kernel::detect().interleaved_width())
    }

    /// With `width` outputs per group ([`GROUP`] or [`WIDE_GROUP`]).
    pub(in crate::int8) fn with_width(matrix: &Int8Matrix, width: usize) -> Self {
        let (rows, cols) = (matrix.rows, matrix.cols);
        let groups = rows.div_ceil(width);
        let (steps, blocks) = (cols / STEP, cols / BLOCK);
        let mut values = vec![0i8; groups * steps * width * STEP];
        let mut scales = vec![0f32; groups * blocks * width];
        let mut weight_sums = vec![0i32; groups * blocks * width];
        for n in 0..rows {
            let (g, j) = (n / width, n % width);
            let row = &matrix.values[n * cols..(n + 1) * cols];
            for (t, four) in row.chunks_exact(STEP).enumerate() {
                let at = ((g * steps + t) * width + j) * STEP;
                values[at..at + STEP].copy_from_slice(four);
            }
            for (b, block) in row.chunks_exact(BLOCK).enumerate() {
                let at = (g * blocks + b) * width + j;
                scales[at] = matrix.scales[n * blocks + b];
                // |Σ| ≤ 32 × 128: an i16 too, which the AVX-512 kernel relies on.
                weight_sums[at] = block.iter().map(|&v| v as i32).sum::<i32>();
            }
        }
        Self { rows, cols, values, scales, layout: Interleaved { width, weight_sums } }
    }

    /// `x Wᵀ (+ bias)` for `x` `(m, cols)`: returns `(m, rows)` row-major, natively on as many
    /// threads as rayon has (a contiguous share of the rows each). The kernel adds the bias (one
    /// per output) as it stores each output.
    pub fn matmul(&self, x: &DigitRows, bias: Option<&[f32]>) -> Vec<f32> {
        // The kernels read `rows` biases.
        assert!(bias.is_none_or(|bias| bias.len() == self.rows), "one bias per output");
        let mut out = self.output(x.rows(), x.cols);
        if out.is_empty() {
            return out;
        }
        #[cfg(target_arch = "wasm32")]
        let threads = 1;
        #[cfg(not(target_arch = "wasm32"))]
        let threads = rayon::current_num_threads().max(1);
        let share = x.rows().div_ceil(threads).div_ceil(ROWS_PER_TASK) * ROWS_PER_TASK;
        crate::cpu::for_each_chunk(&mut out, share * self.rows, |i, out| kernels::interleaved(self, x, i * share, bias, out));
        out
    }

    /// `x Wᵀ` into `out` (`x`'s rows × this weight's rows), which the kernel overwrites, on this
    /// thread alone (for callers that share the threads out themselves): a buffer the caller
    /// reuses (attention's scores, chunk after chunk) needs no fresh zeroed allocation each time,
    /// and a result can land where it is wanted (attention's context).
    pub fn matmul_into(&self, x: &DigitRows, out: &mut [f32]) {
        assert_eq!((out.len(), x.cols), (x.rows() * self.rows, self.cols), "out must hold x's rows × this weight's rows");
        kernels::interleaved(self, x, 0, None, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::quantized;
    use crate::int8::QuantizedRows;
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;

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
            let got = interleaved.matmul(&digits, None);
            let mut scalar = vec![0f32; m * rows];
            kernels::scalar::interleaved(&interleaved, &digits, 0, None, &mut scalar);
            assert_eq!(got, scalar);
            // The bias the kernel adds as it stores is the same addition as a pass afterwards.
            let bias: Vec<f32> = (0..rows).map(|n| (n as f32 - 4.0) / 3.0).collect();
            let biased: Vec<f32> = got.chunks_exact(rows).flat_map(|row| row.iter().zip(&bias).map(|(y, b)| y + b)).collect();
            assert_eq!(interleaved.matmul(&digits, Some(&bias)), biased);
            let plain = matrix.matmul(&QuantizedRows::new(&x, cols));
            for i in 0..m {
                for n in 0..rows {
                    let exact: f32 = (0..cols).map(|k| x[i * cols + k] * weights[n][k]).sum();
                    // Rounding to a digit moves each activation by at most half its block's step.
                    let step = |k: usize| digits.blocks[(i * cols + k) / BLOCK].scale;
                    let bound = (0..cols).map(|k| 0.5 * step(k) * weights[n][k].abs()).sum::<f32>() * 1.001 + 1e-4;
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
        assert_eq!(InterleavedMatrix::new(&matrix).matmul(&DigitRows::new(&[0.0; 64], 32), None), vec![0.0; 6]);
    }
}

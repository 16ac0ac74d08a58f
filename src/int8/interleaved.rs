//! The interleaved layout, for the relaxed-SIMD kernel: weights interleaved four outputs at a time, and
//! activations as two 7-bit digits, so that one `i32x4.relaxed_dot_i8x16_i7x16_add_s` does 16
//! multiply-adds for four outputs at once and needs no horizontal sum.
//!
//! Why digits: the relaxed dot multiplies signed bytes by bytes in 0..=127 (the "i7" operand;
//! above 127 its result depends on the CPU). Activations are rounded per row to ±8191 (14 bits,
//! close to the plain path's 16 and far finer than Q8_0's weights), offset by [`ZERO_POINT`] to
//! 1..=16383 and split into a high and a low digit: `x = 128·high + low − ZERO_POINT`. Each block's
//! integer dot is then `128·Σw·high + Σw·low − ZERO_POINT·Σw`, the last term precomputed per
//! block. Every product and sum is an exact integer below 2³¹ (16383 × 127 × 32 < 2²⁷), so the SIMD
//! kernel and its scalar definition agree to the last bit in the integers; the f32 sums run in
//! the same order (the SIMD kernel may fuse their multiply-add: `f32x4.relaxed_madd`). The
//! digits are [`DigitRows`]; the kernels are in [`super::kernels`].
//!
//! Layout: output `n` belongs to group `n / 4`; step `t` of a group is 16 bytes holding, for each of
//! its four outputs in turn, the weights `k = 4t .. 4t + 4`. The dot of that vector with the four
//! activation digits `4t .. 4t + 4` splatted to every lane gives each output's partial sum in its
//! own lane.

use super::kernels;
use super::panel::Panel;
use super::quantize::ZERO_POINT;
use super::{DigitRows, Int8Matrix, BLOCK};

/// Outputs per group: one per i32 lane.
pub(in crate::int8) const GROUP: usize = 4;
/// Columns per step: the bytes one i32 lane sums.
pub(in crate::int8) const STEP: usize = 4;
/// Steps per quantisation block.
pub(in crate::int8) const STEPS_PER_BLOCK: usize = BLOCK / STEP;

/// The interleaved layout (rows padded to a multiple of 4 with zero weights): `values` is
/// `groups × cols / 4 × 16` bytes, see the module's comment; `scales` is `groups × blocks × 4`,
/// output `4g + j`'s scale for block `b` at `(g · blocks + b) · 4 + j`.
pub struct Interleaved {
    /// Laid out as the scales: `−ZERO_POINT × Σ` of the block's integer weights, where each
    /// block's low-digit dot starts.
    pub(in crate::int8) offsets: Vec<i32>,
}

/// A quantised `(rows, cols)` weight in the interleaved layout.
pub type InterleavedMatrix = Panel<i8, Interleaved>;

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
        Self { rows, cols, values, scales, layout: Interleaved { offsets } }
    }

    /// `x Wᵀ` for `x` `(m, cols)`: returns `(m, rows)` row-major.
    pub fn matmul(&self, x: &DigitRows) -> Vec<f32> {
        self.product(x, (x.rows(), x.cols), kernels::interleaved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::quantize::DIGITS_LARGEST;
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
            let got = interleaved.matmul(&digits);
            let mut scalar = vec![0f32; m * rows];
            kernels::scalar::interleaved(&interleaved, &digits, &mut scalar);
            assert_eq!(got, scalar);
            let plain = matrix.matmul(&QuantizedRows::new(&x, cols));
            for i in 0..m {
                let largest = x[i * cols..(i + 1) * cols].iter().fold(0f32, |a, v| a.max(v.abs()));
                for n in 0..rows {
                    let exact: f32 = (0..cols).map(|k| x[i * cols + k] * weights[n][k]).sum();
                    // Rounding to ±8191 moves each activation by at most half a step.
                    let bound = 0.5 * largest / DIGITS_LARGEST * weights[n].iter().map(|w| w.abs()).sum::<f32>() + 1e-4;
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

//! The row-major layout: a Q8_0/Q4_0 weight as read from its blocks ([`super::blocks`]), one
//! output's integers after another with one scale per block of 32. Multiplied by the SIMD128
//! kernel in wasm builds without relaxed SIMD, by its scalar definition elsewhere.

use super::panel::Panel;
use super::{kernels, QuantizedRows};

/// The row-major layout: `values` is `rows × cols`, row `n` holding output feature `n`'s weights;
/// `scales` is `rows × cols / BLOCK`: weight `[n][k]` is `values[n][k] × scales[n][k / BLOCK]`.
pub struct RowMajor;

/// A `(rows, cols)` weight matrix as integers with one f32 scale per block of 32 along `cols`.
pub type Int8Matrix = Panel<i8, RowMajor>;

impl Int8Matrix {
    /// `x Wᵀ` for `x` `(m, cols)`: returns `(m, rows)` row-major.
    pub fn matmul(&self, x: &QuantizedRows) -> Vec<f32> {
        self.product(x, (x.rows(), x.cols), kernels::row_major)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::quantized;
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;

    #[test]
    fn matmul_is_as_exact_as_dequantised_f32() {
        let (rows, cols, m) = (5, 96, 7);
        let q = quantized(GgmlDType::Q8_0, rows, cols);
        let matrix = Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap();
        let weights = q.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        let x: Vec<f32> = (0..m * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0).collect();
        let got = matrix.matmul(&QuantizedRows::new(&x, cols));
        let mut reference = vec![0f32; m * rows];
        kernels::scalar::row_major(&matrix, &QuantizedRows::new(&x, cols), &mut reference);
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
    fn zero_rows_give_zero() {
        let q = quantized(GgmlDType::Q8_0, 2, 32);
        let matrix = Int8Matrix::from_qtensor("t", "w", &q).unwrap().unwrap();
        assert_eq!(matrix.matmul(&QuantizedRows::new(&[0.0; 32], 32)), vec![0.0, 0.0]);
    }
}

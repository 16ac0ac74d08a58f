//! Integer matrix products for quantised linear layers: the weights stay in their GGUF blocks
//! (Q8_0 or Q4_0: 32 integers and one scale per block), activations are quantised at run time,
//! and each block's integer dot product is scaled by the block's scales before it is summed in
//! f32.
//!
//! Two activation forms. [`DigitRows`], for the interleaved layout that relaxed SIMD (wasm) and
//! AVX2 (x86-64) multiply: one 7-bit digit per value with a scale and zero point per block of 32,
//! so each 16 products are one `pmaddubsw`-class dot whether or not the CPU has AVX-VNNI (issue
//! 34; [`interleaved`] says why). Both kernels and their scalar definition give the same f32
//! results bit for bit, so a model scores the same on every CPU and in every browser with relaxed
//! SIMD. [`QuantizedRows`], for the row-major layout of the SIMD128 build (browsers without
//! relaxed SIMD) and the scalar kernel of CPUs without AVX2: 16 bits per row, products by
//! `i32x4.dot_i16x8_s`, as exact as the dequantised f32 path (a row rounded to 1/32767 of its
//! largest value); a block's sum of 32 products stays below 32767 × 127 × 32 < 2³¹.
//!
//! By concern, as ggml lays out its quant types:
//! - [`blocks`]: the Q8_0/Q4_0 block formats (sizes, decoding, Q8_0's rounding, f16 scales);
//! - [`quantize`]: the activation quantisers;
//! - the layouts a weight is kept in: row-major as read ([`row_major`]), interleaved for relaxed
//!   SIMD and AVX2 ([`interleaved`]);
//! - [`kernels`]: one file per instruction set, each tested against its scalar definition;
//! - [`attention`]: attention's two products on the same kernels;
//! - [`Kernel`]: which kernel runs, chosen once by [`Kernel::detect`] and reported by its name.
//!
//! [`Int8Weight`] is whichever layout the detected kernel multiplies.

use candle_core::quantized::QTensor;

use crate::error::Result;

pub mod attention;
pub mod blocks;
mod interleaved;
mod kernel;
mod kernels;
mod panel;
mod quantize;
mod row_major;
pub use blocks::{check_block_scales, BLOCK};
pub use interleaved::InterleavedMatrix;
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))]
pub use kernel::{choose_dot_sequence, interleaved_kernel_agrees, DotSequence};
pub use kernel::Kernel;
pub(crate) use quantize::largest_magnitude;
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))]
pub use quantize::digit_quantiser_agrees;
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))]
pub use blocks::q8_rounding_agrees;
pub use quantize::{DigitRows, QuantizedRows};
pub use row_major::Int8Matrix;

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
            Self::Rows(rows) => rows.all_finite(),
            Self::Digits(rows) => rows.all_finite(),
        }
    }

    /// The largest |scale| (rows' or blocks'), NaN if any is: what [`OutputBound`] needs of the
    /// activations (once per quantisation, for every layer that reads them).
    pub fn largest_scale(&self) -> f64 {
        match self {
            Self::Rows(rows) => largest_magnitude_f64(&rows.scales),
            Self::Digits(rows) => largest_magnitude_f64(rows.blocks.iter().map(|block| block.scale)),
        }
    }
}

/// A bound on an int8 layer's outputs, whatever the integers: at most `per_scale` × the
/// activations' largest scale (taken as at least `least_scale`) + the largest |bias|, in f64 so
/// that the bound itself cannot overflow ([`Int8Weight::output_bound`]).
#[derive(Debug, Clone, Copy)]
pub struct OutputBound {
    per_scale: f64,
    least_scale: f64,
    bias: f64,
}

impl OutputBound {
    /// Whether the outputs for activations of this largest scale ([`Activations::largest_scale`])
    /// are surely finite in f32, so that nobody needs to read them looking for inf or NaN. False
    /// where the bound comes near f32's range (activations past ~1e25): then they must be checked.
    /// f32's largest is 3.4e38: a margin of 1e6 covers every rounding of the f32 sums.
    pub fn proves_finite(&self, largest_activation_scale: f64) -> bool {
        // Not f64::max, which would turn a NaN scale into a finite one.
        let scale = if largest_activation_scale < self.least_scale { self.least_scale } else { largest_activation_scale };
        self.per_scale * scale + self.bias < 1e32
    }
}

/// The largest |value|, NaN if any is (f64::max would drop it: a NaN must fail the bound).
fn largest_magnitude_f64(values: impl IntoIterator<Item = impl std::borrow::Borrow<f32>>) -> f64 {
    values.into_iter().fold(0f64, |a, v| {
        let v = *v.borrow();
        if v.is_nan() || v.abs() as f64 > a {
            v.abs() as f64
        } else {
            a
        }
    })
}

/// A quantised linear weight in the layout of the kernel [`Kernel::detect`] picks: interleaved
/// for relaxed SIMD and AVX2, row-major for SIMD128 and the scalar definitions. Only one form is kept in memory.
pub enum Int8Weight {
    RowMajor(Int8Matrix),
    Interleaved(InterleavedMatrix),
}

impl Int8Weight {
    /// See [`Int8Matrix::from_qtensor`]: `None` for types the int8 path does not take.
    pub fn from_qtensor(file: &str, name: &str, tensor: &QTensor) -> Result<Option<Self>> {
        Ok(Int8Matrix::from_qtensor(file, name, tensor)?.map(|matrix| match Kernel::detect().interleaved() {
            true => Self::Interleaved(InterleavedMatrix::new(&matrix)),
            false => Self::RowMajor(matrix),
        }))
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        match self {
            Self::RowMajor(matrix) => matrix.rows(),
            Self::Interleaved(matrix) => matrix.rows(),
        }
    }

    /// `x` `(m, cols)` f32 row-major, quantised as this kernel needs it: once for every layer
    /// that reads the same input (attention's key and value, and query).
    pub fn quantize(&self, x: &[f32], cols: usize) -> Activations {
        match self {
            Self::RowMajor(_) => Activations::Rows(QuantizedRows::new(x, cols)),
            Self::Interleaved(_) => Activations::Digits(DigitRows::new(x, cols)),
        }
    }

    /// The bound on `x Wᵀ + bias` that [`OutputBound::proves_finite`] completes with the
    /// activations' largest scale: the weight's and bias's part, constant, so computed once (at
    /// load), not on every call.
    pub fn output_bound(&self, bias: &[f32]) -> OutputBound {
        // Weight integers are within ±128 (Q8_0's bytes; Q4_0's nibbles are less).
        const WEIGHT: f64 = 128.0;
        let (per_scale, least_scale) = match self {
            // Digits less the zero point are within ±127; per block, Σ dot × (weight scale ×
            // activation scale), summed over the blocks.
            Self::Interleaved(w) => (w.cols as f64 * WEIGHT * 127.0 * largest_magnitude_f64(&w.scales), 0.0),
            // 16-bit values; per block Σ dot × weight scale, then the sum times the row's scale
            // (below 1 too: the sum before it must stay finite as well, hence a scale of at least 1).
            Self::RowMajor(w) => (w.cols as f64 * WEIGHT * 32767.0 * largest_magnitude_f64(&w.scales), 1.0),
        };
        OutputBound { per_scale, least_scale, bias: largest_magnitude_f64(bias) }
    }

    /// `x Wᵀ + bias`: the interleaved kernels add the bias as they store each output; on the
    /// row-major layout it is added here, in place, rather than by a broadcast that allocates.
    pub fn matmul(&self, x: &Activations, bias: &[f32]) -> Vec<f32> {
        match (self, x) {
            (Self::RowMajor(matrix), Activations::Rows(x)) => {
                let mut out = matrix.matmul(x);
                for row in out.chunks_exact_mut(bias.len().max(1)) {
                    row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
                }
                out
            }
            (Self::Interleaved(matrix), Activations::Digits(x)) => matrix.matmul(x, Some(bias)),
            // Every layer has the same form (Kernel::detect decides it).
            _ => unreachable!("activations quantised for another int8 layout"),
        }
    }
}

/// Made-up weights and activations for the checks that a kernel equals its definition: the
/// tests', and the wasm module's test hook ([`interleaved_kernel_agrees`]).
pub(crate) mod samples {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// A `(rows, cols)` weight of varied values, quantised to `dtype`.
    pub fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 5) as f32)).collect();
        QTensor::quantize(&Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("rows × cols values"), dtype).expect("a quantisable shape")
    }

    /// `(m, cols)` activations, every 13th eight times larger.
    pub fn activations(m: usize, cols: usize) -> Vec<f32> {
        (0..m * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0 * if i % 13 == 0 { 8.0 } else { 1.0 }).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    pub use super::samples::{activations, quantized};

    /// Asserts that a SIMD `kernel` gives its scalar `definition`'s results bit for bit, for a
    /// weight of each (type, rows, cols) in the `layout` and `m` rows of activations quantised by
    /// `quantize`. Shapes should cover whole tiles and the rows and outputs past them.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn assert_equals_definition<W, X>(
        shapes: &[(GgmlDType, usize, usize, usize)],
        layout: impl Fn(super::Int8Matrix) -> W,
        quantize: impl Fn(&[f32], usize) -> X,
        kernel: fn(&W, &X, &mut [f32]),
        definition: fn(&W, &X, &mut [f32]),
    ) {
        for &(dtype, rows, cols, m) in shapes {
            let weight = layout(super::Int8Matrix::from_qtensor("t", "w", &quantized(dtype, rows, cols)).unwrap().unwrap());
            let x: Vec<f32> = (0..m * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0).collect();
            let x = quantize(&x, cols);
            let (mut got, mut expected) = (vec![0f32; m * rows], vec![0f32; m * rows]);
            kernel(&weight, &x, &mut got);
            definition(&weight, &x, &mut expected);
            assert_eq!(got, expected, "{dtype:?} {rows}×{cols}, {m} rows");
        }
    }

    #[test]
    fn a_bound_proves_outputs_finite_only_where_they_are() {
        // Activations from 1 to 1e36 (times up to ~40) against a Q8_0 weight, on both layouts: where the bound says
        // finite the outputs are; it declines only from ~1e25 on (and near 1e36 they do overflow).
        let (rows, cols) = (8, 384);
        let matrix = super::Int8Matrix::from_qtensor("t", "w", &quantized(GgmlDType::Q8_0, rows, cols)).unwrap().unwrap();
        let layouts = [super::Int8Weight::RowMajor(super::Int8Matrix::from_qtensor("t", "w", &quantized(GgmlDType::Q8_0, rows, cols)).unwrap().unwrap()), super::Int8Weight::Interleaved(super::InterleavedMatrix::new(&matrix))];
        let bias = vec![0.5f32; rows];
        for weight in &layouts {
            let (mut proven, mut overflowed) = (0, 0);
            for exponent in 0..=36 {
                let x: Vec<f32> = activations(3, cols).iter().map(|v| v * 10f32.powi(exponent)).collect();
                let quantized = weight.quantize(&x, cols);
                assert!(quantized.all_finite());
                let y = weight.matmul(&quantized, &bias);
                let finite = y.iter().all(|v| v.is_finite());
                if weight.output_bound(&bias).proves_finite(quantized.largest_scale()) {
                    assert!(finite, "1e{exponent}: the bound said finite");
                    proven += 1;
                } else {
                    assert!(exponent >= 25, "1e{exponent}: declined far from f32's range");
                }
                overflowed += usize::from(!finite);
            }
            assert!(proven >= 25 && overflowed > 0, "proven {proven}, overflowed {overflowed}");
            let x = weight.quantize(&activations(3, cols), cols);
            assert!(!weight.output_bound(&[0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]).proves_finite(x.largest_scale()), "a NaN bias");
            assert!(!weight.output_bound(&[3e38; 8]).proves_finite(x.largest_scale()), "a bias near f32's largest");
        }
    }
}

//! The definitions of the int8 products, one (row, output) pair at a time: what each SIMD kernel
//! is tested against bit for bit, with the same integer sums and the same f32 sums in the same
//! order, and what runs where no SIMD kernel does.

use crate::int8::interleaved::{STEP, STEPS_PER_BLOCK, WIDE_GROUP};
use crate::int8::{DigitRows, Int8Matrix, InterleavedMatrix, QuantizedRows, BLOCK};

/// `x Wᵀ` into `out` `(m, rows)`: per block, the i32 dot scaled by the block's scale, summed in
/// f32, then times the row's scale. The SIMD128 kernel's definition.
// In the SIMD128 build only the tests reach it.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128", not(test)), allow(dead_code))]
pub fn row_major(w: &Int8Matrix, x: &QuantizedRows, out: &mut [f32]) {
    let blocks = w.cols / BLOCK;
    for (m, out_row) in out.chunks_exact_mut(w.rows.max(1)).enumerate() {
        let xq = &x.values[m * w.cols..(m + 1) * w.cols];
        for (n, y) in out_row.iter_mut().enumerate() {
            let wq = &w.values[n * w.cols..(n + 1) * w.cols];
            let ws = &w.scales[n * blocks..(n + 1) * blocks];
            let mut sum = 0f32;
            for ((xb, wb), &scale) in xq.chunks_exact(BLOCK).zip(wq.chunks_exact(BLOCK)).zip(ws) {
                let dot: i32 = xb.iter().zip(wb).map(|(&a, &b)| a as i32 * b as i32).sum();
                sum += dot as f32 * scale;
            }
            *y = sum * x.scales[m];
        }
    }
}

/// Rows `first ..` of `x Wᵀ` into `out` (as many rows as it holds) in the interleaved layout,
/// one lane at a time: per block, the i32 dot of the weights with the digits less the zero point
/// times the weights' sum, then in f32 `sum += dot × (weight scale × activation scale)`. The
/// relaxed-SIMD, AVX2 and AVX-512 VNNI kernels' definition, in either group width. A `bias`
/// (one per output) is added to each output's sum as it is stored: the same f32 addition as a
/// pass over the outputs afterwards, without the pass.
// In the relaxed-SIMD build only the tests reach it.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "relaxed-simd", not(test)), allow(dead_code))]
pub fn interleaved(w: &InterleavedMatrix, x: &DigitRows, first: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (cols, steps, blocks, width) = (w.cols, w.cols / STEP, w.cols / BLOCK, w.layout.width);
    for (i, out_row) in out.chunks_exact_mut(w.rows.max(1)).enumerate() {
        let m = first + i;
        let digits = &x.digits[m * cols..(m + 1) * cols];
        let activation_blocks = &x.blocks[m * blocks..(m + 1) * blocks];
        for g in 0..w.rows.div_ceil(width) {
            let (mut sums, mut dots) = ([0f32; WIDE_GROUP], [0i32; WIDE_GROUP]);
            let (sums, dots) = (&mut sums[..width], &mut dots[..width]);
            for (b, block) in activation_blocks.iter().enumerate() {
                let at = (g * blocks + b) * width;
                for j in 0..width {
                    dots[j] = -block.zero_point * w.layout.weight_sums[at + j];
                }
                for t in b * STEPS_PER_BLOCK..(b + 1) * STEPS_PER_BLOCK {
                    let step = &w.values[(g * steps + t) * width * STEP..][..width * STEP];
                    for (j, dot) in dots.iter_mut().enumerate() {
                        for k in 0..STEP {
                            *dot += step[j * STEP + k] as i32 * digits[t * STEP + k] as i32;
                        }
                    }
                }
                for j in 0..width {
                    sums[j] += dots[j] as f32 * (w.scales[at + j] * block.scale);
                }
            }
            for (j, &sum) in sums.iter().enumerate() {
                let n = g * width + j;
                if let Some(y) = out_row.get_mut(n) {
                    *y = bias.map_or(sum, |bias| sum + bias[n]);
                }
            }
        }
    }
}

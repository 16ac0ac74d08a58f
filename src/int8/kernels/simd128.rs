//! The row-major product on SIMD128 (wasm builds without relaxed SIMD): `i32x4.dot_i16x8_s`
//! (8 multiply-adds per instruction) of 16-bit activations with weights widened from i8.
//! Four activation rows against two weight rows at a time: each weight vector loaded (and
//! widened from i8) is used four times, each activation vector twice.

use core::arch::wasm32::*;

use crate::int8::{Int8Matrix, QuantizedRows, BLOCK};

const ROWS: usize = 4;
const OUTS: usize = 2;

/// `x Wᵀ` into `out` `(m, rows)`, as [`super::scalar::row_major`] defines it.
pub fn row_major(w: &Int8Matrix, x: &QuantizedRows, out: &mut [f32]) {
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

/// Runs only in a wasm32 build with SIMD128 (`cargo test` natively compiles the scalar
/// definition alone; this needs a wasm test runner).
#[cfg(test)]
mod tests {
    use crate::int8::kernels::scalar;
    use crate::int8::{tests::assert_equals_definition, QuantizedRows};
    use candle_core::quantized::GgmlDType::{Q4_0, Q8_0};

    #[test]
    fn simd128_kernel_equals_its_definition() {
        // Full 4×2 tiles, and rows and outputs past them.
        let shapes = [(Q8_0, 5, 96, 7), (Q4_0, 4, 64, 8), (Q8_0, 1, 32, 3)];
        assert_equals_definition(&shapes, |matrix| matrix, QuantizedRows::new, super::row_major, scalar::row_major);
    }
}

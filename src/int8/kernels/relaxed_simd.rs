//! The interleaved product on relaxed SIMD (wasm): `i32x4.relaxed_dot_i8x16_i7x16_add_s` of the
//! weights with activation digits ([`crate::int8::interleaved`] says why and how).
//! Two activation rows against two groups (eight outputs) at a time: each weight vector is
//! used for both rows, each splatted digit for both groups; 8 dots per 4 loads and 4 splats.

use core::arch::wasm32::*;

use crate::int8::interleaved::{GROUP, STEP, STEPS_PER_BLOCK};
use crate::int8::{DigitRows, InterleavedMatrix, BLOCK};

const ROWS: usize = 2;
const GROUPS: usize = 2;

/// `x Wᵀ` into `out` `(m, rows)`, as [`super::scalar::interleaved`] defines it (the f32
/// multiply-add may be fused: `f32x4.relaxed_madd`).
pub fn interleaved(w: &InterleavedMatrix, x: &DigitRows, out: &mut [f32]) {
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
            let offsets = v128_load(w.layout.offsets.as_ptr().add(((g + gi) * blocks + b) * GROUP) as *const v128);
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

/// Runs only in a wasm32 build with relaxed SIMD (natively only the scalar definition is
/// compiled; this needs a wasm test runner).
#[cfg(test)]
mod tests {
    use crate::int8::kernels::scalar;
    use crate::int8::{tests::assert_equals_definition, DigitRows, InterleavedMatrix};
    use candle_core::quantized::GgmlDType::{Q4_0, Q8_0};

    #[test]
    fn relaxed_simd_kernel_equals_its_definition() {
        // Rows not a multiple of 4 (padding lanes), groups and rows past the 2×2 tile.
        let shapes = [(Q8_0, 9, 96, 5), (Q4_0, 4, 64, 2), (Q8_0, 1, 32, 3)];
        assert_equals_definition(&shapes, |matrix| InterleavedMatrix::new(&matrix), DigitRows::new, super::interleaved, scalar::interleaved);
    }
}

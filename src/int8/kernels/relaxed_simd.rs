//! The interleaved product on relaxed SIMD (wasm): weights times one 7-bit activation digit
//! ([`crate::int8::interleaved`] says why and how), 16 products summed by one of two sequences
//! ([`DotSequence`], chosen per worker by timing both; the same integers either way):
//! `i16x8.relaxed_dot_i8x16_i7x16_s`, widened by `i32x4.dot_i16x8_s` with ones and added —
//! without AVX-VNNI `pmaddubsw`, `pmaddwd`, `paddd`, the same three instructions V8 emits for
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s`, which also makes its ones constant anew each time and
//! ran 14% slower in this kernel (BENCHMARKS.md, issue 34) — or that dot-add, one `vpdpbusd`
//! with AVX-VNNI. The i16 step is exact: two products of a byte and a digit sum to at most
//! 2 × 128 × 127 < 2¹⁵. The dot-add takes four activation rows against three groups (twelve
//! outputs) at a time: each weight vector is used for four rows, each splatted digit for three
//! groups (3% faster in Chromium on W30 than two groups: 7 loads feed 12 dot-adds per step where
//! 6 fed 8; four groups of three rows was no faster; BENCHMARKS.md, issue 34); the i16 sequence
//! two rows against three groups ([`tile_shape`]). The tile does not change a number: each
//! output's sums run over the same blocks in the same order whatever tile holds it.

use core::arch::wasm32::*;

use crate::int8::interleaved::{GROUP, STEP, STEPS_PER_BLOCK};
use crate::int8::{DigitRows, DotSequence, InterleavedMatrix, BLOCK};

/// Activation rows and weight groups per tile, by sequence. The i16 sequence holds a pairs
/// vector per dot and a ones vector besides the sums, weights and digit, and V8 has 15 xmm
/// registers to give: two rows against three groups ran W30 2% faster than four rows without
/// AVX-VNNI (emulated; 4×2, 3×3, 3×2, 2×2 and 2×4 were 2–8% slower; BENCHMARKS.md, issue 34,
/// sixth round). The dot-add keeps four rows: with AVX-VNNI it is one instruction per dot.
const fn tile_shape(dot_add: bool) -> (usize, usize) {
    if dot_add {
        (4, 3)
    } else {
        (2, 3)
    }
}
/// Rows one set of groups is reused for while its weights sit in cache.
const ROWS_PER_BLOCK: usize = 64;

/// Rows `first ..` of `x Wᵀ` into `out` (as many rows as it holds), as
/// [`super::scalar::interleaved`] defines them, bit for bit.
pub fn interleaved(w: &InterleavedMatrix, x: &DigitRows, first: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    debug_assert_eq!(w.layout.width, GROUP, "the relaxed-SIMD kernel multiplies the layout 4 outputs wide");
    match DotSequence::current() {
        DotSequence::DotAdd => interleaved_with::<true>(w, x, first, bias, out),
        DotSequence::I16Dot => interleaved_with::<false>(w, x, first, bias, out),
    }
}

/// `interleaved` with the i32 relaxed dot-add (`DOT_ADD`) or the i16 sequence: the same integers.
/// Inlined, so that both sequences are one wasm function: V8 optimises a function once it has run
/// hot, and the probe that times the two (after the first long call, which ran the default) must
/// not time one of them on V8's baseline code (it picked the i16 sequence on a CPU with AVX-VNNI
/// once in ~30 runs, where the dot-add is ~25% faster).
#[inline(always)]
fn interleaved_with<const DOT_ADD: bool>(w: &InterleavedMatrix, x: &DigitRows, first: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (m_total, groups) = (out.len() / w.rows.max(1), w.rows.div_ceil(GROUP));
    let (tile_rows_at_most, tile_groups_at_most) = tile_shape(DOT_ADD);
    // Per block of rows, one set of a tile's groups at a time over all of them, so that their
    // weights stay in cache while the rows' digits (64 × cols bytes) stay in L2.
    for block in (0..m_total).step_by(ROWS_PER_BLOCK) {
        let end = (block + ROWS_PER_BLOCK).min(m_total);
        let mut g = 0;
        while g < groups {
            let n = tile_groups_at_most.min(groups - g);
            let mut m = block;
            while m < end {
                let rows = tile_rows_at_most.min(end - m);
                // SAFETY (each call): rows first+m.. and groups g.. exist for the counts passed,
                // and every offset the tile reads stays inside x's and w's vectors (cols is a
                // multiple of BLOCK).
                unsafe {
                    match n {
                        3 => tile_rows::<3, DOT_ADD>(rows, w, x, first, m, g, bias, out),
                        2 => tile_rows::<2, DOT_ADD>(rows, w, x, first, m, g, bias, out),
                        _ => tile_rows::<1, DOT_ADD>(rows, w, x, first, m, g, bias, out),
                    }
                }
                m += rows;
            }
            g += n;
        }
    }
}

#[inline(always)]
unsafe fn tile_rows<const G: usize, const DOT_ADD: bool>(rows: usize, w: &InterleavedMatrix, x: &DigitRows, first: usize, m: usize, g: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    match rows {
        4 => tile::<4, G, DOT_ADD>(w, x, first, m, g, bias, out),
        3 => tile::<3, G, DOT_ADD>(w, x, first, m, g, bias, out),
        2 => tile::<2, G, DOT_ADD>(w, x, first, m, g, bias, out),
        _ => tile::<1, G, DOT_ADD>(w, x, first, m, g, bias, out),
    }
}

#[inline(always)]
unsafe fn tile<const R: usize, const G: usize, const DOT_ADD: bool>(w: &InterleavedMatrix, x: &DigitRows, first: usize, m: usize, g: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (cols, steps, blocks) = (w.cols, w.cols / STEP, w.cols / BLOCK);
    let values = w.values.as_ptr();
    let digits = x.digits.as_ptr().add((first + m) * cols);
    let activation_blocks = x.blocks.as_ptr().add((first + m) * blocks);
    let ones = i16x8_splat(1);
    let mut sums = [[f32x4_splat(0.0); G]; R];
    for b in 0..blocks {
        let mut weight_sums = [i32x4_splat(0); G];
        for (gi, v) in weight_sums.iter_mut().enumerate() {
            *v = v128_load(w.layout.weight_sums.as_ptr().add(((g + gi) * blocks + b) * GROUP) as *const v128);
        }
        let mut dots = [[i32x4_splat(0); G]; R];
        for r in 0..R {
            // −zero point × weight sum, as one pmaddwd rather than a pmulld (two µops on x86):
            // each lane's low i16 is the sum (|Σ| ≤ 4096), its high one the sign, and the zero
            // point's lanes hold −zp in the low i16 and 0 in the high, so the product is exact.
            let zero_point = i32x4_splat(-(*activation_blocks.add(r * blocks + b)).zero_point & 0xFFFF);
            for gi in 0..G {
                dots[r][gi] = i32x4_dot_i16x8(weight_sums[gi], zero_point);
            }
        }
        for t in b * STEPS_PER_BLOCK..(b + 1) * STEPS_PER_BLOCK {
            let mut weights = [i32x4_splat(0); G];
            for (gi, v) in weights.iter_mut().enumerate() {
                *v = v128_load(values.add(((g + gi) * steps + t) * GROUP * STEP) as *const v128);
            }
            for r in 0..R {
                let d = v128_load32_splat(digits.add(r * cols + t * STEP) as *const u32);
                for gi in 0..G {
                    dots[r][gi] = if DOT_ADD {
                        i32x4_relaxed_dot_i8x16_i7x16_add(weights[gi], d, dots[r][gi])
                    } else {
                        let pairs = i16x8_relaxed_dot_i8x16_i7x16(weights[gi], d);
                        i32x4_add(dots[r][gi], i32x4_dot_i16x8(pairs, ones))
                    };
                }
            }
        }
        for gi in 0..G {
            let scales = v128_load(w.scales.as_ptr().add(((g + gi) * blocks + b) * GROUP) as *const v128);
            for r in 0..R {
                let scale = f32x4_mul(scales, f32x4_splat((*activation_blocks.add(r * blocks + b)).scale));
                // Not fused: the scalar definition rounds the product, then the sum.
                sums[r][gi] = f32x4_add(sums[r][gi], f32x4_mul(f32x4_convert_i32x4(dots[r][gi]), scale));
            }
        }
    }
    for r in 0..R {
        let row = &mut out[(m + r) * w.rows..(m + r + 1) * w.rows];
        for gi in 0..G {
            let first_output = (g + gi) * GROUP;
            if first_output + GROUP <= w.rows {
                let sum = match bias {
                    Some(bias) => f32x4_add(sums[r][gi], v128_load(bias.as_ptr().add(first_output) as *const v128)),
                    None => sums[r][gi],
                };
                v128_store(row.as_mut_ptr().add(first_output) as *mut v128, sum);
            } else {
                let lanes: [f32; GROUP] = core::mem::transmute(sums[r][gi]);
                for (j, &lane) in lanes.iter().enumerate().take(w.rows - first_output) {
                    row[first_output + j] = bias.map_or(lane, |bias| lane + bias[first_output + j]);
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
        // Rows not a multiple of 4 (padding lanes), groups and rows past the 4×2 tile.
        let shapes = [(Q8_0, 9, 96, 5), (Q4_0, 4, 64, 2), (Q8_0, 1, 32, 3), (Q8_0, 12, 64, 11)];
        assert_equals_definition(&shapes, |matrix| InterleavedMatrix::new(&matrix), DigitRows::new, |w, x, out| super::interleaved(w, x, 0, Some(&vec![0.25; w.rows]), out), |w, x, out| scalar::interleaved(w, x, 0, Some(&vec![0.25; w.rows]), out));
    }
}

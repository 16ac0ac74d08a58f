//! The interleaved product on AVX2 (x86-64): the relaxed-SIMD kernel's sequence 256 bits wide,
//! `vpmaddubsw` of one 7-bit activation digit with the signed weight bytes, `vpmaddwd` with ones
//! and `vpaddd` ([`crate::int8::interleaved`] says why and how). Each vector holds two steps of
//! one group (32 contiguous bytes of the layout): its low half sums the even steps, its high half
//! the odd ones, and the halves are added once per block. Four rows against two groups (eight
//! outputs) at a time; per block of 64 rows, one pair of groups at a time over all of them, so
//! that the pair's weights stay in L1.

use core::arch::x86_64::*;

use crate::int8::interleaved::{GROUP, STEP, STEPS_PER_BLOCK};
use crate::int8::{DigitRows, InterleavedMatrix, BLOCK};

const ROWS: usize = 4;
const GROUPS: usize = 2;
const ROWS_PER_BLOCK: usize = 64;

/// Rows `first ..` of `x Wᵀ` into `out` (as many rows as it holds), as
/// [`super::scalar::interleaved`] defines them, bit for bit.
#[target_feature(enable = "avx2")]
pub unsafe fn interleaved(w: &InterleavedMatrix, x: &DigitRows, first: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    assert_eq!(w.layout.width, GROUP, "the AVX2 kernel multiplies the layout 4 outputs wide");
    let (m_total, groups) = (out.len() / w.rows.max(1), w.rows.div_ceil(GROUP));
    for block in (0..m_total).step_by(ROWS_PER_BLOCK) {
        let end = (block + ROWS_PER_BLOCK).min(m_total);
        let mut g = 0;
        while g < groups {
            let two = groups - g >= GROUPS;
            let mut m = block;
            while m < end {
                let rows = ROWS.min(end - m);
                // SAFETY: as the relaxed-SIMD kernel's: rows and groups exist for the counts passed.
                match (rows, two) {
                    (4, true) => tile::<4, 2>(w, x, first, m, g, bias, out),
                    (3, true) => tile::<3, 2>(w, x, first, m, g, bias, out),
                    (2, true) => tile::<2, 2>(w, x, first, m, g, bias, out),
                    (_, true) => tile::<1, 2>(w, x, first, m, g, bias, out),
                    (4, false) => tile::<4, 1>(w, x, first, m, g, bias, out),
                    (3, false) => tile::<3, 1>(w, x, first, m, g, bias, out),
                    (2, false) => tile::<2, 1>(w, x, first, m, g, bias, out),
                    (_, false) => tile::<1, 1>(w, x, first, m, g, bias, out),
                }
                m += rows;
            }
            g += if two { GROUPS } else { 1 };
        }
    }
}

#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile<const R: usize, const G: usize>(w: &InterleavedMatrix, x: &DigitRows, first: usize, m: usize, g: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (cols, steps, blocks) = (w.cols, w.cols / STEP, w.cols / BLOCK);
    let values = w.values.as_ptr();
    let digits = x.digits.as_ptr().add((first + m) * cols);
    let activation_blocks = x.blocks.as_ptr().add((first + m) * blocks);
    let ones = _mm256_set1_epi16(1);
    // Step t's four digits to the low four lanes, step t + 1's to the high four.
    let spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    let mut sums = [[_mm_setzero_ps(); G]; R];
    for b in 0..blocks {
        let mut dots = [[_mm256_setzero_si256(); G]; R];
        let mut t = b * STEPS_PER_BLOCK;
        while t < (b + 1) * STEPS_PER_BLOCK {
            let mut weights = [_mm256_setzero_si256(); G];
            for (gi, v) in weights.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(values.add(((g + gi) * steps + t) * GROUP * STEP) as *const __m256i);
            }
            for r in 0..R {
                let eight = _mm_loadl_epi64(digits.add(r * cols + t * STEP) as *const __m128i);
                let d = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(eight), spread);
                for gi in 0..G {
                    let pairs = _mm256_maddubs_epi16(d, weights[gi]);
                    dots[r][gi] = _mm256_add_epi32(dots[r][gi], _mm256_madd_epi16(pairs, ones));
                }
            }
            t += 2;
        }
        for gi in 0..G {
            let at = ((g + gi) * blocks + b) * GROUP;
            let weight_sums = _mm_loadu_si128(w.layout.weight_sums.as_ptr().add(at) as *const __m128i);
            let scales = _mm_loadu_ps(w.scales.as_ptr().add(at));
            for r in 0..R {
                let block = *activation_blocks.add(r * blocks + b);
                let halves = _mm_add_epi32(_mm256_castsi256_si128(dots[r][gi]), _mm256_extracti128_si256::<1>(dots[r][gi]));
                // −zp·Σ by vpmaddwd (one µop; vpmulld is two): Σ fits the low i16 of its lane
                // (|Σ| ≤ 4096, the high one is its sign), −zp sits in the low i16 and 0 in the high.
                let dot = _mm_add_epi32(halves, _mm_madd_epi16(weight_sums, _mm_set1_epi32(-block.zero_point & 0xFFFF)));
                let scale = _mm_mul_ps(scales, _mm_set1_ps(block.scale));
                // Not fused: the scalar definition rounds the product, then the sum.
                sums[r][gi] = _mm_add_ps(sums[r][gi], _mm_mul_ps(_mm_cvtepi32_ps(dot), scale));
            }
        }
    }
    for r in 0..R {
        let row = &mut out[(m + r) * w.rows..(m + r + 1) * w.rows];
        for gi in 0..G {
            let first_output = (g + gi) * GROUP;
            if first_output + GROUP <= w.rows {
                let sum = match bias {
                    Some(bias) => _mm_add_ps(sums[r][gi], _mm_loadu_ps(bias.as_ptr().add(first_output))),
                    None => sums[r][gi],
                };
                _mm_storeu_ps(row.as_mut_ptr().add(first_output), sum);
            } else {
                let lanes: [f32; GROUP] = core::mem::transmute(sums[r][gi]);
                for (j, &lane) in lanes.iter().enumerate().take(w.rows - first_output) {
                    row[first_output + j] = bias.map_or(lane, |bias| lane + bias[first_output + j]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::int8::interleaved::GROUP;
    use crate::int8::kernels::scalar;
    use crate::int8::tests::{activations, quantized};
    use crate::int8::{DigitRows, Int8Matrix, InterleavedMatrix};
    use candle_core::quantized::GgmlDType;

    #[test]
    fn avx2_kernel_equals_its_definition() {
        if !crate::cpu::avx2_fma() {
            return; // nothing to compare on this CPU; the definition is tested in interleaved.rs
        }
        // Rows past one block of 64 and not a multiple of the tile, outputs not a multiple of 8
        // nor of 4, Q4_0 as well as Q8_0, a row of zeros, a bias.
        for (dtype, rows, cols, m) in [(GgmlDType::Q8_0, 42, 352, 70), (GgmlDType::Q8_0, 3, 32, 1), (GgmlDType::Q4_0, 16, 128, 5), (GgmlDType::Q8_0, 8, 64, 3)] {
            let matrix = InterleavedMatrix::with_width(&Int8Matrix::from_qtensor("t", "w", &quantized(dtype, rows, cols)).unwrap().unwrap(), GROUP);
            let mut values = activations(m, cols);
            values[..cols].iter_mut().for_each(|v| *v = 0.0);
            let x = DigitRows::new(&values, cols);
            let bias: Vec<f32> = (0..rows).map(|n| n as f32 * 0.37 - 3.0).collect();
            let mut got = vec![0f32; m * rows];
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { super::interleaved(&matrix, &x, 0, Some(&bias), &mut got) };
            let mut expected = vec![0f32; m * rows];
            scalar::interleaved(&matrix, &x, 0, Some(&bias), &mut expected);
            assert_eq!(got, expected, "{dtype:?} {rows}×{cols}, {m} rows");
            assert_eq!(matrix.matmul(&x, Some(&bias)), expected, "{dtype:?} {rows}×{cols}, {m} rows, shared by the threads");
        }
    }
}

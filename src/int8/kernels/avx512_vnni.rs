//! The interleaved product on AVX-512 VNNI (x86-64), on the layout 16 outputs wide: one
//! `vpdpbusd` multiplies one step (four activation digits, broadcast from memory) by the 16
//! outputs' four weight bytes and adds the four products into each output's i32 lane, so a
//! block's sums come out in lanes with no shuffle. Per block, `vpdpwssd` subtracts the zero point
//! times the weights' sum (both fit an i16), then the f32 epilogue is the AVX2 kernel's, 16 lanes
//! wide. Six rows against two groups (32 outputs) at a time: twelve accumulators and twelve sums
//! in the 32 registers; per block of 64 rows, one pair of groups at a time over all of them, so
//! that the pair's weights stay in L1.

use core::arch::x86_64::*;

use crate::int8::interleaved::{STEP, STEPS_PER_BLOCK, WIDE_GROUP};
use crate::int8::{DigitRows, InterleavedMatrix, BLOCK};

const ROWS: usize = 6;
const GROUPS: usize = 2;
const ROWS_PER_BLOCK: usize = 64;

/// Rows `first ..` of `x Wᵀ` into `out` (as many rows as it holds), as
/// [`super::scalar::interleaved`] defines them, bit for bit. `w` must be 16 outputs wide.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn interleaved(w: &InterleavedMatrix, x: &DigitRows, first: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    assert_eq!(w.layout.width, WIDE_GROUP, "the AVX-512 kernel multiplies the layout 16 outputs wide");
    let (m_total, groups) = (out.len() / w.rows.max(1), w.rows.div_ceil(WIDE_GROUP));
    for block in (0..m_total).step_by(ROWS_PER_BLOCK) {
        let end = (block + ROWS_PER_BLOCK).min(m_total);
        let mut g = 0;
        while g < groups {
            let two = groups - g >= GROUPS;
            let mut m = block;
            while m < end {
                let rows = ROWS.min(end - m);
                // SAFETY: rows m .. m + rows and groups g .. g + G exist (the counts passed).
                if two {
                    rows_of::<2>(rows, w, x, first, m, g, bias, out);
                } else {
                    rows_of::<1>(rows, w, x, first, m, g, bias, out);
                }
                m += rows;
            }
            g += if two { GROUPS } else { 1 };
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn rows_of<const G: usize>(rows: usize, w: &InterleavedMatrix, x: &DigitRows, first: usize, m: usize, g: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    match rows {
        6 => tile::<6, G>(w, x, first, m, g, bias, out),
        5 => tile::<5, G>(w, x, first, m, g, bias, out),
        4 => tile::<4, G>(w, x, first, m, g, bias, out),
        3 => tile::<3, G>(w, x, first, m, g, bias, out),
        2 => tile::<2, G>(w, x, first, m, g, bias, out),
        _ => tile::<1, G>(w, x, first, m, g, bias, out),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile<const R: usize, const G: usize>(w: &InterleavedMatrix, x: &DigitRows, first: usize, m: usize, g: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (cols, steps, blocks) = (w.cols, w.cols / STEP, w.cols / BLOCK);
    let values = w.values.as_ptr();
    let digits = x.digits.as_ptr().add((first + m) * cols);
    let activation_blocks = x.blocks.as_ptr().add((first + m) * blocks);
    let mut sums = [[_mm512_setzero_ps(); G]; R];
    for b in 0..blocks {
        let mut dots = [[_mm512_setzero_si512(); G]; R];
        for t in b * STEPS_PER_BLOCK..(b + 1) * STEPS_PER_BLOCK {
            let mut weights = [_mm512_setzero_si512(); G];
            for (gi, v) in weights.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(values.add(((g + gi) * steps + t) * WIDE_GROUP * STEP) as *const _);
            }
            for r in 0..R {
                // Digits are 0..=127: the unsigned operand; the weights are the signed one.
                let four = _mm512_set1_epi32((digits.add(r * cols + t * STEP) as *const i32).read_unaligned());
                for gi in 0..G {
                    dots[r][gi] = _mm512_dpbusd_epi32(dots[r][gi], four, weights[gi]);
                }
            }
        }
        for gi in 0..G {
            let at = ((g + gi) * blocks + b) * WIDE_GROUP;
            let weight_sums = _mm512_loadu_si512(w.layout.weight_sums.as_ptr().add(at) as *const _);
            let scales = _mm512_loadu_ps(w.scales.as_ptr().add(at));
            for r in 0..R {
                let block = *activation_blocks.add(r * blocks + b);
                // Each lane's low i16 is the weights' sum (|Σ| ≤ 4096), its high one the sign;
                // −zero point in the low i16 and 0 in the high makes vpdpwssd add −zp·Σ exactly.
                let zero_point = _mm512_set1_epi32(-block.zero_point & 0xFFFF);
                let dot = _mm512_dpwssd_epi32(dots[r][gi], weight_sums, zero_point);
                let scale = _mm512_mul_ps(scales, _mm512_set1_ps(block.scale));
                // Not fused: the scalar definition rounds the product, then the sum.
                sums[r][gi] = _mm512_add_ps(sums[r][gi], _mm512_mul_ps(_mm512_cvtepi32_ps(dot), scale));
            }
        }
    }
    for r in 0..R {
        let row = out.as_mut_ptr().add((m + r) * w.rows);
        for gi in 0..G {
            let first_output = (g + gi) * WIDE_GROUP;
            let lanes = ((1u32 << (w.rows - first_output).min(WIDE_GROUP)) - 1) as __mmask16;
            let sum = match bias {
                // Lanes past the last output load nothing (and are not stored).
                Some(bias) => _mm512_add_ps(sums[r][gi], _mm512_maskz_loadu_ps(lanes, bias.as_ptr().add(first_output))),
                None => sums[r][gi],
            };
            _mm512_mask_storeu_ps(row.add(first_output), lanes, sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::int8::interleaved::WIDE_GROUP;
    use crate::int8::kernels::scalar;
    use crate::int8::tests::{activations, quantized};
    use crate::int8::{DigitRows, Int8Matrix, InterleavedMatrix};
    use candle_core::quantized::GgmlDType;

    #[test]
    fn avx512_vnni_kernel_equals_its_definition() {
        if !crate::cpu::avx512_vnni() {
            return; // nothing to compare on this CPU; the definition is tested in interleaved.rs
        }
        // Rows past one block of 64 and not a multiple of the tile (6), outputs not a multiple of
        // 32 nor of 16, Q4_0 as well as Q8_0, a row of zeros, a bias (masked past the last output).
        for (dtype, rows, cols, m) in [(GgmlDType::Q8_0, 42, 352, 70), (GgmlDType::Q8_0, 3, 32, 1), (GgmlDType::Q4_0, 16, 128, 5), (GgmlDType::Q8_0, 40, 64, 13), (GgmlDType::Q8_0, 33, 96, 64)] {
            let matrix = InterleavedMatrix::with_width(&Int8Matrix::from_qtensor("t", "w", &quantized(dtype, rows, cols)).unwrap().unwrap(), WIDE_GROUP);
            let mut values = activations(m, cols);
            values[..cols].iter_mut().for_each(|v| *v = 0.0);
            let x = DigitRows::new(&values, cols);
            let bias: Vec<f32> = (0..rows).map(|n| n as f32 * 0.37 - 3.0).collect();
            let mut got = vec![0f32; m * rows];
            // SAFETY: the CPU has AVX-512 F, BW and VNNI (checked above).
            unsafe { super::interleaved(&matrix, &x, 0, Some(&bias), &mut got) };
            let mut expected = vec![0f32; m * rows];
            scalar::interleaved(&matrix, &x, 0, Some(&bias), &mut expected);
            assert_eq!(got, expected, "{dtype:?} {rows}×{cols}, {m} rows");
            assert_eq!(matrix.matmul(&x, Some(&bias)), expected, "{dtype:?} {rows}×{cols}, {m} rows, shared by the threads");
        }
    }

    #[test]
    fn both_widths_give_the_same_numbers() {
        // The layout's width is the kernel's business: 4 and 16 outputs per group multiply to the
        // same f32 results (here by the scalar definition, so on every CPU).
        let matrix = Int8Matrix::from_qtensor("t", "w", &quantized(GgmlDType::Q8_0, 37, 160)).unwrap().unwrap();
        let x = DigitRows::new(&activations(9, 160), 160);
        let (narrow, wide) = (InterleavedMatrix::with_width(&matrix, 4), InterleavedMatrix::with_width(&matrix, WIDE_GROUP));
        let (mut a, mut b) = (vec![0f32; 9 * 37], vec![0f32; 9 * 37]);
        scalar::interleaved(&narrow, &x, 0, None, &mut a);
        scalar::interleaved(&wide, &x, 0, None, &mut b);
        assert_eq!(a, b);
    }
}

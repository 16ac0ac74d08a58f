//! The paired product on AVX2 (x86-64): `vpmaddwd` of column pairs of 16-bit weights with
//! activation pairs broadcast to every lane ([`crate::int8::paired`] says why and how), four rows
//! against 16 outputs at a time.

use core::arch::x86_64::*;

use crate::int8::paired::{PairedMatrix, FLUSH, GROUP, ROWS_PER_BLOCK, TILE_GROUPS, TILE_ROWS};
use crate::int8::QuantizedRows;

/// Rows `first ..` of `x Wᵀ + bias` (as many as `out` holds), as [`super::scalar::paired`]
/// defines them: per block of 64 rows, one panel of 16 outputs at a time over all of them, so
/// that the panel's weights stay in cache.
#[target_feature(enable = "avx2")]
pub unsafe fn paired(w: &PairedMatrix, x: &QuantizedRows, first: usize, bias: &[f32], out: &mut [f32]) {
    let count = out.len() / w.rows;
    let panels = w.scales.len() / (GROUP * TILE_GROUPS);
    for block in (0..count).step_by(ROWS_PER_BLOCK) {
        let end = (block + ROWS_PER_BLOCK).min(count);
        for panel in 0..panels {
            let mut i = block;
            while i < end {
                let rows = TILE_ROWS.min(end - i);
                // SAFETY (all four): rows first+i .. first+i+rows exist in x, the panel's groups in w.
                match rows {
                    4 => tile::<4>(w, x, first, i, panel, bias, out),
                    3 => tile::<3>(w, x, first, i, panel, bias, out),
                    2 => tile::<2>(w, x, first, i, panel, bias, out),
                    _ => tile::<1>(w, x, first, i, panel, bias, out),
                }
                i += rows;
            }
        }
    }
}

/// `R` rows from `first + i` against the 16 outputs of `panel`, written to `out` rows `i ..`.
#[target_feature(enable = "avx2")]
unsafe fn tile<const R: usize>(w: &PairedMatrix, x: &QuantizedRows, first: usize, i: usize, panel: usize, bias: &[f32], out: &mut [f32]) {
    let k = w.cols;
    let xs = x.values.as_ptr().add((first + i) * k);
    let w0 = w.values.as_ptr().add(panel * TILE_GROUPS * GROUP * k);
    let w1 = w0.add(GROUP * k);
    let mut totals = [[_mm256_setzero_ps(); TILE_GROUPS]; R];
    let mut start = 0;
    while start < k {
        let end = (start + FLUSH).min(k);
        let mut sums = [[_mm256_setzero_si256(); TILE_GROUPS]; R];
        for p in start / 2..end / 2 {
            let a = _mm256_loadu_si256(w0.add(p * 2 * GROUP) as *const __m256i);
            let b = _mm256_loadu_si256(w1.add(p * 2 * GROUP) as *const __m256i);
            for r in 0..R {
                let pair = _mm256_set1_epi32((xs.add(r * k + 2 * p) as *const i32).read_unaligned());
                sums[r][0] = _mm256_add_epi32(sums[r][0], _mm256_madd_epi16(pair, a));
                sums[r][1] = _mm256_add_epi32(sums[r][1], _mm256_madd_epi16(pair, b));
            }
        }
        for r in 0..R {
            for g in 0..TILE_GROUPS {
                totals[r][g] = _mm256_add_ps(totals[r][g], _mm256_cvtepi32_ps(sums[r][g]));
            }
        }
        start = end;
    }
    let n0 = panel * TILE_GROUPS * GROUP;
    let outputs = (w.rows - n0.min(w.rows)).min(TILE_GROUPS * GROUP);
    for r in 0..R {
        let mut values = [0f32; TILE_GROUPS * GROUP];
        for g in 0..TILE_GROUPS {
            let scales = _mm256_loadu_ps(w.scales.as_ptr().add(n0 + g * GROUP));
            let y = _mm256_mul_ps(_mm256_mul_ps(totals[r][g], _mm256_set1_ps(x.scales[first + i + r])), scales);
            _mm256_storeu_ps(values.as_mut_ptr().add(g * GROUP), y);
        }
        let out = &mut out[(i + r) * w.rows + n0..][..outputs];
        match bias.get(n0..n0 + outputs) {
            Some(bias) => out.iter_mut().zip(&values).zip(bias).for_each(|((y, v), b)| *y = v + b),
            None => out.copy_from_slice(&values[..outputs]),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::int8::kernels::scalar;
    use crate::int8::tests::{activations, quantized};
    use crate::int8::{Int8Matrix, PairedMatrix};
    use candle_core::quantized::GgmlDType;

    #[test]
    fn avx2_kernel_equals_its_definition() {
        if crate::int8::Kernel::detect() != crate::int8::Kernel::Avx2 {
            return; // nothing to compare on this CPU; the definition is tested in paired.rs
        }
        // Rows past one task and not a multiple of the tile, outputs not a multiple of 16,
        // columns past one flush and not a multiple of it.
        for (rows, cols, m) in [(40, 352, 70), (3, 32, 1), (16, 128, 4)] {
            let matrix = PairedMatrix::new(&Int8Matrix::from_qtensor("t", "w", &quantized(GgmlDType::Q8_0, rows, cols)).unwrap().unwrap());
            let x = PairedMatrix::quantize(&activations(m, cols), cols);
            let bias: Vec<f32> = (0..rows).map(|n| n as f32 / 3.0 - 2.0).collect();
            let got = matrix.matmul(&x, &bias);
            let mut expected = vec![0f32; m * rows];
            scalar::paired(&matrix, &x, 0, &bias, &mut expected);
            assert_eq!(got, expected, "{rows}×{cols}, {m} rows");
        }
    }
}

//! The definitions of the int8 products, one (row, output) pair at a time: what each SIMD kernel
//! is tested against bit for bit, with the same integer sums and the same f32 sums in the same
//! order, and what runs where no SIMD kernel does.

use crate::int8::interleaved::{GROUP as INTERLEAVED_GROUP, STEP, STEPS_PER_BLOCK};
#[cfg(target_arch = "x86_64")]
use crate::int8::paired::{PairedMatrix, FLUSH, GROUP as PAIRED_GROUP};
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

/// `x Wᵀ` into `out` `(m, rows)` in the interleaved layout, one lane at a time: per block, the
/// low and high digits' dots (the low one starting from the block's offset), combined in i32,
/// scaled and summed in f32, then times the row's scale. The relaxed-SIMD kernel's definition.
// In the relaxed-SIMD build only the tests reach it.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "relaxed-simd", not(test)), allow(dead_code))]
pub fn interleaved(w: &InterleavedMatrix, x: &DigitRows, out: &mut [f32]) {
    const GROUP: usize = INTERLEAVED_GROUP;
    let (cols, steps, blocks) = (w.cols, w.cols / STEP, w.cols / BLOCK);
    for m in 0..x.rows() {
        let (low, high) = (&x.low[m * cols..(m + 1) * cols], &x.high[m * cols..(m + 1) * cols]);
        for g in 0..w.rows.div_ceil(GROUP) {
            let mut sums = [0f32; GROUP];
            for b in 0..blocks {
                let at = (g * blocks + b) * GROUP;
                let mut low_dot: [i32; GROUP] = w.layout.offsets[at..at + GROUP].try_into().expect("a group's offsets");
                let mut high_dot = [0i32; GROUP];
                for t in b * STEPS_PER_BLOCK..(b + 1) * STEPS_PER_BLOCK {
                    let step = &w.values[(g * steps + t) * GROUP * STEP..][..GROUP * STEP];
                    for j in 0..GROUP {
                        for i in 0..STEP {
                            let weight = step[j * STEP + i] as i32;
                            low_dot[j] += weight * low[t * STEP + i] as i32;
                            high_dot[j] += weight * high[t * STEP + i] as i32;
                        }
                    }
                }
                for j in 0..GROUP {
                    let dot = (high_dot[j] << 7) + low_dot[j];
                    sums[j] += dot as f32 * w.scales[at + j];
                }
            }
            for (j, sum) in sums.iter().enumerate() {
                let n = g * GROUP + j;
                if n < w.rows {
                    out[m * w.rows + n] = sum * x.scales[m];
                }
            }
        }
    }
}

/// Rows `first ..` of `x Wᵀ + bias` into `out` (as many rows as it holds) in the paired layout:
/// i32 sums over each [`FLUSH`] columns, those summed in f32, then times the two scales. The
/// AVX2 kernel's definition.
#[cfg(target_arch = "x86_64")]
pub fn paired(w: &PairedMatrix, x: &QuantizedRows, first: usize, bias: &[f32], out: &mut [f32]) {
    const GROUP: usize = PAIRED_GROUP;
    let k = w.cols;
    for (i, out_row) in out.chunks_exact_mut(w.rows).enumerate() {
        let m = first + i;
        let xq = &x.values[m * k..(m + 1) * k];
        for (n, y) in out_row.iter_mut().enumerate() {
            let weights = &w.values[(n / GROUP) * GROUP * k..];
            let lane = n % GROUP;
            let mut total = 0f32;
            for start in (0..k).step_by(FLUSH) {
                let mut sum = 0i32;
                for p in start / 2..(start + FLUSH).min(k) / 2 {
                    let pair = &weights[p * 2 * GROUP + lane * 2..];
                    sum += xq[2 * p] as i32 * pair[0] as i32 + xq[2 * p + 1] as i32 * pair[1] as i32;
                }
                total += sum as f32;
            }
            *y = total * x.scales[m] * w.scales[n] + bias.get(n).unwrap_or(&0.0);
        }
    }
}

//! The activation quantisers: each row of f32 activations rounded to integers times one scale per
//! row, in the form a kernel reads. [`QuantizedRows`] (16-bit integers, or 14-bit for AVX2) for
//! the row-major and paired layouts, [`DigitRows`] (two 7-bit digits) for the interleaved one.
//!
//! A row holding inf or NaN would round to finite integers and give a finite, wrong score: the
//! quantisers mark it with a NaN scale instead (found while they look for its largest value, so
//! it costs nothing), and the caller refuses it ([`super::Activations::all_finite`]).

/// Activations quantised per row: `x[m][k] ≈ values[m][k] × scales[m]`, `|values| ≤ limit`.
pub struct QuantizedRows {
    pub(in crate::int8) cols: usize,
    /// Checked by kernels whose integer sums are bounded for smaller values (x86-64's AVX2).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(in crate::int8) limit: i32,
    pub(in crate::int8) values: Vec<i16>,
    pub(in crate::int8) scales: Vec<f32>,
}

impl QuantizedRows {
    /// `x`: `rows × cols` f32, row-major, rounded to 16 bits (±32767).
    pub fn new(x: &[f32], cols: usize) -> Self {
        Self::with_limit(x, cols, i16::MAX as i32)
    }

    /// As [`QuantizedRows::new`], rounded to ±`limit` (at most 32767).
    pub fn with_limit(x: &[f32], cols: usize, limit: i32) -> Self {
        let limit = limit.min(i16::MAX as i32);
        let rows = if cols == 0 { 0 } else { x.len() / cols };
        let mut values = vec![0i16; rows * cols];
        let mut scales = vec![0f32; rows];
        // Blocks of rows shared by the threads.
        const ROWS_PER_TASK: usize = 64;
        crate::cpu::for_each_chunk_pair(&mut values, ROWS_PER_TASK * cols, &mut scales, ROWS_PER_TASK, |i, values, scales| {
            quantize_rows(&x[i * ROWS_PER_TASK * cols..][..values.len()], cols, limit, values, scales)
        });
        Self { cols, limit, values, scales }
    }

    /// Rows known to lie in [−1, 1] whose true values are `x × row_scales` (attention's
    /// probabilities before their division by the row's sum), as [`QuantizedRows::with_limit`]
    /// would round them with a largest value of 1.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn in_unit_range(x: &[f32], cols: usize, row_scales: &[f32], limit: i32) -> Self {
        let mut rows = Self::with_limit(&[], cols, limit);
        rows.values = vec![0i16; x.len()];
        round_unit_range(x, rows.limit as f32, &mut rows.values);
        // A non-finite scale (a fully masked row) would make NaN of every product: zero instead.
        rows.scales = row_scales.iter().map(|s| if s.is_finite() { s / rows.limit as f32 } else { 0.0 }).collect();
        assert_eq!(rows.values.len(), rows.scales.len() * cols, "one scale per row");
        rows
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// Whether every row was finite (see the module's comment).
    pub fn all_finite(&self) -> bool {
        self.scales.iter().all(|scale| scale.is_finite())
    }
}

crate::cpu::multiversioned! {
    /// Rounds each row of `x` to ±`limit` times its scale; written to vectorise (the largest
    /// |value| in eight lanes, [`round_clamped`]).
    fn quantize_rows(x: &[f32], cols: usize, limit: i32, values: &mut [i16], scales: &mut [f32]) {
        for ((row, out), scale) in x.chunks_exact(cols.max(1)).zip(values.chunks_exact_mut(cols.max(1))).zip(scales) {
            let largest = largest_magnitude(row);
            if !largest.is_finite() {
                // inf or NaN would round to finite integers and give a finite, wrong score: a
                // NaN scale marks the row, and the caller refuses it (`Activations::all_finite`).
                *scale = f32::NAN;
                continue;
            }
            if largest == 0.0 {
                continue; // all zeros: the row contributes nothing
            }
            *scale = largest / limit as f32;
            let inverse = 1.0 / *scale;
            for (q, v) in out.iter_mut().zip(row) {
                *q = round_clamped(v * inverse, limit as f32) as i16;
            }
        }
    }
}

crate::cpu::multiversioned! {
    fn round_unit_range(x: &[f32], limit: f32, values: &mut [i16]) {
        for (q, v) in values.iter_mut().zip(x) {
            *q = round_clamped(v * limit, limit) as i16;
        }
    }
}

/// `v` rounded to the nearest integer (ties to even) and clamped to ±`limit` (≤ 2²²; NaN gives
/// −limit). Written to vectorise: `round` is a libm call and a float-to-int cast saturates
/// lane by lane, while adding 1.5·2²³ leaves the rounded integer in the low mantissa bits.
#[inline(always)]
pub(crate) fn round_clamped(v: f32, limit: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    let v = v.max(-limit).min(limit);
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// Activations are rounded to ±[`DIGITS_LARGEST`] and offset by this, which keeps both digits in
/// 0..=127.
pub(in crate::int8) const ZERO_POINT: i32 = 8192;
pub(in crate::int8) const DIGITS_LARGEST: f32 = 8191.0;

/// Activations per row as `128·high + low − ZERO_POINT`, times the row's scale: the operands of
/// relaxed SIMD's dot of signed bytes with bytes in 0..=127 (see [`super::interleaved`]).
pub struct DigitRows {
    pub(in crate::int8) cols: usize,
    pub(in crate::int8) low: Vec<u8>,
    pub(in crate::int8) high: Vec<u8>,
    pub(in crate::int8) scales: Vec<f32>,
}

impl DigitRows {
    /// `x`: `rows × cols` f32, row-major.
    pub fn new(x: &[f32], cols: usize) -> Self {
        let rows = if cols == 0 { 0 } else { x.len() / cols };
        // Digits of zero, so that a row left out below contributes exactly nothing.
        let mut low = vec![(ZERO_POINT % 128) as u8; rows * cols];
        let mut high = vec![(ZERO_POINT / 128) as u8; rows * cols];
        let mut scales = vec![0f32; rows];
        for (m, row) in x.chunks_exact(cols.max(1)).enumerate() {
            let largest = largest_magnitude(row);
            if !largest.is_finite() {
                // As QuantizedRows: a NaN scale marks the row, and the caller refuses it
                // (rounded, inf and NaN would become finite integers and a wrong score).
                scales[m] = f32::NAN;
                continue;
            }
            if largest == 0.0 {
                continue;
            }
            let scale = largest / DIGITS_LARGEST;
            let span = m * cols..(m + 1) * cols;
            split(row, 1.0 / scale, &mut low[span.clone()], &mut high[span]);
            scales[m] = scale;
        }
        Self { cols, low, high, scales }
    }

    /// Rows known to lie in [−1, 1] (no search for the largest value), whose true values are
    /// `x × row_scales`: attention's probabilities before their division by the row sum.
    pub fn in_unit_range(x: &[f32], cols: usize, row_scales: &[f32]) -> Self {
        let rows = row_scales.len();
        assert_eq!(x.len(), rows * cols, "one scale per row");
        let mut low = vec![0u8; rows * cols];
        let mut high = vec![0u8; rows * cols];
        for (m, row) in x.chunks_exact(cols.max(1)).enumerate() {
            let span = m * cols..(m + 1) * cols;
            split(row, DIGITS_LARGEST, &mut low[span.clone()], &mut high[span]);
        }
        // A non-finite scale (a fully masked row) would make NaN of every product: zero instead.
        let scales = row_scales.iter().map(|s| if s.is_finite() { s / DIGITS_LARGEST } else { 0.0 }).collect();
        Self { cols, low, high, scales }
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// Whether every row was finite (see the module's comment).
    pub fn all_finite(&self) -> bool {
        self.scales.iter().all(|scale| scale.is_finite())
    }
}

/// Rounds `row × inverse` to ±DIGITS_LARGEST and writes its two digits. Written to vectorise: ties
/// to even is wasm's `f32.nearest` (`round` is a libm call), the cast saturates (NaN gives 0), and
/// the clamp is on integers.
#[inline(always)]
fn split(row: &[f32], inverse: f32, low: &mut [u8], high: &mut [u8]) {
    for ((v, l), h) in row.iter().zip(low).zip(high) {
        let offset = ((v * inverse).round_ties_even() as i32).clamp(-(DIGITS_LARGEST as i32), DIGITS_LARGEST as i32) + ZERO_POINT;
        *l = (offset & 127) as u8;
        *h = (offset >> 7) as u8;
    }
}

/// The largest |v| of a row, NaN if any value is NaN (so that a non-finite row is seen: the
/// quantisers would round NaN to a finite integer), in eight lanes so that it vectorises:
/// `f32::max` does not, on wasm. A lane that holds NaN keeps it (`v > NaN` is false).
#[inline(always)]
pub(crate) fn largest_magnitude(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let v = v.abs();
            *lane = if v > *lane || v.is_nan() { v } else { *lane };
        }
    }
    tail.iter().map(|v| v.abs()).chain(lanes).fold(0f32, |a, v| if v > a || v.is_nan() { v } else { a })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_hold_each_value() {
        let x = [0.0, 1.0, -1.0, 0.5, -0.25, 1e-4, 0.999];
        let rows = DigitRows::new(&x, x.len());
        for (k, &v) in x.iter().enumerate() {
            let offset = 128 * rows.high[k] as i32 + rows.low[k] as i32;
            assert!(rows.high[k] <= 127 && rows.low[k] <= 127, "digits of {v} stay in 0..=127");
            let back = (offset - ZERO_POINT) as f32 * rows.scales[0];
            assert!((back - v).abs() <= 0.5 / DIGITS_LARGEST + 1e-7, "{v} came back as {back}");
        }
    }
}

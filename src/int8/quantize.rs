//! The activation quantisers: each row of f32 activations rounded to integers times one scale per
//! row, in the form a kernel reads. [`QuantizedRows`] (16-bit integers) for the
//! row-major layout, [`DigitRows`] (one 7-bit digit per value, a scale and zero
//! point per block of 32) for the interleaved one.
//!
//! A row holding inf or NaN would round to finite integers and give a finite, wrong score: the
//! quantisers mark it with a NaN scale instead (found while they look for its largest value, so
//! it costs nothing), and the caller refuses it ([`super::Activations::all_finite`]).

use super::BLOCK;

/// Activations quantised per row: `x[m][k] ≈ values[m][k] × scales[m]`, `|values| ≤ limit`.
pub struct QuantizedRows {
    pub(in crate::int8) cols: usize,
    pub(in crate::int8) values: Vec<i16>,
    pub(in crate::int8) scales: Vec<f32>,
}

impl QuantizedRows {
    /// `x`: `rows × cols` f32, row-major, rounded to 16 bits (±32767).
    pub fn new(x: &[f32], cols: usize) -> Self {
        let limit = i16::MAX as i32;
        let rows = if cols == 0 { 0 } else { x.len() / cols };
        let mut values = vec![0i16; rows * cols];
        let mut scales = vec![0f32; rows];
        // Blocks of rows shared by the threads.
        const ROWS_PER_TASK: usize = 64;
        crate::cpu::for_each_chunk_pair(&mut values, ROWS_PER_TASK * cols, &mut scales, ROWS_PER_TASK, |i, values, scales| {
            quantize_rows(&x[i * ROWS_PER_TASK * cols..][..values.len()], cols, limit, values, scales)
        });
        Self { cols, values, scales }
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

/// `v` rounded to the nearest integer (ties to even) and clamped to ±`limit` (≤ 2²²; NaN gives
/// −limit). Written to vectorise: `round` is a libm call and a float-to-int cast saturates
/// lane by lane, while adding 1.5·2²³ leaves the rounded integer in the low mantissa bits.
#[inline(always)]
pub(crate) fn round_clamped(v: f32, limit: f32) -> i32 {
    let v = v.max(-limit).min(limit);
    (v + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32
}

/// 1.5·2²³: adding it to |v| < 2²² leaves v rounded to nearest (ties even) in the low mantissa
/// bits ([`round_clamped`], and the SIMD128 code that rounds as it does).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// The largest digit: activations are one 7-bit digit, the relaxed dot's "i7" operand.
pub(in crate::int8) const DIGIT_LARGEST: i32 = 127;

/// One block's scale and zero point: its values are `(digit − zero_point) × scale`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DigitBlock {
    /// NaN for every block of a row that held inf or NaN (see the module's comment).
    pub scale: f32,
    /// In 0..=127.
    pub zero_point: i32,
}

/// Activations as one 7-bit digit each, with a scale and a zero point per block of [`BLOCK`]
/// values of a row: `x[m][k] ≈ (digits[m][k] − zero_point) × scale` of block `(m, k / 32)`,
/// digits in 0..=127 (the operands of relaxed SIMD's dot of signed bytes with bytes in 0..=127,
/// see [`super::interleaved`]). Each block spans `[min(its least, 0), max(its largest, 0)]` in
/// 127 steps, so zero is exact (padding contributes nothing) and a block whose values are all of
/// one sign (GELU's output, attention's probabilities) gets all 127.
pub struct DigitRows {
    pub(in crate::int8) cols: usize,
    pub(in crate::int8) digits: Vec<u8>,
    /// `rows × cols / 32`, row-major.
    pub(in crate::int8) blocks: Vec<DigitBlock>,
}

impl DigitRows {
    /// `x`: `rows × cols` f32, row-major; `cols` a multiple of [`BLOCK`].
    pub fn new(x: &[f32], cols: usize) -> Self {
        assert!(cols % BLOCK == 0, "activations are quantised in blocks of {BLOCK}");
        let rows = if cols == 0 { 0 } else { x.len() / cols };
        let mut digits = vec![0u8; rows * cols];
        let mut blocks = vec![DigitBlock::default(); rows * cols / BLOCK];
        // Blocks of rows shared by the threads (natively; one task in wasm).
        const ROWS_PER_TASK: usize = 64;
        crate::cpu::for_each_chunk_pair(&mut digits, ROWS_PER_TASK * cols, &mut blocks, ROWS_PER_TASK * cols / BLOCK, |i, digits, blocks| {
            quantize_blocks(&x[i * ROWS_PER_TASK * cols..][..digits.len()], digits, blocks)
        });
        let mut quantized = Self { cols, digits, blocks };
        quantized.mark_non_finite_rows();
        quantized
    }

    pub fn rows(&self) -> usize {
        if self.cols == 0 {
            0
        } else {
            self.digits.len() / self.cols
        }
    }

    /// Whether every row was finite (see the module's comment).
    pub fn all_finite(&self) -> bool {
        self.blocks.iter().all(|block| block.scale.is_finite())
    }

    /// A row with a non-finite block: every block of it NaN (its digits are meaningless).
    fn mark_non_finite_rows(&mut self) {
        let per_row = self.cols / BLOCK;
        for row in self.blocks.chunks_exact_mut(per_row.max(1)) {
            if row.iter().any(|block| !block.scale.is_finite()) {
                row.iter_mut().for_each(|block| block.scale = f32::NAN);
            }
        }
    }
}

/// The scale, its inverse and the zero point of a block whose values span `[least, largest]`
/// (`least ≤ 0 ≤ largest`, both finite), or None for a block that is all zeros: digits 0, zero
/// point 0. A span of a few subnormals, whose inverse scale would overflow, counts as zeros too.
#[inline(always)]
fn block_parameters(least: f32, largest: f32) -> Option<(f32, f32, i32)> {
    if largest == least {
        return None;
    }
    let scale = (largest - least) / DIGIT_LARGEST as f32;
    let inverse = 1.0 / scale;
    if !inverse.is_finite() {
        return None;
    }
    let zero_point = round_clamped(-least * inverse, DIGIT_LARGEST as f32).clamp(0, DIGIT_LARGEST);
    Some((scale, inverse, zero_point))
}

/// A block's scale, inverse and zero point from its lanes' least and largest values and `Σ v × 0`
/// (any number of lanes: they are folded from +0 by compare-and-select, so their order does not
/// matter), or, as `Err`, the block it is instead, its digits all 0: a NaN scale where it holds
/// inf or NaN, a block of zeros where [`block_parameters`] finds none. Shared by the portable,
/// AVX2 and SIMD128 quantisers (and [`non_negative_block`], which has no least or poison lanes).
#[inline(always)]
fn block_from_lanes(least: &[f32], largest: &[f32], poison: &[f32]) -> Result<(f32, f32, i32), DigitBlock> {
    let least = least.iter().fold(0f32, |a, &v| if v < a { v } else { a });
    let largest = largest.iter().fold(0f32, |a, &v| if v > a { v } else { a });
    if !poison.iter().sum::<f32>().is_finite() {
        return Err(DigitBlock { scale: f32::NAN, zero_point: 0 });
    }
    block_parameters(least, largest).ok_or_else(DigitBlock::default)
}

/// Each block of 32 values of `x` as digits, a scale and a zero point (see [`DigitRows`]); the
/// definition, and natively the code (written to vectorise: the least and largest in eight lanes
/// by compare-and-select, inf and NaN found as a non-finite `Σ v × 0`, [`round_clamped`]'s
/// rounding). wasm has its own SIMD128 version below, which gives the same digits bit for bit.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
// Inlined so that the AVX2 copy of `quantize_blocks` compiles it with AVX2 (called, it ran as the
// SSE2 baseline: a quarter of a native W30 profile).
#[inline(always)]
fn quantize_blocks_portable(x: &[f32], digits: &mut [u8], blocks: &mut [DigitBlock]) {
    for ((values, out), block) in x.chunks_exact(BLOCK).zip(digits.chunks_exact_mut(BLOCK)).zip(blocks) {
        let (mut least, mut largest, mut poison) = ([0f32; 8], [0f32; 8], [0f32; 8]);
        for eight in values.chunks_exact(8) {
            for lane in 0..8 {
                let v = eight[lane];
                least[lane] = if v < least[lane] { v } else { least[lane] };
                largest[lane] = if v > largest[lane] { v } else { largest[lane] };
                poison[lane] += v * 0.0;
            }
        }
        let (scale, inverse, zero_point) = match block_from_lanes(&least, &largest, &poison) {
            Ok(parameters) => parameters,
            Err(empty) => {
                *block = empty;
                out.fill(0);
                continue;
            }
        };
        let shifted = zero_point as f32;
        for (d, v) in out.iter_mut().zip(values) {
            // v × inverse + zero point lies in 0..=127 but for rounding: clamped on integers.
            *d = round_clamped(v * inverse + shifted, DIGIT_LARGEST as f32).clamp(0, DIGIT_LARGEST) as u8;
        }
        *block = DigitBlock { scale, zero_point };
    }
}

#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
fn quantize_blocks(x: &[f32], digits: &mut [u8], blocks: &mut [DigitBlock]) {
    quantize_blocks_portable(x, digits, blocks)
}

#[cfg(target_arch = "x86_64")]
fn quantize_blocks(x: &[f32], digits: &mut [u8], blocks: &mut [DigitBlock]) {
    if crate::cpu::avx2_fma() {
        // SAFETY: the CPU has AVX2 (that is what avx2_fma() checks).
        unsafe { quantize_blocks_avx2(x, digits, blocks) }
    } else {
        quantize_blocks_portable(x, digits, blocks)
    }
}

/// [`quantize_blocks_portable`] in AVX2, bit for bit, as the SIMD128 version below is (LLVM's
/// vectorisation of the portable loop left it a fifth of a native W30 profile). `vminps(v, a)` is
/// `v < a ? v : a`, the portable compare-and-select (so −0 never enters lanes that start at +0);
/// `vcvtps2dq` rounds to nearest even as `round_clamped`'s 1.5·2²³ does, on values already clamped
/// to [0, 127]; `mul` then `add`, unfused, as the portable code rounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_blocks_avx2(x: &[f32], digits: &mut [u8], blocks: &mut [DigitBlock]) {
    use core::arch::x86_64::*;
    let zero = _mm256_setzero_ps();
    let (low, high) = (zero, _mm256_set1_ps(DIGIT_LARGEST as f32));
    // packs then packus work within 128-bit halves: their 32 bytes hold the four vectors' low
    // halves, then their high halves (four digits each); this puts each vector's two together.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for ((values, out), block) in x.chunks_exact(BLOCK).zip(digits.chunks_exact_mut(BLOCK)).zip(blocks) {
        let from = values.as_ptr();
        let v: [__m256; 4] = core::array::from_fn(|i| _mm256_loadu_ps(from.add(8 * i)));
        let (mut least, mut largest, mut poison) = (zero, zero, zero);
        for &x in &v {
            least = _mm256_min_ps(x, least);
            largest = _mm256_max_ps(x, largest);
            poison = _mm256_add_ps(poison, _mm256_mul_ps(x, zero));
        }
        let lanes = |v: __m256| -> [f32; 8] { core::mem::transmute(v) };
        let (scale, inverse, zero_point) = match block_from_lanes(&lanes(least), &lanes(largest), &lanes(poison)) {
            Ok(parameters) => parameters,
            Err(empty) => {
                *block = empty;
                out.fill(0);
                continue;
            }
        };
        let (inverse, shifted) = (_mm256_set1_ps(inverse), _mm256_set1_ps(zero_point as f32));
        let digit = |x: __m256| _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(x, inverse), shifted), low), high));
        let words = (_mm256_packs_epi32(digit(v[0]), digit(v[1])), _mm256_packs_epi32(digit(v[2]), digit(v[3])));
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(words.0, words.1), order);
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, bytes);
        *block = DigitBlock { scale, zero_point };
    }
}

/// [`quantize_blocks_portable`] in SIMD128, bit for bit (LLVM did not vectorise the portable
/// loop for wasm: it was 31% of a W30 profile in Chromium). `f32x4.pmin(a, b)` is `b < a ? b :
/// a`, the portable compare-and-select; the lanes start at +0, so −0 never enters them and their
/// minimum and maximum do not depend on the order they are folded in; the clamp before rounding
/// meets only finite values (a block with inf or NaN is marked before), where `pmax`/`pmin`
/// equal `f32::max`/`min`; `mul` then `add`, unfused, as the portable code rounds. Four blocks
/// at a time: their lanes folded into one vector (a block per lane), whose scales, inverses and
/// zero points are then four lanes of the same IEEE operations the definition does one by one
/// (folding and dividing per block in scalar code was a third of this function's time).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn quantize_blocks(x: &[f32], digits: &mut [u8], blocks: &mut [DigitBlock]) {
    const FOUR: usize = 4 * BLOCK;
    let mut groups = x.chunks_exact(FOUR).zip(digits.chunks_exact_mut(FOUR)).zip(blocks.chunks_exact_mut(4));
    for ((values, out), four) in &mut groups {
        // SAFETY: `values` holds 4 × 32 f32 and `out` 4 × 32 bytes, what quantize_four_simd128 reads and writes.
        unsafe { quantize_four_simd128(values, out, four) };
    }
    let done = x.len() / FOUR;
    let rest = x[done * FOUR..].chunks_exact(BLOCK).zip(digits[done * FOUR..].chunks_exact_mut(BLOCK)).zip(&mut blocks[done * 4..]);
    for ((values, out), block) in rest {
        // SAFETY: as above, for one block.
        unsafe { quantize_one_simd128(values, out, block) };
    }
}

/// One block of 32 values into `out` and `block` (the last blocks of a row past a multiple of four).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn quantize_one_simd128(values: &[f32], out: &mut [u8], block: &mut DigitBlock) {
    use core::arch::wasm32::*;
    assert!(values.len() >= BLOCK);
    let from = values.as_ptr() as *const v128;
    let v: [v128; 8] = core::array::from_fn(|i| v128_load(from.add(i)));
    let [least, largest, poison] = block_lanes(&v);
    let lanes = |v: v128| -> [f32; 4] { core::mem::transmute(v) };
    match block_from_lanes(&lanes(least), &lanes(largest), &lanes(poison)) {
        Ok((scale, inverse, zero_point)) => {
            store_digits_simd128(&v, inverse, zero_point, out);
            *block = DigitBlock { scale, zero_point };
        }
        Err(empty) => {
            *block = empty;
            out[..BLOCK].fill(0);
        }
    }
}

/// Four blocks (4 × 32 values) into `out` (4 × 32 bytes) and `blocks`, as [`block_from_lanes`]
/// and [`block_parameters`] define them, a block per lane.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn quantize_four_simd128(values: &[f32], out: &mut [u8], blocks: &mut [DigitBlock]) {
    use core::arch::wasm32::*;
    assert!(values.len() >= 4 * BLOCK && out.len() >= 4 * BLOCK && blocks.len() >= 4);
    let from = values.as_ptr() as *const v128;
    let v: [[v128; 8]; 4] = core::array::from_fn(|b| core::array::from_fn(|i| v128_load(from.add(8 * b + i))));
    let [lanes0, lanes1, lanes2, lanes3] = [0, 1, 2, 3].map(|b| block_lanes(&v[b]));
    let [least, largest, poison] = [0, 1, 2].map(|k| [lanes0[k], lanes1[k], lanes2[k], lanes3[k]]);
    // Block b's lanes folded into lane b (any order gives the same value; see above). Σ v × 0
    // is ±0, or NaN where a value was inf or NaN: only whether it is finite matters.
    let (least, largest, poison) = (fold_lanes(least, |a, b| f32x4_pmin(a, b)), fold_lanes(largest, |a, b| f32x4_pmax(a, b)), fold_lanes(poison, |a, b| f32x4_add(a, b)));
    // block_parameters, a block per lane.
    let scale = f32x4_div(f32x4_sub(largest, least), f32x4_splat(DIGIT_LARGEST as f32));
    let inverse = f32x4_div(f32x4_splat(1.0), scale);
    let limit = DIGIT_LARGEST as f32;
    let shifted = f32x4_pmin(f32x4_pmax(f32x4_mul(f32x4_neg(least), inverse), f32x4_splat(-limit)), f32x4_splat(limit));
    let rounded = i32x4_sub(f32x4_add(shifted, f32x4_splat(ROUND_MAGIC)), i32x4_splat(ROUND_MAGIC.to_bits() as i32));
    let zero_point = i32x4_min(i32x4_max(rounded, i32x4_splat(0)), i32x4_splat(DIGIT_LARGEST));
    let f32s = |v: v128| -> [f32; 4] { core::mem::transmute(v) };
    let (least, largest, poison, scale, inverse) = (f32s(least), f32s(largest), f32s(poison), f32s(scale), f32s(inverse));
    let zero_point: [i32; 4] = core::mem::transmute(zero_point);
    for b in 0..4 {
        let out = &mut out[b * BLOCK..(b + 1) * BLOCK];
        blocks[b] = if !poison[b].is_finite() {
            out.fill(0);
            DigitBlock { scale: f32::NAN, zero_point: 0 }
        } else if largest[b] == least[b] || !inverse[b].is_finite() {
            out.fill(0);
            DigitBlock::default()
        } else {
            store_digits_simd128(&v[b], inverse[b], zero_point[b], out);
            DigitBlock { scale: scale[b], zero_point: zero_point[b] }
        };
    }
}

/// A block's 32 values `v` in four lanes each: `[least, largest, Σ v × 0]`, the lanes starting at
/// +0 (see [`quantize_blocks`]); [`block_from_lanes`] folds them.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn block_lanes(v: &[core::arch::wasm32::v128; 8]) -> [core::arch::wasm32::v128; 3] {
    use core::arch::wasm32::*;
    let zero = f32x4_splat(0.0);
    let (mut least, mut largest, mut poison) = (zero, zero, zero);
    for &x in v {
        least = f32x4_pmin(least, x);
        largest = f32x4_pmax(largest, x);
        poison = f32x4_add(poison, f32x4_mul(x, zero));
    }
    [least, largest, poison]
}

/// `[fold(a[0]), fold(a[1]), fold(a[2]), fold(a[3])]`: each vector's four lanes folded by `op`
/// into the lane of its index (two rounds of pairing lanes by shuffles).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn fold_lanes(a: [core::arch::wasm32::v128; 4], op: impl Fn(core::arch::wasm32::v128, core::arch::wasm32::v128) -> core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    // [a0₀∘a0₂, a0₁∘a0₃, a1₀∘a1₂, a1₁∘a1₃], and the same for a2, a3.
    let low = op(i32x4_shuffle::<0, 1, 4, 5>(a[0], a[1]), i32x4_shuffle::<2, 3, 6, 7>(a[0], a[1]));
    let high = op(i32x4_shuffle::<0, 1, 4, 5>(a[2], a[3]), i32x4_shuffle::<2, 3, 6, 7>(a[2], a[3]));
    op(i32x4_shuffle::<0, 2, 4, 6>(low, high), i32x4_shuffle::<1, 3, 5, 7>(low, high))
}

/// The 32 digits of a block's values `v` (eight vectors of four) for its inverse scale and zero
/// point, as the portable definition rounds them, into `out` (32 bytes).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn store_digits_simd128(v: &[core::arch::wasm32::v128; 8], inverse: f32, zero_point: i32, out: &mut [u8]) {
    use core::arch::wasm32::*;
    assert!(out.len() >= BLOCK);
    let (inverse, shifted) = (f32x4_splat(inverse), f32x4_splat(zero_point as f32));
    let (low, high, magic) = (f32x4_splat(0.0), f32x4_splat(DIGIT_LARGEST as f32), f32x4_splat(ROUND_MAGIC));
    // Clamped to [0, 127] before rounding, where the definition clamps to ±127, rounds,
    // then clamps to 0..=127: the same digit for every finite value (below 0 both give
    // 0; rounding a value in [0, 127] stays in 0..=127). `t + 1.5·2²³` then holds the
    // digit in its low byte.
    let digit = |x: v128| f32x4_add(f32x4_pmin(f32x4_pmax(f32x4_add(f32x4_mul(x, inverse), shifted), low), high), magic);
    // The low byte of each lane of four vectors, in order (two shuffles for each pair of
    // vectors, one to join them): the saturating narrows were split into lane moves.
    let lows = |a: v128, b: v128| i8x16_shuffle::<0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28>(a, b);
    let to = out.as_mut_ptr() as *mut v128;
    for half in 0..2 {
        let d = &v[half * 4..half * 4 + 4];
        let (first, second) = (lows(digit(d[0]), digit(d[1])), lows(digit(d[2]), digit(d[3])));
        v128_store(to.add(half), i8x16_shuffle::<0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23>(first, second));
    }
}

/// The digits of one block of 32 values that are all ≥ 0 (attention's probabilities before
/// their row's division) into `digits` (32 bytes), and its scale and zero point: what
/// [`DigitRows::new`] gives such a block, bit for bit. Its least value is +0 (the lanes start
/// there and nothing below enters), so only the largest is searched, and no value is checked for
/// inf or NaN: the caller's row scale (1 / the row's sum) carries those. Portable here; SIMD128 in
/// wasm.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
pub(in crate::int8) fn non_negative_block(values: &[f32; BLOCK], digits: &mut [u8]) -> DigitBlock {
    let mut largest = [0f32; 8];
    for eight in values.chunks_exact(8) {
        for lane in 0..8 {
            largest[lane] = if eight[lane] > largest[lane] { eight[lane] } else { largest[lane] };
        }
    }
    let digits = &mut digits[..BLOCK];
    let (scale, inverse, zero_point) = match block_from_lanes(&[], &largest, &[]) {
        Ok(parameters) => parameters,
        Err(empty) => {
            digits.fill(0);
            return empty;
        }
    };
    let shifted = zero_point as f32;
    for (d, v) in digits.iter_mut().zip(values) {
        *d = round_clamped(v * inverse + shifted, DIGIT_LARGEST as f32).clamp(0, DIGIT_LARGEST) as u8;
    }
    DigitBlock { scale, zero_point }
}

/// [`non_negative_block`] in SIMD128 (the same digits, scale and zero point).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(in crate::int8) fn non_negative_block(values: &[f32; BLOCK], digits: &mut [u8]) -> DigitBlock {
    use core::arch::wasm32::*;
    // SAFETY: `values` holds 32 f32 (eight loads of four); store_digits_simd128 checks `digits`.
    unsafe {
        let from = values.as_ptr() as *const v128;
        let v: [v128; 8] = core::array::from_fn(|i| v128_load(from.add(i)));
        let mut largest = f32x4_splat(0.0);
        for &x in &v {
            largest = f32x4_pmax(largest, x);
        }
        let lanes = [f32x4_extract_lane::<0>(largest), f32x4_extract_lane::<1>(largest), f32x4_extract_lane::<2>(largest), f32x4_extract_lane::<3>(largest)];
        let (scale, inverse, zero_point) = match block_from_lanes(&[], &lanes, &[]) {
            Ok(parameters) => parameters,
            Err(empty) => {
                digits[..BLOCK].fill(0);
                return empty;
            }
        };
        store_digits_simd128(&v, inverse, zero_point, digits);
        DigitBlock { scale, zero_point }
    }
}

/// Whether `quantize_blocks` (the SIMD128 version in wasm) gives the digits, scales (to the bit)
/// and zero points of its portable definition for `x` (whole blocks): the browser tests call this
/// through the wasm module, where no Rust test runs.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub fn digit_quantiser_agrees(x: &[f32]) -> bool {
    let values = &x[..x.len() / BLOCK * BLOCK];
    let quantize = |f: fn(&[f32], &mut [u8], &mut [DigitBlock])| {
        let (mut digits, mut blocks) = (vec![0u8; values.len()], vec![DigitBlock::default(); values.len() / BLOCK]);
        f(values, &mut digits, &mut blocks);
        (digits, blocks.iter().map(|b| (b.scale.to_bits(), b.zero_point)).collect::<Vec<_>>())
    };
    quantize(quantize_blocks) == quantize(quantize_blocks_portable)
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
    fn digits_hold_each_value_within_half_a_step() {
        let mut x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
        x[3] = 0.0;
        x[40..].iter_mut().for_each(|v| *v = v.abs() + 0.1); // a block of one sign
        let rows = DigitRows::new(&x, 64);
        for (k, &v) in x.iter().enumerate() {
            let block = rows.blocks[k / BLOCK];
            assert!(rows.digits[k] <= 127 && (0..=127).contains(&block.zero_point));
            let back = (rows.digits[k] as i32 - block.zero_point) as f32 * block.scale;
            assert!((back - v).abs() <= 0.5 * block.scale * 1.0001 + 1e-7, "{v} came back as {back}");
        }
        assert_eq!(rows.digits[3] as i32, rows.blocks[0].zero_point, "zero is exact");
        assert_eq!(rows.blocks[1].zero_point, 0, "a block of positive values uses all 127 steps");
    }

    #[test]
    fn the_simd_quantiser_equals_its_definition() {
        // Natively the AVX2 version (where the CPU has it) against the portable one, bit for bit:
        // values over many magnitudes, ties for the rounding (x.5 steps), −0, subnormal spans,
        // blocks of one sign, of zeros, and with inf or NaN.
        let mut x: Vec<f32> = (0..4096usize).map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 10f32.powi((i % 11) as i32 - 5)).collect();
        x[32..64].iter_mut().enumerate().for_each(|(k, v)| *v = k as f32 * 0.5); // ties
        x[64..96].fill(-0.0);
        x[96..128].iter_mut().enumerate().for_each(|(k, v)| *v = f32::from_bits(k as u32 + 1)); // subnormals
        x[128..160].fill(0.0);
        x[160..192].iter_mut().for_each(|v| *v = v.abs());
        x[200] = f32::INFINITY;
        x[250] = f32::NAN;
        x[300] = f32::NEG_INFINITY;
        assert!(digit_quantiser_agrees(&x));
        for shift in 1..32 {
            assert!(digit_quantiser_agrees(&x[shift..]), "offset {shift}");
        }
    }

    #[test]
    fn non_finite_rows_are_marked_and_zero_rows_are_zero() {
        let mut x = vec![0f32; 3 * 64];
        x[64 + 40] = f32::INFINITY;
        x[128] = 1.0;
        let rows = DigitRows::new(&x, 64);
        assert!(!rows.all_finite());
        assert!(rows.blocks[2].scale.is_nan() && rows.blocks[3].scale.is_nan(), "the whole row");
        assert_eq!(rows.blocks[0], DigitBlock::default());
        assert!(DigitRows::new(&x[..64], 64).all_finite());
    }
}

//! GELU (erf) and softmax on the CPU without calling libm per element: `erff` and `expf` are
//! scalar calls that LLVM cannot vectorise, and they took a third of the native profile (20% and
//! 11–15%). Here both are branch-free polynomials over plain loops, which LLVM vectorises on its
//! own (SIMD128 in wasm; natively 8 wide with fused multiply-adds where the CPU has AVX2 and FMA,
//! see [`crate::cpu`]). Accuracy (tested below against f64, on both native paths): GELU within
//! 1e-6 × max(1, |x|) of the exact value, exp within 2 ulp.
//!
//! Other devices (CUDA) keep candle's kernels; see [`gelu_erf`] and [`masked_softmax`].

use candle_core::{CpuStorage, Device, Storage, Tensor};

use crate::cpu::multiversioned;
use crate::error::Result;

/// The exact (erf) GELU of BERT's `hidden_act: "gelu"`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !matches!(x.device(), Device::Cpu) {
        return Ok(x.gelu_erf()?);
    }
    let values = with_values(x, gelu_values)?;
    Ok(Tensor::from_vec(values, x.shape(), x.device())?)
}

/// Values per task when the threads share an element-wise function.
const ELEMENTS_PER_TASK: usize = 1 << 16;

fn gelu_values(values: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    crate::cpu::for_each_chunk(&mut out, ELEMENTS_PER_TASK, |i, out| {
        gelu_into(&values[i * ELEMENTS_PER_TASK..][..out.len()], out)
    });
    out
}

multiversioned! {
    fn gelu_into(values: &[f32], out: &mut [f32]) {
        out.iter_mut().zip(values).for_each(|(y, &v)| *y = gelu_erf_scalar(v));
    }
}

/// Attention's softmax over the last dimension of `scores` `(batch, heads, rows, seq)`, after
/// adding `mask_bias` `(batch, 1, 1, seq)` when there is one: on the CPU in one pass that reads
/// the scores where they lie, instead of a broadcast add, a copy and a softmax.
pub fn masked_softmax(scores: &Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
    if !matches!(scores.device(), Device::Cpu) {
        let scores = match mask_bias {
            Some(mask_bias) => scores.broadcast_add(mask_bias)?,
            None => scores.clone(),
        };
        return Ok(candle_nn::ops::softmax_last_dim(&scores)?);
    }
    let (batch, heads, rows, seq) = scores.dims4()?;
    let mask = AttentionMask::read(mask_bias, batch, seq)?;
    let values = with_values(scores, |scores| softmax_rows(scores, seq, (heads * rows).max(1), &mask))?;
    Ok(Tensor::from_vec(values, (batch, heads, rows, seq), scores.device())?)
}

/// Softmax of each row of `seq` scores plus its pair's mask (pair = row / rows_per_pair).
fn softmax_rows(scores: &[f32], seq: usize, rows_per_pair: usize, mask: &AttentionMask) -> Vec<f32> {
    let mut out = vec![0f32; scores.len()];
    let rows_per_task = (ELEMENTS_PER_TASK / seq.max(1)).max(1);
    crate::cpu::for_each_chunk(&mut out, rows_per_task * seq, |i, out| {
        softmax_rows_into(&scores[i * rows_per_task * seq..][..out.len()], i * rows_per_task, seq, rows_per_pair, mask, out)
    });
    out
}

multiversioned! {
    /// Rows `first ..` (as many as `out` holds) of [`softmax_rows`].
    fn softmax_rows_into(scores: &[f32], first: usize, seq: usize, rows_per_pair: usize, mask: &AttentionMask, out: &mut [f32]) {
        for (i, (row, out_row)) in scores.chunks_exact(seq.max(1)).zip(out.chunks_exact_mut(seq.max(1))).enumerate() {
            mask.apply((first + i) / rows_per_pair, row, out_row);
            softmax_row(out_row);
        }
    }
}

/// Attention's additive mask `(batch, 1, 1, seq)` as values (0 for tokens, a large negative
/// number for padding), read once per attention call: the f32 and the int8 attention share it.
pub(crate) struct AttentionMask {
    seq: usize,
    values: Option<Vec<f32>>,
}

impl AttentionMask {
    pub(crate) fn read(mask_bias: Option<&Tensor>, batch: usize, seq: usize) -> Result<Self> {
        let values = match mask_bias {
            Some(mask_bias) => Some(mask_bias.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        if let Some(values) = &values {
            if values.len() != batch * seq {
                return Err(crate::error::Error::Compute(format!("attention mask holds {} values for {batch} × {seq}", values.len())));
            }
        }
        Ok(Self { seq, values })
    }

    /// `out = scores + pair's mask` (or a copy of `scores` without a mask), one row of `seq`.
    #[inline(always)]
    pub(crate) fn apply(&self, pair: usize, scores: &[f32], out: &mut [f32]) {
        match &self.values {
            Some(values) => {
                let bias = &values[pair * self.seq..(pair + 1) * self.seq];
                out.iter_mut().zip(scores).zip(bias).for_each(|((o, s), b)| *o = s + b);
            }
            None => out.copy_from_slice(scores),
        }
    }

    /// Pair `pair`'s keys up to its last one that is not padding (batches are padded at the end):
    /// a padding key's bias is so negative (the model adds −f32::MAX) that its probability is
    /// exactly 0 whatever its score.
    pub(crate) fn unpadded_len(&self, pair: usize) -> usize {
        let Some(values) = &self.values else { return self.seq };
        let bias = &values[pair * self.seq..(pair + 1) * self.seq];
        bias.iter().rposition(|&b| b > -f32::MAX / 2.0).map_or(0, |key| key + 1)
    }
}

/// Runs `f` on an f32 CPU tensor's values, borrowed where they lie contiguously (no copy), else
/// on a copy.
pub(crate) fn with_values<T>(x: &Tensor, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&values[start..end]));
        }
    }
    let values = x.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&values))
}

/// Refuses activations holding inf or NaN, or (with `limit`) a value beyond it, with a `compute`
/// error naming `what`. The f32 path would mostly carry them to a non-finite logit, but the int8
/// and Q8 quantisers round them to finite integers, tanh saturates them, and LayerNorm's f32
/// variance overflows into a finite output: any of those gives a finite, wrong score. One
/// vectorised pass, on the CPU only (a GPU keeps IEEE propagation and the final logit check).
/// `what` is called only on an error: this runs after every layer, so nothing is formatted there.
pub(crate) fn check_activations(x: &Tensor, limit: f32, what: impl FnOnce() -> String) -> Result<()> {
    if !matches!(x.device(), Device::Cpu) {
        return Ok(());
    }
    let largest = with_values(x, crate::int8::largest_magnitude)?;
    if largest.is_finite() && largest <= limit {
        return Ok(());
    }
    let found = if largest.is_finite() { format!("a value of magnitude {largest:e}, past {limit:e}") } else { "a non-finite value".into() };
    Err(overflow(&what(), &found))
}

/// The one message for activations the model cannot represent: `what` holds `found`.
pub(crate) fn overflow(what: &str, found: &str) -> crate::error::Error {
    crate::error::Error::Compute(format!("{what} holds {found}: the model overflows f32 on this input"))
}

#[inline(always)]
fn gelu_erf_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as x·P(x²)/Q(x²) on [-4, 4] (beyond, erf rounds to ±1 in f32): the rational minimax form
/// used by Eigen and XLA; absolute error below 5e-7.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_258_013_06e-10_f32;
    p = p * x2 + 2.770_681_424_959_02e-8;
    p = p * x2 - 2.101_024_020_825_08e-6;
    p = p * x2 - 5.692_506_394_623_46e-5;
    p = p * x2 - 7.349_906_303_268_55e-4;
    p = p * x2 - 2.954_599_808_540_25e-3;
    p = p * x2 - 1.609_603_332_624_15e-2;
    let mut q = -1.456_607_184_649_96e-5_f32;
    q = q * x2 - 2.133_740_552_789_05e-4;
    q = q * x2 - 1.682_826_974_382_03e-3;
    q = q * x2 - 7.373_329_167_204_68e-3;
    q = q * x2 - 1.426_473_905_141_89e-2;
    (x * p / q).clamp(-1.0, 1.0)
}

/// e^x by range reduction: x = n·ln2 + r with |r| ≤ ln2/2, e^r by Cephes' degree-6 polynomial,
/// 2^n put straight into the exponent bits. Inputs below -87 give exactly 0, as they round to
/// (near) 0 anyway: padding's large negative mask must not produce subnormal numbers, which
/// x86 computes a hundred times slower. (Softmax subtracts the row's maximum first, so x ≤ 0.)
#[inline(always)]
fn exp(input: f32) -> f32 {
    let x = input.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5·2²³ (no `roundeven` call, which x86-64's
    // baseline lacks as an instruction and which would stop the loop from vectorising).
    const ROUND: f32 = 12_582_912.0;
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    // ln2 in two parts, so that n·ln2 is subtracted without losing r's low bits.
    let r = x - n * 0.693_359_375 - n * -2.121_944_400_5e-4;
    let mut p = 1.987_569_150_0e-4_f32;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    let y = p * r * r + r + 1.0;
    // n as an integer from the same bits (the low mantissa bits of `rounded`): a float-to-int
    // cast saturates lane by lane on x86 and would not vectorise.
    let n_bits = rounded.to_bits() as i32 - ROUND.to_bits() as i32;
    let value = y * f32::from_bits(((n_bits + 127) as u32) << 23);
    if input < -87.0 {
        0.0
    } else {
        value
    }
}

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let sum = exp_row(row);
    let inverse = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inverse);
}

/// Softmax without the division: `row` becomes `exp(v − max)` (so its largest value is exactly
/// 1) and the sum is returned. A fully masked row (max −∞) becomes NaN, as candle's softmax does.
#[inline(always)]
pub(crate) fn exp_row(row: &mut [f32]) -> f32 {
    let mut exps = ExpBlocks::new(row);
    if !exps.finite() {
        row.iter_mut().for_each(|v| *v = f32::NAN);
        return f32::NAN;
    }
    for block in row.chunks_mut(32) {
        let values = exps.block(block);
        block.copy_from_slice(&values[..block.len()]);
    }
    exps.sum()
}

/// The exponentials of [`exp_row`], 32 values at a time (it writes them back; int8 attention
/// quantises them without writing them): `(max, sums)` to start with (NaN max
/// for a row whose max is not finite), then [`ExpBlocks::block`] for each block of 32 in order and
/// [`ExpBlocks::sum`] (eight lanes take the row's chunks of eight in order, the last few go to a
/// tail). No closure:
/// code in a closure is not compiled with its caller's AVX2 (`multiversioned!`).
pub(crate) struct ExpBlocks {
    max: f32,
    sums: [f32; 8],
    tail: f32,
}

impl ExpBlocks {
    #[inline(always)]
    pub(crate) fn new(row: &[f32]) -> Self {
        let max = lanes(row, f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
        Self { max, sums: [0.0; 8], tail: 0.0 }
    }

    /// Whether the row has a finite max (else it is fully masked: no blocks, NaN sum).
    #[inline(always)]
    pub(crate) fn finite(&self) -> bool {
        self.max.is_finite()
    }

    /// `exp(v − max)` of the next ≤ 32 values of the row (zeros past them).
    #[inline(always)]
    pub(crate) fn block(&mut self, block: &[f32]) -> [f32; 32] {
        let mut exps = [0f32; 32];
        let mut chunks = block.chunks_exact(8);
        for (eight, chunk) in exps.chunks_exact_mut(8).zip(&mut chunks) {
            for ((e, v), sum) in eight.iter_mut().zip(chunk).zip(&mut self.sums) {
                *e = exp(*v - self.max);
                *sum += *e;
            }
        }
        let rest = chunks.remainder();
        let start = block.len() - rest.len();
        for (e, v) in exps[start..block.len()].iter_mut().zip(rest) {
            *e = exp(*v - self.max);
            self.tail += *e;
        }
        exps
    }

    #[inline(always)]
    pub(crate) fn sum(&self) -> f32 {
        if !self.finite() {
            return f32::NAN;
        }
        self.sums.iter().fold(self.tail, |a, s| a + s)
    }
}

/// A reduction in 8 independent lanes: float reductions are not reassociated by the compiler,
/// so a plain fold runs one element at a time; eight accumulators vectorise.
#[inline(always)]
fn lanes(values: &[f32], init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = op(*a, v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, &v| op(a, v));
    acc.iter().fold(tail, |a, &v| op(a, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf to double precision (Abramowitz–Stegun 7.1.26 is too coarse for a reference): the
    /// Taylor series, which converges for the |x| ≤ 6 checked here.
    fn erf64(x: f64) -> f64 {
        if x.abs() > 6.0 {
            return x.signum();
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
            if n > 400.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn gelu_is_within_1e_6_of_exact() {
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            let exact = 0.5 * x as f64 * (1.0 + erf64(x as f64 / std::f64::consts::SQRT_2));
            let got = gelu_erf_scalar(x) as f64;
            assert!((got - exact).abs() <= 1e-6 * (x.abs() as f64).max(1.0), "gelu({x}) = {got}, exact {exact}");
        }
        assert_eq!(gelu_erf_scalar(20.0), 20.0);
        assert_eq!(gelu_erf_scalar(-20.0), 0.0);
    }

    #[test]
    fn exp_is_within_2_ulp() {
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let exact = (x as f64).exp();
            let got = exp(x) as f64;
            assert!((got - exact).abs() <= 2.0 * f32::EPSILON as f64 * exact, "exp({x}) = {got}, exact {exact}");
        }
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(-1e9), 0.0);
    }

    #[test]
    fn both_native_paths_are_within_the_bounds() {
        // The functions as the model calls them: compiled with AVX2+FMA where the CPU has them
        // (fused multiply-adds round differently), and the baseline.
        let xs: Vec<f32> = (-60_000..=60_000).map(|i| i as f32 / 10_000.0).collect();
        for gelu in [gelu_values(&xs), crate::cpu::with_baseline(|| gelu_values(&xs))] {
            for (&x, &got) in xs.iter().zip(&gelu) {
                let exact = 0.5 * x as f64 * (1.0 + erf64(x as f64 / std::f64::consts::SQRT_2));
                assert!((got as f64 - exact).abs() <= 1e-6 * (x.abs() as f64).max(1.0), "gelu({x}) = {got}, exact {exact}");
            }
        }
        // exp_row subtracts the row's maximum (0 here), so it computes exp(x) for x ≤ 0 (down to
        // −70: the quotients stay normal numbers, whose relative error this bounds).
        let row: Vec<f32> = (-70_000..=0).map(|i| i as f32 / 1000.0).collect();
        let softmax = |row: &[f32]| {
            let mask = AttentionMask { seq: row.len(), values: None };
            softmax_rows(row, row.len(), 1, &mask)
        };
        let sum: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        for probabilities in [softmax(&row), crate::cpu::with_baseline(|| softmax(&row))] {
            for (&x, &got) in row.iter().zip(&probabilities) {
                let exact = (x as f64).exp() / sum;
                assert!((got as f64 - exact).abs() <= 4.0 * f32::EPSILON as f64 * exact, "softmax at {x}: {got}, exact {exact}");
            }
        }
    }

    #[test]
    fn tensors_match_candle() {
        let device = Device::Cpu;
        let x = Tensor::from_vec((0..96).map(|i| (i as f32 - 48.0) / 7.0).collect::<Vec<_>>(), (2, 3, 16), &device).unwrap();
        let ours = gelu_erf(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let theirs = x.gelu_erf().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        ours.iter().zip(&theirs).for_each(|(a, b)| assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}"));
        // Scores (batch 2, heads 3, rows 2, seq 8) with a mask that hides the second pair's last 3 keys.
        let scores = x.reshape((2, 3, 2, 8)).unwrap();
        let mask: Vec<f32> = (0..16).map(|i| if i >= 13 { -1e4 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (2, 1, 1, 8), &device).unwrap();
        for mask in [None, Some(&mask)] {
            let ours = masked_softmax(&scores, mask).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let masked = match mask {
                Some(mask) => scores.broadcast_add(mask).unwrap(),
                None => scores.clone(),
            };
            let theirs = candle_nn::ops::softmax_last_dim(&masked).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            ours.iter().zip(&theirs).for_each(|(a, b)| assert!((a - b).abs() <= 1e-6, "{a} vs {b}"));
        }
        // A transposed (non-contiguous) tensor is read through a copy, with the same values.
        let transposed = x.reshape((2, 16, 3)).unwrap().transpose(1, 2).unwrap();
        let ours = gelu_erf(&transposed).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let theirs = transposed.gelu_erf().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        ours.iter().zip(&theirs).for_each(|(a, b)| assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}"));
    }
}

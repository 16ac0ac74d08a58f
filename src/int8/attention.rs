//! Attention's two products (`Q Kᵀ` and `P V`) on the interleaved int8 kernels: the relaxed-SIMD
//! build's, or natively the AVX2 one (the same numbers on every CPU).
//!
//! Why: once the linear layers run on the relaxed dot, the f32 attention products are a quarter
//! of a 512-token call in Chromium (candle's SIMD128 GEMM is at f32x4's mul+add peak already),
//! and on the int8 kernel they run ~3× faster. Natively the f32 path's (batch, heads, rows, seq)
//! scores tensor, written, softmaxed into a second one and read back, was a quarter of the time
//! (softmax 15%, most of it memory traffic). Only quantised models take this path
//! ([`crate::linear::Linear::is_int8`]): an f32 model keeps exact f32 attention.
//!
//! Accuracy: keys and values are rounded to 8 bits per block of 32 (Q8_0's rounding, which the
//! weights that made them already carry); queries and probabilities to one 7-bit digit per value
//! with a scale and zero point per block of 32, as the linear layers' activations. Each (pair,
//! head) is one small matrix product pair, so nothing the size of a pair's scores lives longer
//! than one head (and natively the heads share the threads).

use candle_core::Tensor;

use super::{DigitRows, Int8Matrix, InterleavedMatrix, Kernel, BLOCK};
use crate::activations::{exp_row, with_values, AttentionMask};
use crate::error::{Error, Result};

/// Whether [`attend`] takes heads of this size (its rows are quantised in blocks of 32).
pub fn supports(head_size: usize) -> bool {
    head_size > 0 && head_size % BLOCK == 0
}

/// Whether this build and CPU have an int8 kernel that attention runs faster on than f32.
pub fn available() -> bool {
    Kernel::detect().runs_attention()
}

/// Query rows taken through scores, softmax and context at a time: their scores and
/// probabilities (~100 KB each for 512 keys) stay in L2 between the passes, where a whole head's
/// (~1 MB) did not. Rows are independent, so the numbers do not depend on it.
const ROWS_AT_ONCE: usize = 64;

/// `softmax(Q Kᵀ + mask) V` for `query` `(batch, heads, rows, head)`, `key` and `value`
/// `(batch, heads, seq, head)` (queries already scaled), `mask_bias` `(batch, 1, 1, seq)`.
pub fn attend(query: &Tensor, key: &Tensor, value: &Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
    let head = query.dims4()?.3;
    if !supports(head) {
        return Err(Error::Compute(format!("int8 attention needs a head size that is a multiple of {BLOCK}, got {head}")));
    }
    let kernel = Kernel::detect();
    if !kernel.runs_attention() {
        return Err(Error::Compute("int8 attention needs the relaxed-SIMD build or an x86-64 CPU with AVX2".into()));
    }
    attend_with(query, key, value, mask_bias)
}

fn attend_with(query: &Tensor, key: &Tensor, value: &Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
    let (batch, heads, rows, head) = query.dims4()?;
    let seq = key.dim(2)?;
    let mask = AttentionMask::read(mask_bias, batch, seq)?;
    // Values are multiplied along the keys, which the kernel takes in blocks of 32: pad with
    // zero values (and zero probabilities).
    let padded = seq.div_ceil(BLOCK) * BLOCK;
    let mut context = vec![0f32; batch * heads * rows * head];
    // Set by a head whose scores were not finite (a row's softmax then has no finite scale, which
    // the kernels would turn into zeros: a finite, wrong context).
    let non_finite = std::sync::atomic::AtomicBool::new(false);
    with_values(query, |query| {
        with_values(key, |key| {
            with_values(value, |value| {
                // One (pair, head) per chunk, the heads shared by the threads.
                crate::cpu::for_each_chunk(&mut context, rows * head, |at, context| {
                    let pair = at / heads.max(1);
                    let q = &query[at * rows * head..(at + 1) * rows * head];
                    let k = &key[at * seq * head..(at + 1) * seq * head];
                    let v = &value[at * seq * head..(at + 1) * seq * head];
                    // The keys are the scores' weight (one output per key), Vᵀ the context's (one
                    // output per head dimension): both in the interleaved layout, once per head.
                    let keys = InterleavedMatrix::new(&Int8Matrix::quantize(k, seq, head));
                    let mut transposed = vec![0f32; head * padded];
                    transpose(v, head, padded, &mut transposed);
                    let values = InterleavedMatrix::new(&Int8Matrix::quantize(&transposed, head, padded));
                    let (mut probabilities, mut row_scales) = (vec![0f32; ROWS_AT_ONCE.min(rows) * padded], vec![0f32; ROWS_AT_ONCE.min(rows)]);
                    for (chunk, context) in context.chunks_mut(ROWS_AT_ONCE * head).enumerate() {
                        let n = context.len() / head;
                        let first = chunk * ROWS_AT_ONCE;
                        let scores = keys.matmul_here(&DigitRows::new(&q[first * head..(first + n) * head], head));
                        let (probabilities, row_scales) = (&mut probabilities[..n * padded], &mut row_scales[..n]);
                        softmax_rows(&scores, &mask, pair, seq, probabilities, row_scales);
                        if !row_scales.iter().all(|scale| scale.is_finite()) {
                            non_finite.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        // Probabilities lie in [0, 1] (times their row's scale): no search for the largest.
                        context.copy_from_slice(&values.matmul_here(&DigitRows::in_unit_range(probabilities, padded, row_scales)));
                    }
                });
            })
        })
    })???;
    if non_finite.into_inner() {
        return Err(Error::Compute("attention scores hold a non-finite value: the model overflows f32 on this input".into()));
    }
    Ok(Tensor::from_vec(context, (batch, heads, rows, head), query.device())?)
}

crate::cpu::multiversioned! {
    /// `exp(score + mask − max)` per row of `seq` scores (largest exactly 1) into rows of
    /// `probabilities` (padding stays 0), quantised as is: the division by the row's sum goes
    /// into the row's scale.
    fn softmax_rows(scores: &[f32], mask: &AttentionMask, pair: usize, seq: usize, probabilities: &mut [f32], row_scales: &mut [f32]) {
        let padded = probabilities.len() / row_scales.len().max(1);
        for ((scores, out), scale) in scores.chunks_exact(seq.max(1)).zip(probabilities.chunks_exact_mut(padded.max(1))).zip(row_scales) {
            let out = &mut out[..seq];
            mask.apply(pair, scores, out);
            *scale = 1.0 / exp_row(out);
        }
    }
}

/// `values` `(seq, head)` into `transposed` `(head, padded)`: Vᵀ is the context's weight (one
/// output per head dimension); columns past `seq` stay 0.
fn transpose(values: &[f32], head: usize, padded: usize, transposed: &mut [f32]) {
    for (j, row) in values.chunks_exact(head).enumerate() {
        for (d, &x) in row.iter().enumerate() {
            transposed[d * padded + j] = x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_f32_attention_within_the_rounding() {
        let device = Device::Cpu;
        let (batch, heads, rows, seq, head) = (2, 3, 5, 7, 32);
        let values = |n: usize, salt: usize| -> Vec<f32> { (0..n).map(|i| (((i * 7919 + salt) % 1000) as f32 / 500.0 - 1.0) * 0.7).collect() };
        let q = Tensor::from_vec(values(batch * heads * rows * head, 1), (batch, heads, rows, head), &device).unwrap();
        let k = Tensor::from_vec(values(batch * heads * seq * head, 2), (batch, heads, seq, head), &device).unwrap();
        let v = Tensor::from_vec(values(batch * heads * seq * head, 3), (batch, heads, seq, head), &device).unwrap();
        // The second pair's last two keys are padding.
        let mask: Vec<f32> = (0..batch * seq).map(|i| if i >= 2 * seq - 2 { -1e4 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (batch, 1, 1, seq), &device).unwrap();
        let scores = q.matmul(&k.t().unwrap()).unwrap().broadcast_add(&mask).unwrap();
        let exact = candle_nn::ops::softmax_last_dim(&scores).unwrap().matmul(&v).unwrap();
        let exact = exact.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = attend_with(&q, &k, &v, Some(&mask)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = got.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // Scores move by ~|q|·|k| times the rounding steps: well under 1e-2 here.
        assert!(worst < 1e-2, "int8 attention is {worst} from f32");
        assert!(worst > 0.0, "the int8 path was not taken");
        // The scalar definition gives the same numbers as whichever kernel ran.
        let scalar = crate::cpu::with_baseline(|| attend_with(&q, &k, &v, Some(&mask))).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got, scalar);
    }

    #[test]
    fn refuses_heads_it_cannot_block() {
        let t = Tensor::zeros((1, 1, 2, 48), candle_core::DType::F32, &Device::Cpu).unwrap();
        let error = attend(&t, &t, &t, None).unwrap_err().to_string();
        assert!(error.contains("multiple of 32, got 48"), "{error}");
    }
}

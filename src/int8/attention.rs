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

use super::quantize::{non_negative_block, DigitBlock};
use super::{DigitRows, Int8Matrix, InterleavedMatrix, Kernel, BLOCK};
use crate::activations::{with_values, AttentionMask, ExpBlocks};
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

/// `softmax(Q Kᵀ + mask) V`, head by head, read from and written in the layers' own layout:
/// `query` `(batch, rows, heads × head)` not yet scaled, `key` and `value` `(batch, seq, heads ×
/// head)`, `mask_bias` `(batch, 1, 1, seq)`; returns the context `(batch, rows, heads × head)`.
/// Each head's rows are gathered (the query's times `scale`) as they are quantised, so no
/// tensor is split into heads and copied first, and the queries are not scaled in a pass of their own.
pub fn attend(query: &Tensor, key: &Tensor, value: &Tensor, mask_bias: Option<&Tensor>, heads: usize, scale: f32) -> Result<Tensor> {
    let width = query.dims3()?.2;
    let head = width / heads.max(1);
    if !supports(head) || head * heads != width {
        return Err(Error::Compute(format!("int8 attention needs a head size that is a multiple of {BLOCK}, got {head} ({width} wide / {heads} heads)")));
    }
    let kernel = Kernel::detect();
    if !kernel.runs_attention() {
        return Err(Error::Compute("int8 attention needs the relaxed-SIMD build or an x86-64 CPU with AVX2".into()));
    }
    attend_with(query, key, value, mask_bias, heads, scale)
}

fn attend_with(query: &Tensor, key: &Tensor, value: &Tensor, mask_bias: Option<&Tensor>, heads: usize, scale: f32) -> Result<Tensor> {
    let (batch, rows, width) = query.dims3()?;
    let seq = key.dim(1)?;
    let head = width / heads;
    let mask = AttentionMask::read(mask_bias, batch, seq)?;
    // Values are multiplied along the keys, which the kernel takes in blocks of 32: pad with
    // zero values (and zero probabilities).
    let padded = seq.div_ceil(BLOCK) * BLOCK;
    // Head-major while the heads are shared by the threads: (batch, heads, rows, head).
    let mut context = vec![0f32; batch * heads * rows * head];
    // Set by a head whose scores were not finite (a row's softmax then has no finite scale, which
    // the kernels would turn into zeros: a finite, wrong context).
    let non_finite = std::sync::atomic::AtomicBool::new(false);
    with_values(query, |query| {
        with_values(key, |key| {
            with_values(value, |value| {
                // One (pair, head) per chunk, the heads shared by the threads.
                crate::cpu::for_each_chunk(&mut context, rows * head, |at, context| {
                    let (pair, h) = (at / heads.max(1), at % heads.max(1));
                    // Row `i` of this head in a (pair, positions, width) tensor.
                    let head_row = |positions: usize, i: usize| -> std::ops::Range<usize> {
                        let start = (pair * positions + i) * width + h * head;
                        start..start + head
                    };
                    // The keys are the scores' weight (one output per key), Vᵀ the context's (one
                    // output per head dimension): both in the interleaved layout, once per head.
                    let keys = InterleavedMatrix::new(&Int8Matrix::quantize_strided(&key[head_row(seq, 0).start..], seq, head, width));
                    // Keys past the pair's last real one are padding (probability 0): their values
                    // stay 0 and the softmax leaves them out, since they would share the 32-key
                    // blocks (and scales) of the real keys' values and round the softmax's sums
                    // differently: a pair's logits would depend on the pairs batched with it.
                    let keys_len = mask.unpadded_len(pair);
                    let mut transposed = vec![0f32; head * padded];
                    for j in 0..keys_len {
                        for (d, &x) in value[head_row(seq, j)].iter().enumerate() {
                            transposed[d * padded + j] = x;
                        }
                    }
                    let values = InterleavedMatrix::new(&Int8Matrix::quantize(&transposed, head, padded));
                    let most = ROWS_AT_ONCE.min(rows);
                    let mut probabilities = DigitRows { cols: padded, digits: vec![0; most * padded], blocks: vec![DigitBlock::default(); most * padded / BLOCK] };
                    let (mut row, mut row_scales, mut q) = (vec![0f32; seq], vec![0f32; most], vec![0f32; most * head]);
                    // One scores buffer for the head's chunks (the kernel overwrites it).
                    let mut scores = vec![0f32; most * seq];
                    for (chunk, context) in context.chunks_mut(ROWS_AT_ONCE * head).enumerate() {
                        let n = context.len() / head;
                        let first = chunk * ROWS_AT_ONCE;
                        // Scaled as candle's `query * scale` is (`x · scale + 0`), so the same digits.
                        for (i, out) in q.chunks_exact_mut(head).take(n).enumerate() {
                            out.iter_mut().zip(&query[head_row(rows, first + i)]).for_each(|(o, &x)| *o = x * scale + 0.0);
                        }
                        let scores = &mut scores[..n * seq];
                        keys.matmul_into(&DigitRows::new(&q[..n * head], head), scores);
                        // Only the last chunk is shorter.
                        probabilities.digits.truncate(n * padded);
                        probabilities.blocks.truncate(n * padded / BLOCK);
                        let row_scales = &mut row_scales[..n];
                        softmax_digits(scores, &mask, pair, keys_len, &mut row, &mut probabilities, row_scales);
                        if !row_scales.iter().all(|scale| scale.is_finite()) {
                            non_finite.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        values.matmul_into(&probabilities, context);
                    }
                });
            })
        })
    })???;
    if non_finite.into_inner() {
        return Err(Error::Compute("attention scores hold a non-finite value: the model overflows f32 on this input".into()));
    }
    // Back to the layers' layout, (batch, rows, heads × head), written in order (not zeroed first).
    let mut merged = Vec::with_capacity(context.len());
    for pair in 0..batch {
        for i in 0..rows {
            for h in 0..heads {
                merged.extend_from_slice(&context[((pair * heads + h) * rows + i) * head..][..head]);
            }
        }
    }
    Ok(Tensor::from_vec(merged, (batch, rows, width), query.device())?)
}

crate::cpu::multiversioned! {
    /// Softmax of each row of `seq` scores (plus the mask) straight to digits, one pass over the
    /// exponentials: `exp(score + mask − max)` (largest exactly 1) made 32 keys at a time
    /// (padding keys 0) and quantised while in registers ([`non_negative_block`]); the division
    /// by the row's sum goes into each block's scale, and `1 / sum` into `row_scales` (NaN for a
    /// fully masked row, whose digits and scales are 0). Only the first `len` keys take part (the
    /// rest are padding: probabilities 0, and left out of the sums, which would otherwise round
    /// differently from the pair's alone). `row` is scratch for one row of scores (`seq` long).
    /// The same digits and scales, bit for bit, as writing the probabilities out and quantising
    /// them (the test's `two_pass`), which was one more pass over ~100 KB per 64 rows and a
    /// search for each block's least value, known to be 0.
    fn softmax_digits(scores: &[f32], mask: &AttentionMask, pair: usize, len: usize, row: &mut [f32], probabilities: &mut DigitRows, row_scales: &mut [f32]) {
        let (padded, seq) = (probabilities.cols, row.len());
        let rows = probabilities.digits.chunks_exact_mut(padded.max(1)).zip(probabilities.blocks.chunks_exact_mut((padded / BLOCK).max(1)));
        for ((scores, (digits, blocks)), row_scale) in scores.chunks_exact(seq.max(1)).zip(rows).zip(row_scales) {
            mask.apply(pair, scores, row);
            digits[len..].fill(0);
            blocks[len.div_ceil(BLOCK)..].fill(DigitBlock::default());
            let mut exps = ExpBlocks::new(&row[..len]);
            if exps.finite() {
                for ((values, digits), block) in row[..len].chunks(BLOCK).zip(digits.chunks_exact_mut(BLOCK)).zip(blocks.iter_mut()) {
                    *block = non_negative_block(&exps.block(values), digits);
                }
            }
            let sum = exps.sum();
            *row_scale = 1.0 / sum;
            if row_scale.is_finite() {
                blocks.iter_mut().for_each(|block| block.scale *= *row_scale);
            } else {
                digits.fill(0);
                blocks.fill(DigitBlock::default());
            }
        }
    }
}

/// The definition `softmax_digits` is held to: probabilities written out (`exp_row`), then
/// quantised as any activations ([`DigitRows::new`]), each block's scale times its row's.
fn two_pass(scores: &[f32], mask: &AttentionMask, pair: usize, seq: usize, padded: usize) -> (DigitRows, Vec<f32>) {
    let rows = scores.len() / seq;
    let (mut probabilities, mut row_scales) = (vec![0f32; rows * padded], vec![0f32; rows]);
    for ((scores, out), scale) in scores.chunks_exact(seq).zip(probabilities.chunks_exact_mut(padded)).zip(&mut row_scales) {
        mask.apply(pair, scores, &mut out[..seq]);
        *scale = 1.0 / crate::activations::exp_row(&mut out[..seq]);
    }
    let mut quantized = DigitRows::new(&probabilities, padded);
    for (blocks, &row_scale) in quantized.blocks.chunks_exact_mut(padded / BLOCK).zip(&row_scales) {
        blocks.iter_mut().for_each(|block| block.scale = if row_scale.is_finite() { block.scale * row_scale } else { 0.0 });
    }
    (quantized, row_scales)
}

/// Whether `softmax_digits` gives [`two_pass`]'s digits, block scales and row scales bit for bit
/// (`Err` names the first case that does not): rows of 1 to 161 keys (not multiples of 8 or 32;
/// up to six blocks), a mask that hides the last keys of the second pair (blocks of zeros), a
/// fully masked row (−∞), scores over a wide range and a tie for the largest. A Rust test
/// natively; the browser tests call it through the wasm module, whose SIMD128 code
/// ([`non_negative_block`]'s) no Rust test runs.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub fn softmax_digits_agree() -> std::result::Result<(), String> {
    for seq in [1usize, 7, 32, 45, 70, 128, 161] {
        let padded = seq.div_ceil(BLOCK) * BLOCK;
        let rows = 5;
        let mut scores: Vec<f32> = (0..rows * seq).map(|i| ((i * 7919 % 1013) as f32 - 500.0) / 37.0).collect();
        scores[seq..2 * seq].fill(f32::NEG_INFINITY); // a fully masked row
        if seq > 1 {
            scores[2 * seq + 1] = scores[2 * seq]; // a tie
        }
        let bias: Vec<f32> = (0..2 * seq).map(|i| if i >= 2 * seq - seq / 3 { -1e4 } else { 0.0 }).collect();
        let bias = Tensor::from_vec(bias, (2, 1, 1, seq), &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
        let mask = AttentionMask::read(Some(&bias), 2, seq).map_err(|e| e.to_string())?;
        for pair in 0..2 {
            let (expected, expected_scales) = two_pass(&scores, &mask, pair, seq, padded);
            let mut got = DigitRows { cols: padded, digits: vec![7; rows * padded], blocks: vec![DigitBlock { scale: 9.0, zero_point: 3 }; rows * padded / BLOCK] };
            let (mut row, mut row_scales) = (vec![0f32; seq], vec![0f32; rows]);
            softmax_digits(&scores, &mask, pair, seq, &mut row, &mut got, &mut row_scales);
            let blocks = |rows: &DigitRows| rows.blocks.iter().map(|b| (b.scale.to_bits(), b.zero_point)).collect::<Vec<_>>();
            let scales = |scales: &[f32]| scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            let case = format!("{seq} keys, pair {pair}");
            if got.digits != expected.digits {
                return Err(format!("{case}: the digits differ"));
            }
            if blocks(&got) != blocks(&expected) {
                return Err(format!("{case}: the block scales or zero points differ"));
            }
            if scales(&row_scales) != scales(&expected_scales) {
                return Err(format!("{case}: the row scales differ"));
            }
            if !(row_scales[1].is_nan() && got.digits[padded..2 * padded].iter().all(|&d| d == 0)) {
                return Err(format!("{case}: the fully masked row has digits or a finite scale"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// [`attend_with`] on heads laid out `(batch, heads, positions, head)`, unscaled: the layout
    /// the f32 reference computes in.
    fn attend_with(query: &Tensor, key: &Tensor, value: &Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
        let (batch, heads, rows, head) = query.dims4()?;
        let merge = |x: &Tensor| -> Result<Tensor> { Ok(x.transpose(1, 2)?.contiguous()?.reshape((batch, x.dim(2)?, heads * head))?) };
        let context = super::attend_with(&merge(query)?, &merge(key)?, &merge(value)?, mask_bias, heads, 1.0)?;
        Ok(context.reshape((batch, rows, heads, head))?.transpose(1, 2)?.contiguous()?)
    }

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
    fn softmax_straight_to_digits_equals_writing_the_probabilities_out() {
        super::softmax_digits_agree().unwrap();
    }

    #[test]
    fn a_pair_attends_the_same_alone_and_padded_in_a_batch() {
        // The second pair of a batch is the first pair padded by 9 keys whose values are large
        // (padding tokens' values are whatever the layers made of them): its context rows must be
        // the first pair's, bit for bit, as the f32 path's are (their probabilities are exact 0).
        let device = Device::Cpu;
        let (heads, rows, seq, head, pad) = (2, 6, 23, 32, 9);
        let values = |n: usize, salt: usize| -> Vec<f32> { (0..n).map(|i| (((i * 7919 + salt) % 1000) as f32 / 500.0 - 1.0) * 0.7).collect() };
        let alone = |x: Vec<f32>, len: usize| Tensor::from_vec(x, (1, heads, len, head), &device).unwrap();
        let (q, k, v) = (values(heads * rows * head, 1), values(heads * seq * head, 2), values(heads * seq * head, 3));
        let single = attend_with(&alone(q.clone(), rows), &alone(k.clone(), seq), &alone(v.clone(), seq), None).unwrap();
        // Per head: the pair's keys, then `pad` padding keys (large values, masked).
        let padded = |x: &[f32], fill: f32| -> Vec<f32> { x.chunks_exact(seq * head).flat_map(|h| h.iter().copied().chain(std::iter::repeat_n(fill, pad * head))).collect() };
        let (k2, v2) = (padded(&k, 0.3), padded(&v, 50.0));
        let batch = |a: &[f32], b: &[f32], len: usize| Tensor::from_vec([a, b].concat(), (2, heads, len, head), &device).unwrap();
        let mask: Vec<f32> = (0..2 * (seq + pad)).map(|i| if i % (seq + pad) >= seq { -f32::MAX } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (2, 1, 1, seq + pad), &device).unwrap();
        // Both pairs padded to seq + pad keys, with different padding values.
        let batched = attend_with(&batch(&q, &q, rows), &batch(&k2, &k2, seq + pad), &batch(&padded(&v, -20.0), &v2, seq + pad), Some(&mask)).unwrap();
        let single = single.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let batched = batched.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&batched[..single.len()], &single[..]);
        assert_eq!(&batched[single.len()..], &single[..]);
    }

    #[test]
    fn scaling_the_queries_on_the_way_equals_scaling_them_first() {
        // What the layers did before: candle's `query * scale`, then attention at scale 1.
        let device = Device::Cpu;
        let (batch, rows, seq, heads, head) = (2, 5, 9, 3, 32);
        let values = |n: usize, salt: usize| -> Vec<f32> { (0..n).map(|i| (((i * 7919 + salt) % 1000) as f32 / 500.0 - 1.0) * 3.0).collect() };
        let q = Tensor::from_vec(values(batch * rows * heads * head, 1), (batch, rows, heads * head), &device).unwrap();
        let k = Tensor::from_vec(values(batch * seq * heads * head, 2), (batch, seq, heads * head), &device).unwrap();
        let v = Tensor::from_vec(values(batch * seq * heads * head, 3), (batch, seq, heads * head), &device).unwrap();
        let scale = 1.0 / (head as f64).sqrt();
        let on_the_way = super::attend_with(&q, &k, &v, None, heads, scale as f32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let first = super::attend_with(&(&q * scale).unwrap(), &k, &v, None, heads, 1.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(on_the_way, first);
    }

    #[test]
    fn refuses_heads_it_cannot_block() {
        let t = Tensor::zeros((1, 2, 96), candle_core::DType::F32, &Device::Cpu).unwrap();
        let error = attend(&t, &t, &t, None, 2, 1.0).unwrap_err().to_string();
        assert!(error.contains("multiple of 32, got 48 (96 wide / 2 heads)"), "{error}");
    }
}

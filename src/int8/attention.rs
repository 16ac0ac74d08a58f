//! Attention's two products (`Q Kᵀ` and `P V`) on the int8 kernel of the relaxed-SIMD build.
//!
//! Why: once the linear layers run on the relaxed dot, the f32 attention products are a quarter
//! of a 512-token call in Chromium (candle's SIMD128 GEMM is at f32x4's mul+add peak already),
//! and on the int8 kernel they run ~3× faster. Only quantised models in the relaxed build take
//! this path ([`crate::linear::Linear::is_int8`]): an f32 model keeps exact f32 attention.
//!
//! Accuracy: keys and values are rounded to 8 bits per block of 32 (Q8_0's rounding, which the
//! weights that made them already carry), queries and probabilities to 14 bits per row, as the
//! linear layers' activations. Each (pair, head) is one small matrix product pair, so nothing
//! the size of a pair's scores lives longer than one head.

use candle_core::Tensor;

use super::{DigitRows, Int8Matrix, InterleavedMatrix, BLOCK};
use crate::activations::{exp_row, with_values, AttentionMask};
use crate::error::{Error, Result};

/// Whether [`attend`] takes heads of this size (its rows are quantised in blocks of 32).
pub fn supports(head_size: usize) -> bool {
    head_size > 0 && head_size % BLOCK == 0
}

/// `softmax(Q Kᵀ + mask) V` for `query` `(batch, heads, rows, head)`, `key` and `value`
/// `(batch, heads, seq, head)` (queries already scaled), `mask_bias` `(batch, 1, 1, seq)`.
pub fn attend(query: &Tensor, key: &Tensor, value: &Tensor, mask_bias: Option<&Tensor>) -> Result<Tensor> {
    let (batch, heads, rows, head) = query.dims4()?;
    let seq = key.dim(2)?;
    if !supports(head) {
        return Err(Error::Compute(format!("int8 attention needs a head size that is a multiple of {BLOCK}, got {head}")));
    }
    let mask = AttentionMask::read(mask_bias, batch, seq)?;
    // Values are multiplied along the keys, which the kernel takes in blocks of 32: pad with
    // zero values (and zero probabilities).
    let padded = seq.div_ceil(BLOCK) * BLOCK;
    let mut context = vec![0f32; batch * heads * rows * head];
    with_values(query, |query| {
        with_values(key, |key| {
            with_values(value, |value| {
                let mut transposed = vec![0f32; head * padded];
                // exp(score − max) per row (largest exactly 1), quantised as is; the division by
                // the row's sum goes into the row's scale.
                let mut probabilities = vec![0f32; rows * padded];
                let mut row_scales = vec![0f32; rows];
                for pair in 0..batch {
                    for h in 0..heads {
                        let at = pair * heads + h;
                        let q = &query[at * rows * head..(at + 1) * rows * head];
                        let k = &key[at * seq * head..(at + 1) * seq * head];
                        let v = &value[at * seq * head..(at + 1) * seq * head];
                        // Scores: the keys are the weight (one output per key), the queries the activations.
                        let keys = InterleavedMatrix::new(&Int8Matrix::quantize(k, seq, head));
                        let scores = keys.matmul(&DigitRows::new(q, head));
                        for ((scores, out), scale) in scores.chunks_exact(seq).zip(probabilities.chunks_exact_mut(padded)).zip(&mut row_scales) {
                            let out = &mut out[..seq];
                            mask.apply(pair, scores, out);
                            *scale = 1.0 / exp_row(out);
                        }
                        // Context: Vᵀ is the weight (one output per head dimension).
                        for (j, row) in v.chunks_exact(head).enumerate() {
                            for (d, &x) in row.iter().enumerate() {
                                transposed[d * padded + j] = x;
                            }
                        }
                        let values = InterleavedMatrix::new(&Int8Matrix::quantize(&transposed, head, padded));
                        let out = values.matmul(&DigitRows::in_unit_range(&probabilities, padded, &row_scales));
                        context[at * rows * head..(at + 1) * rows * head].copy_from_slice(&out);
                    }
                }
            })
        })
    })???;
    Ok(Tensor::from_vec(context, (batch, heads, rows, head), query.device())?)
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
        let got = attend(&q, &k, &v, Some(&mask)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scores = q.matmul(&k.t().unwrap()).unwrap().broadcast_add(&mask).unwrap();
        let exact = candle_nn::ops::softmax_last_dim(&scores).unwrap().matmul(&v).unwrap();
        let exact = exact.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = got.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        // Scores move by ~|q|·|k|/254 and values by 1/254 of a block's largest: well under 1e-2 here.
        assert!(worst < 5e-3, "int8 attention is {worst} from f32");
        assert!(worst > 0.0, "the int8 path was not taken");
    }

    #[test]
    fn refuses_heads_it_cannot_block() {
        let t = Tensor::zeros((1, 1, 2, 48), candle_core::DType::F32, &Device::Cpu).unwrap();
        let error = attend(&t, &t, &t, None).unwrap_err().to_string();
        assert!(error.contains("multiple of 32, got 48"), "{error}");
    }
}

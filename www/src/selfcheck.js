// The load-time self-check of the WebGPU path: a few fixed pairs scored by the wasm model and by the
// GPU must agree before `device: 'auto'` trusts the GPU with a rerank (and before `'webgpu'` loads at
// all). It catches an adapter or driver that computes wrongly (zeros, NaN, a broken kernel), which no
// capability query reveals; the pairs differ in length, so one batch carries padding and the mask
// is exercised.

/** Queries and passages of different lengths, in one request each, so that each batch is padded. */
export const SELF_CHECK_REQUESTS = Object.freeze([
  {
    query: 'how do vaccines protect against disease',
    documents: [
      'Vaccines train the immune system to recognise a pathogen, so that a later infection is fought off before it causes illness.',
      'The stock market closed higher on Friday.',
      'Measles vaccination programmes have cut deaths from the disease by more than eighty percent since the year 2000, according to the World Health Organization, which recommends two doses for every child.',
    ],
  },
  {
    query: 'capital of France',
    documents: ['Paris is the capital and largest city of France.', 'Bananas are rich in potassium.'],
  },
]);

/**
 * How far a GPU logit may be from the wasm one. Both compute the same model in f32, but for a
 * quantised file (q8_0, q4_0) the wasm path also quantises the activations to int8 before each
 * matrix product (the int8 kernel), while the GPU multiplies f32 activations by the dequantised
 * weights: measured up to ~0.07 logit apart on the default model's fixtures, and at most 0.027 on
 * these pairs (Chromium's SwiftShader adapter). 0.25 + 5% of the logit leaves room for
 * that and still fails a wrong kernel, whose logits are off by whole units or not finite. For a
 * float file both paths are f32 throughout and differ only in summation order.
 */
export function selfCheckTolerance(precision, logit) {
  const quantised = precision === 'q8_0' || precision === 'q4_0';
  return quantised ? 0.25 + 0.05 * Math.abs(logit) : 0.01 + 0.001 * Math.abs(logit);
}

/**
 * Scores the pairs with `wasm` and `gpu` (each `(requests) => Promise<[[{ logit }]]>` or the
 * value) and compares: resolves to null when they agree, else to why not (a sentence for
 * `info.fallback` or the `webgpu_unavailable` error).
 */
export async function selfCheck(precision, wasm, gpu, offset = 0) {
  const expected = await wasm(SELF_CHECK_REQUESTS);
  const actual = await gpu(SELF_CHECK_REQUESTS);
  let worst = null;
  expected.forEach((results, request) => results.forEach(({ logit }, index) => {
    const got = actual[request][index].logit + offset;
    const off = Number.isFinite(got) ? Math.abs(got - logit) : Infinity;
    if (off > selfCheckTolerance(precision, logit) && (!worst || off > worst.off)) worst = { got, logit, off };
  }));
  if (!worst) return null;
  return `the WebGPU self-check failed: a fixed pair scored ${worst.got} on the GPU and ${worst.logit} on wasm ` +
    `(|difference| ${worst.off.toPrecision(3)} > ${selfCheckTolerance(precision, worst.logit).toPrecision(3)} for a ${precision} model): ` +
    'this adapter or its driver computes wrongly';
}

// The WebGPU encoder engine (www/src/webgpu/) in headless Chromium on SwiftShader (Vulkan on the
// CPU: no GPU needed, but ~1000× slower than one, so tiny inputs and tiny models only).
//
//   node --test tests/browser/webgpu-engine.test.mjs
//
// Kernel tests compare each WGSL kernel with a plain-JS f64 reference on seeded random inputs
// (tests/browser/webgpu-engine.js, the page). Model tests compare GpuEncoder's logits with the
// PyTorch fixtures in tests/fixtures/ (tests/make_fixtures.py, make_family_fixtures.py), on
// batches that the wasm build tokenises and pads (WasmReranker.prepare) from the plan it reads
// out of the GGUF (gpuPlan).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { fixture, useBrowser, WEBGPU_ARGS } from './harness.mjs';

const PAGE = '/tests/browser/webgpu-engine.html';
const TIMEOUT = { timeout: 300_000 };

const browser = useBrowser({ args: WEBGPU_ARGS });

/** Runs `body(page)` on the engine's test page; the page must raise no error. */
const onPage = (body) => browser.withPage(({ page }) => body(page), PAGE);

/** Errors relative to the output's magnitude (at least 1): f32 rounding over a K-long sum. */
const RELATIVE = 1e-5;

function assertClose({ error, scale }, label, tolerance = RELATIVE) {
  const relative = error / Math.max(1, scale);
  assert.ok(relative < tolerance, `${label}: max |error| ${error.toExponential(2)} at output scale ${scale.toFixed(2)} (relative ${relative.toExponential(2)} ≥ ${tolerance})`);
}

test('openGpu: SwiftShader gives an adapter, a device and the limits the engine sizes by', TIMEOUT, () =>
  onPage(async (page) => {
    const gpu = await page.evaluate(async () => {
      const { adapter, features, limits, unavailable } = await window.gpuEngine.gpu();
      return { adapter, features, unavailable, binding: limits?.maxStorageBufferBindingSize };
    });
    assert.equal(gpu.unavailable, undefined);
    assert.equal(gpu.adapter.architecture, 'swiftshader');
    assert.ok(Array.isArray(gpu.features));
    // Asked for at the adapter's maximum, not WebGPU's 128 MiB default.
    assert.ok(gpu.binding > 128 * 1024 * 1024, `maxStorageBufferBindingSize ${gpu.binding}`);
  }));

describe('kernels against plain-JS references', () => {
  // Sizes that are not multiples of the 64×64 output tile or the 16-wide k step.
  const shape = { m: 37, n: 70 };
  const cases = [
    ...['none', 'gelu', 'gelu_new', 'relu', 'tanh'].map((activation) => ({ dtype: 'f32', activation, k: 50 })),
    { dtype: 'q8_0', activation: 'none', k: 96 },
    { dtype: 'q8_0', activation: 'gelu', k: 96 },
    { dtype: 'q4_0', activation: 'none', k: 96 },
    { dtype: 'q4_0', activation: 'tanh', k: 96 },
  ];
  test('matmul + bias + activation: f32, q8_0 and q4_0 weights, odd sizes', TIMEOUT, () =>
    onPage(async (page) => {
      for (const spec of cases) {
        const result = await page.evaluate((s) => window.gpuEngine.checkMatmul(s), { ...shape, ...spec });
        assertClose(result, `matmul ${spec.dtype} ${spec.activation} ${shape.m}×${spec.k}·${spec.k}×${shape.n}`);
      }
      // Row 0 of each pair only (the head): x read with a stride of several rows.
      const strided = await page.evaluate((s) => window.gpuEngine.checkMatmul(s), { dtype: 'f32', activation: 'tanh', m: 5, n: 33, k: 40, xStride: 7 * 40 });
      assertClose(strided, 'matmul with a row stride');
      // One output column (the classifier), K larger than a tile.
      const column = await page.evaluate((s) => window.gpuEngine.checkMatmul(s), { dtype: 'f32', activation: 'none', m: 3, n: 1, k: 130 });
      assertClose(column, 'matmul 3×130·130×1');
    }));

  test('layernorm, with and without the residual, rows wider than a workgroup', TIMEOUT, () =>
    onPage(async (page) => {
      // residualStride: row 0 of each pair as the residual (the last layer's).
      for (const spec of [{ rows: 5, width: 32, residual: false }, { rows: 5, width: 130, residual: true }, { rows: 3, width: 384, residual: true, eps: 1e-5 }, { rows: 4, width: 48, residual: true, residualStride: 5 * 48 }]) {
        const result = await page.evaluate((s) => window.gpuEngine.checkLayerNorm(s), spec);
        assertClose(result, `layernorm width ${spec.width}${spec.residual ? ` + residual (row stride ${spec.residualStride ?? spec.width})` : ''}`);
      }
    }));

  test('attention over padded pairs: padding keys get exactly zero probability', TIMEOUT, () =>
    onPage(async (page) => {
      // 70 tokens: two query tiles, keys not a whole number of key tiles; a pair of 1 token.
      // queries: 1 is the last layer's (row 0 of each pair only).
      for (const spec of [{ lengths: [70, 33, 1], seq: 70, heads: 2, headSize: 8 }, { lengths: [5, 17], seq: 17, heads: 3, headSize: 32 }, { lengths: [9, 30, 2], seq: 30, heads: 2, headSize: 16, queries: 1 }]) {
        const result = await page.evaluate((s) => window.gpuEngine.checkAttention(s), spec);
        // Padding keys hold 1e4: a probability of even 1e-9 on them would show.
        assertClose(result, `attention lengths ${spec.lengths} head size ${spec.headSize} queries ${spec.queries ?? spec.seq}`);
      }
    }));

  test('embeddings: word rows gathered from f32, q8_0 and q4_0 tables, offset positions', TIMEOUT, () =>
    onPage(async (page) => {
      for (const dtype of ['f32', 'q8_0', 'q4_0']) {
        const result = await page.evaluate((s) => window.gpuEngine.checkEmbeddings(s), { dtype, width: 64, tokens: 30, seq: 10, positionOffset: 2 });
        assertClose(result, `embeddings ${dtype}`);
      }
    }));
});

describe('models against the PyTorch fixtures', () => {
  // MiniLM-L-4 (384 wide, 4 layers) takes SwiftShader about a minute per thousand tokens: its
  // fixture's pairs of at most 40 tokens, in one padded batch only.
  const short = (c) => c.input_ids.length <= 40;
  const batchOnly = { alone: false, again: false };
  const models = [
    { name: 'tiny BERT f32', url: '/artifacts/models/tiny.f32.gguf', fixture: 'tiny.json', family: 'bert', tolerance: 1e-3 },
    { name: 'tiny ELECTRA f32 (projected embeddings, GELU head)', url: '/artifacts/models/tiny-electra.f32.gguf', fixture: 'tiny_electra.json', family: 'electra', tolerance: 1e-3 },
    { name: 'tiny XLM-RoBERTa f32 (offset positions, tanh head)', url: '/artifacts/models/tiny-xlmr.f32.gguf', fixture: 'tiny_xlmr.json', family: 'xlm-roberta', tolerance: 1e-3 },
    { name: 'MiniLM-L-4 f32', url: '/artifacts/models/minilm-l4.f32.gguf', fixture: 'minilm_l4.json', family: 'bert', tolerance: 1e-3, pick: short, options: batchOnly },
    // The int8 tolerance of tests/browser/reranker.test.mjs.
    { name: 'MiniLM-L-4 Q8_0', url: '/artifacts/models/minilm-l4.q8_0.gguf', fixture: 'minilm_l4.json', family: 'bert', tolerance: 0.05, pick: short, options: batchOnly, dtype: 'q8_0' },
  ];
  for (const model of models) {
    const how = model.options ? 'in one padded batch' : 'alone and in one padded batch';
    test(`${model.name}: logits within ${model.tolerance} of PyTorch, ${how}`, TIMEOUT, () =>
      onPage(async (page) => {
        const cases = fixture(model.fixture).cases.filter(model.pick ?? (() => true));
        const got = await page.evaluate(({ url, cases, options }) => window.gpuEngine.fixtureLogits(url, cases, options), { url: model.url, cases, options: model.options });
        assert.equal(got.family, model.family);
        assert.equal(got.info.precision, 'f32');
        if (model.dtype) assert.ok(got.dtypes.includes(model.dtype), `${model.url} holds ${got.dtypes}`);
        let worst = 0;
        cases.forEach((c, i) => {
          for (const [label, logits] of [['alone', got.alone], ['batched', got.batched]]) {
            if (!logits) continue;
            const diff = Math.abs(logits[i] - c.logit);
            worst = Math.max(worst, diff);
            assert.ok(diff <= model.tolerance, `${model.name} ${c.name} (${label}): logit ${logits[i]}, PyTorch ${c.logit} (|diff| ${diff.toExponential(2)})`);
          }
        });
        // Reused buffers give the same numbers.
        if (got.again) assert.deepEqual(got.again, got.batched);
        console.log(`# WebGPU ${model.name}: max |Δlogit| vs PyTorch ${worst.toExponential(2)} over ${cases.length} cases`);
      }));
  }

  // The whole seam: the wasm build's tokenizer, windows and batches (prepare), the GPU's logits,
  // the wasm build's answer (finish). SentencePiece and RTL/CJK text: XLM-RoBERTa's fixture.
  test('tiny XLM-RoBERTa through prepare → GpuEncoder → finish: every case within 1e-3 of PyTorch', TIMEOUT, () =>
    onPage(async (page) => {
      const cases = fixture('tiny_xlmr.json').cases;
      const got = await page.evaluate(({ url, cases }) => window.gpuEngine.preparedLogits(url, cases, 4), { url: '/artifacts/models/tiny-xlmr.f32.gguf', cases });
      assert.ok(got.shapes.length > 1, `one batch only: ${JSON.stringify(got.shapes)}`);
      assert.ok(got.shapes.every(([rows]) => rows <= 4), JSON.stringify(got.shapes));
      let worst = 0;
      cases.forEach((c, i) => {
        const diff = Math.abs(got.logits[i] - c.logit);
        worst = Math.max(worst, diff);
        assert.ok(diff <= 1e-3, `${c.name}: logit ${got.logits[i]}, PyTorch ${c.logit}`);
      });
      console.log(`# WebGPU tiny XLM-RoBERTa via prepare/finish: max |Δlogit| vs PyTorch ${worst.toExponential(2)} over ${cases.length} cases in ${got.shapes.length} batches`);
    }));
});

describe('GpuEncoder on a random model', () => {
  test('a batch split into sub-batches (a small scratch budget) gives the logits of one forward; buffers are reused', TIMEOUT, () =>
    onPage(async (page) => {
      const got = await page.evaluate(async () => {
        const { gpu, GpuEncoder, randomPlan, randomBatch } = window.gpuEngine;
        const plan = randomPlan({ dtype: 'q8_0' });
        const batch = randomBatch([9, 30, 2, 17, 30, 5, 11]);
        const whole = await GpuEncoder.create(await gpu(), plan);
        // Room for two pairs of 30 tokens at a time: four sub-batches.
        const split = await GpuEncoder.create(await gpu(), plan, { scratchBytes: 2.5 * whole.scratchBytesPerPair(30) });
        const one = [...(await whole.logits(batch))];
        const bytesAfterFirst = whole.info.gpuBytes;
        const again = [...(await whole.logits(batch))];
        const parts = [...(await split.logits(batch))];
        const result = { one, again, parts, perRun: split.pairsPerRun(30), bytesAfterFirst, bytesAfterSecond: whole.info.gpuBytes, info: whole.info };
        whole.destroy();
        split.destroy();
        return result;
      });
      assert.equal(got.perRun, 2);
      assert.equal(got.one.length, 7);
      assert.ok(got.one.every(Number.isFinite), `logits ${got.one}`);
      assert.deepEqual(got.again, got.one);
      // Each pair's numbers do not depend on its batch-mates: the same up to f32 rounding order.
      got.parts.forEach((logit, i) => assert.ok(Math.abs(logit - got.one[i]) < 1e-5, `pair ${i}: ${logit} split, ${got.one[i]} whole`));
      assert.equal(got.bytesAfterSecond, got.bytesAfterFirst, 'the second call allocated more GPU memory');
      assert.equal(got.info.precision, 'f32');
      assert.equal(got.info.adapter.architecture, 'swiftshader');
      assert.ok(got.info.gpuBytes > 0);
    }));

  test('buffers within the device limits: a small maxStorageBufferBindingSize splits the batch, a too-large tensor fails create()', TIMEOUT, () =>
    onPage(async (page) => {
      const got = await page.evaluate(async () => {
        const { gpu, gpuWithLimits, GpuEncoder, randomPlan, randomBatch } = window.gpuEngine;
        const plan = randomPlan();
        const batch = randomBatch([30, 12, 30, 4, 25]);
        const whole = await GpuEncoder.create(await gpu(), plan);
        // 16 KiB per binding: the 64-wide FFN buffer holds two pairs of 30 tokens (15,360 bytes).
        const small = await GpuEncoder.create(await gpuWithLimits({ maxStorageBufferBindingSize: 16384 }), plan);
        const result = { perRun: small.pairsPerRun(30), whole: [...(await whole.logits(batch))], split: [...(await small.logits(batch))] };
        whole.destroy();
        small.destroy();
        // The word table (50 × 32 f32, 6,400 bytes) cannot be bound under 4 KiB.
        result.refused = await GpuEncoder.create(await gpuWithLimits({ maxStorageBufferBindingSize: 4096 }), plan).then(() => null, (error) => error.message);
        return result;
      });
      assert.equal(got.perRun, 2);
      got.split.forEach((logit, i) => assert.ok(Math.abs(logit - got.whole[i]) < 1e-5, `pair ${i}: ${logit} split, ${got.whole[i]} whole`));
      assert.match(got.refused ?? '', /embeddings\.word takes 6400 bytes; this GPU binds at most 4096/);
    }));

  test('a lost device rejects logits() with gpuLost, during the call and after it', TIMEOUT, () =>
    onPage(async (page) => {
      const got = await page.evaluate(async () => {
        const { openGpu, GpuEncoder, randomPlan, randomBatch } = window.gpuEngine;
        // A device of its own: destroying it must not break the page's shared one.
        const gpu = await openGpu();
        const encoder = await GpuEncoder.create(gpu, randomPlan());
        const batch = randomBatch([20, 7]);
        const settle = (promise) => promise.then((value) => ({ ok: true, value: [...value] }), (error) => ({ ok: false, message: error.message, gpuLost: error.gpuLost === true }));
        const before = await settle(encoder.logits(batch));
        const during = settle(encoder.logits(batch));
        gpu.device.destroy();
        const results = { before, during: await during, after: await settle(encoder.logits(batch)) };
        encoder.destroy();
        return results;
      });
      assert.ok(got.before.ok, got.before.message);
      // The call in flight either finished before the loss or rejects as lost; never anything else.
      assert.ok(got.during.ok || got.during.gpuLost, `during: ${JSON.stringify(got.during)}`);
      assert.equal(got.after.ok, false);
      assert.equal(got.after.gpuLost, true, got.after.message);
    }));
});

#!/usr/bin/env node
// Register-resident peaks of the integer dot sequences the int8 kernels can be built from, in
// headless Chromium, with this CPU's flags: which one is fast depends on whether V8 can emit
// AVX-VNNI's `vpdpbusd` (see /work/shared/notes/wasm-simd-limits.md and BENCHMARKS.md).
//
//   node bench/simd_peaks.mjs [--repeat 7]
//
// Each kernel is a loop of 8 independent accumulators (so latency hides behind throughput); one
// operand changes every iteration so that nothing is hoisted out of the loop. The module is
// assembled from text by binaryen (www/node_modules, the package build's dependency): no
// toolchain beyond what the tests use. A multiply-add counts 2 operations.

import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

import binaryen from '../www/node_modules/binaryen/index.js';
import { launchChromium } from '../tests/browser/harness.mjs';

const ACCUMULATORS = 8;
const ITERATIONS = 4_000_000;

// name → [description, multiply-adds per accumulator step, the step's expression on $a<i>, $w<i>, $x]
const KERNELS = {
  relaxed_i32: ['i32x4.relaxed_dot_i8x16_i7x16_add_s', 16, (a, w) => `(i32x4.relaxed_dot_i8x16_i7x16_add_s ${w} (local.get $x) ${a})`],
  relaxed_i16: ['i16x8.relaxed_dot_i8x16_i7x16_s + i32x4.extadd_pairwise_i16x8_s + i32x4.add', 16,
    (a, w) => `(i32x4.add ${a} (i32x4.extadd_pairwise_i16x8_s (i16x8.relaxed_dot_i8x16_i7x16_s ${w} (local.get $x))))`],
  relaxed_i16_dot: ['i16x8.relaxed_dot_i8x16_i7x16_s + i32x4.dot_i16x8_s (by ones) + i32x4.add', 16,
    (a, w) => `(i32x4.add ${a} (i32x4.dot_i16x8_s (i16x8.relaxed_dot_i8x16_i7x16_s ${w} (local.get $x)) (local.get $ones)))`],
  dot_i16: ['i32x4.dot_i16x8_s + i32x4.add (SIMD128)', 8, (a, w) => `(i32x4.add ${a} (i32x4.dot_i16x8_s ${w} (local.get $x)))`],
  f32_madd: ['f32x4.relaxed_madd', 4, (a, w) => `(f32x4.relaxed_madd ${w} (local.get $x) ${a})`],
};

function moduleText() {
  const funcs = Object.entries(KERNELS).map(([name, [, , step]]) => {
    const locals = Array.from({ length: ACCUMULATORS }, (_, i) => `(local $a${i} v128) (local $w${i} v128)`).join(' ');
    const init = Array.from({ length: ACCUMULATORS }, (_, i) => `(local.set $w${i} (i8x16.splat (i32.const ${i + 3})))`).join('\n');
    const body = Array.from({ length: ACCUMULATORS }, (_, i) => `(local.set $a${i} ${step(`(local.get $a${i})`, `(local.get $w${i})`)})`).join('\n');
    const sum = Array.from({ length: ACCUMULATORS }, (_, i) => `(local.get $a${i})`).reduce((s, a) => `(i32x4.add ${s} ${a})`);
    return `(func (export "${name}") (param $n i32) (result i32) ${locals} (local $x v128) (local $ones v128)
      ${init}
      (local.set $x (i8x16.splat (i32.const 1)))
      (local.set $ones (i16x8.splat (i32.const 1)))
      (loop $next
        ${body}
        (local.set $x (i8x16.add (local.get $x) (local.get $ones)))
        (br_if $next (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
      (i32x4.extract_lane 0 ${sum}))`;
  });
  return `(module ${funcs.join('\n')})`;
}

function cpuFlags() {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name) => info.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1] ?? '?';
  const flags = new Set(field('flags').split(' '));
  const wanted = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512vl', 'avx_vnni', 'amx_int8'];
  return { model: field('model name'), family: field('cpu family'), modelNumber: field('model'), flags: wanted.filter((f) => flags.has(f)) };
}

const repeat = process.argv.includes('--repeat') ? Number(process.argv[process.argv.indexOf('--repeat') + 1]) : 7;
const module = binaryen.parseText(moduleText());
module.setFeatures(binaryen.Features.All);
if (!module.validate()) throw new Error('the benchmark module does not validate');
const bytes = Array.from(module.emitBinary());

const browser = await launchChromium();
try {
  const page = await browser.context.newPage();
  const results = await page.evaluate(async ({ bytes, kernels, iterations, accumulators, repeat }) => {
    const { instance } = await WebAssembly.instantiate(new Uint8Array(bytes));
    const out = {};
    for (const [name, macs] of kernels) {
      const f = instance.exports[name];
      f(10_000); // tier up
      const rates = [];
      for (let r = 0; r < repeat; r++) {
        const start = performance.now();
        f(iterations);
        const seconds = (performance.now() - start) / 1000;
        rates.push((2 * macs * accumulators * iterations) / seconds / 1e9);
      }
      rates.sort((a, b) => b - a);
      out[name] = { best: rates[0], median: rates[Math.floor(rates.length / 2)] };
    }
    return out;
  }, { bytes, kernels: Object.entries(KERNELS).map(([name, [, macs]]) => [name, macs]), iterations: ITERATIONS, accumulators: ACCUMULATORS, repeat });
  const cpu = cpuFlags();
  console.log(`Chromium ${await browser.version()}; ${cpu.model} (family ${cpu.family} model ${cpu.modelNumber}); flags: ${cpu.flags.join(' ')}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('\n| sequence | products | best GOP/s | median GOP/s | median ÷ relaxed i32 dot-add |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [name, [description, macs]] of Object.entries(KERNELS)) {
    const { best, median } = results[name];
    console.log(`| ${description} | ${macs} | ${best.toFixed(1)} | ${median.toFixed(1)} | ${(median / results.relaxed_i32.median).toFixed(2)} |`);
  }
} finally {
  await browser.close();
}

// The WGSL sources of the encoder's kernels, generated per weight type, activation and head size
// (WGSL has no generics, and a constant head size lets attention keep a query in registers).
//
// Everything computes in f32: SwiftShader (the adapter of headless CI) has no `shader-f16`, and
// f32 keeps the GPU's logits within 1e-3 of PyTorch without a second tolerance to argue about.
// Every kernel reads one 8-word uniform `Params` (its meaning is per kernel, named below).

/** Matmul output tile per workgroup (TILE × TILE), each of 16×16 threads computing 4×4 of it. */
export const TILE = 64;
/**
 * Values of the reduction dimension staged in workgroup memory per step: one quantised block, so
 * each thread's run of TILE_K / 4 values shares one block scale (matmulShader relies on it).
 */
export const TILE_K = 32;
/** Threads per row of the row-wise kernels (embeddings, LayerNorm). */
export const ROW_THREADS = 64;
/** Queries per attention workgroup (one per thread); keys stream through in tiles of KEY_TILE. */
export const QUERY_TILE = 64;
export const KEY_TILE = 16;

/** Workgroup memory of the attention kernel for a head size and key tile (keys, values, mask). */
export const attentionStorageBytes = (headSize, keyTile = KEY_TILE) => 2 * keyTile * headSize * 4 + keyTile * 4;

const PARAMS = /* wgsl */ `
struct Params { a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: f32, h: f32 }
@group(0) @binding(0) var<uniform> params: Params;
`;

/**
 * Weight access for a [rows, cols] tensor in binding `name`: `load_weight(row, col, cols)`, split
 * into `weight_scale` (a block's scale) and `weight_unscaled` so the matmul reads a block's scale
 * once per run of values. f32 values have scale 1; GGUF blocks of 32 along `cols` are read from
 * the bytes as uploaded (padded to whole u32 words). q8_0: 34 bytes a block, f16 scale d then
 * 32 i8 (d × q); q4_0: 18 bytes, d then 16 bytes whose low nibbles are values 0..15 and high
 * nibbles 16..31 (d × (nibble − 8)).
 */
function weightLoader(dtype, name) {
  const both = `
fn load_weight(row: u32, col: u32, cols: u32) -> f32 { return weight_unscaled(row, col, cols) * weight_scale(row, col, cols); }`;
  if (dtype === 'f32') {
    return `
fn weight_scale(row: u32, col: u32, cols: u32) -> f32 { return 1.0; }
fn weight_unscaled(row: u32, col: u32, cols: u32) -> f32 { return ${name}[row * cols + col]; }${both}`;
  }
  const blockBytes = { q8_0: 34, q4_0: 18 }[dtype];
  if (!blockBytes) throw new Error(`no WebGPU kernel for weights of type ${dtype}`);
  const unscaled = dtype === 'q8_0'
    ? `  // Sign-extend the byte: an arithmetic shift of i32.
  return f32(bitcast<i32>(byte_at(start + 2u + j) << 24u) >> 24u);`
    : `  let packed = byte_at(start + 2u + (j & 15u));
  return f32(select(packed & 15u, packed >> 4u, j >= 16u)) - 8.0;`;
  return `
fn byte_at(i: u32) -> u32 { return (${name}[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }
fn block_start(row: u32, col: u32, cols: u32) -> u32 { return (row * (cols / 32u) + col / 32u) * ${blockBytes}u; }
// Block starts are even (34 and 18 are), so a block's f16 scale is one half of a u32.
fn weight_scale(row: u32, col: u32, cols: u32) -> f32 {
  let start = block_start(row, col, cols);
  let word = ${name}[start >> 2u];
  return unpack2x16float(select(word & 0xffffu, word >> 16u, (start & 2u) != 0u)).x;
}
fn weight_unscaled(row: u32, col: u32, cols: u32) -> f32 {
  let start = block_start(row, col, cols);
  let j = col % 32u;
${unscaled}
}${both}`;
}

const storageType = (dtype) => (dtype === 'f32' ? 'f32' : 'u32');

/**
 * Activations applied to a linear layer's output (after its bias). erf is the rational
 * x·P(x²)/Q(x²) of src/activations.rs (|error| < 5e-7; WGSL has no erf), so the GPU's exact GELU
 * agrees with the CPU's. tanh is written out because some drivers' builtin returns NaN for large
 * |x| (exp overflow in a naive formula).
 */
const ACTIVATIONS = /* wgsl */ `
fn erf_approx(input: f32) -> f32 {
  let x = clamp(input, -4.0, 4.0);
  let x2 = x * x;
  var p = -2.72614225801306e-10;
  p = p * x2 + 2.77068142495902e-8;
  p = p * x2 - 2.10102402082508e-6;
  p = p * x2 - 5.69250639462346e-5;
  p = p * x2 - 7.34990630326855e-4;
  p = p * x2 - 2.95459980854025e-3;
  p = p * x2 - 1.60960333262415e-2;
  var q = -1.45660718464996e-5;
  q = q * x2 - 2.13374055278905e-4;
  q = q * x2 - 1.68282697438203e-3;
  q = q * x2 - 7.37332916720468e-3;
  q = q * x2 - 1.42647390514189e-2;
  return clamp(x * p / q, -1.0, 1.0);
}
fn tanh_safe(x: f32) -> f32 {
  let e = exp(-2.0 * min(abs(x), 20.0));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
fn act_none(x: f32) -> f32 { return x; }
fn act_gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476)); }
fn act_gelu_new(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
fn act_relu(x: f32) -> f32 { return max(x, 0.0); }
fn act_tanh(x: f32) -> f32 { return tanh_safe(x); }
`;

export const ACTIVATION_NAMES = ['none', 'gelu', 'gelu_new', 'relu', 'tanh'];

/**
 * y[m, n] = act(Σ_k x[m·xStride + k] · w[n, k] + bias[n]): a linear layer with PyTorch's [out, in]
 * weights. Params: a = M, b = N, c = K, d = xStride (K, or seq·K to read only each pair's row 0).
 * A workgroup computes a TILE×TILE block of y; x and w tiles of TILE_K columns pass through
 * workgroup memory (k-major, so the inner loop reads 4 consecutive floats per operand).
 */
export function matmulShader(dtype, activation) {
  if (!ACTIVATION_NAMES.includes(activation)) throw new Error(`unknown activation ${activation}`);
  const slots = TILE * TILE_K;
  return /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<${storageType(dtype)}>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${weightLoader(dtype, 'w')}
${ACTIVATIONS}
var<workgroup> x_tile: array<f32, ${slots}>;
var<workgroup> w_tile: array<f32, ${slots}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_index) thread: u32) {
  let rows = params.a;
  let cols = params.b;
  let inner = params.c;
  let row0 = group.y * ${TILE}u;
  let col0 = group.x * ${TILE}u;
  let tx = thread % 16u;
  let ty = thread / 16u;
  // Staging: each thread fetches TILE_K / 4 consecutive k of one tile row, for x and for w.
  let load_row = thread / 4u;
  let load_k = (thread % 4u) * ${TILE_K / 4}u;
  // Row i of this thread's 4×4 block is acc_i (columns in x, y, z, w): four named vectors, so
  // no compiler has to keep an indexed array in memory.
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  let x_row = row0 + load_row;
  let w_row = col0 + load_row;
  for (var k0 = 0u; k0 < inner; k0 += ${TILE_K}u) {
    // A run of TILE_K / 4 values starts at a multiple of 8 within a 32-aligned step, so it lies
    // in one quantised block: one scale for the run.
    var scale = 0.0;
    if (w_row < cols && k0 + load_k < inner) { scale = weight_scale(w_row, k0 + load_k, inner); }
    for (var i = 0u; i < ${TILE_K / 4}u; i++) {
      let k = k0 + load_k + i;
      var xv = 0.0;
      if (x_row < rows && k < inner) { xv = x[x_row * params.d + k]; }
      x_tile[(load_k + i) * ${TILE}u + load_row] = xv;
      var wv = 0.0;
      if (w_row < cols && k < inner) { wv = weight_unscaled(w_row, k, inner) * scale; }
      w_tile[(load_k + i) * ${TILE}u + load_row] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      let xo = kk * ${TILE}u + ty * 4u;
      let wo = kk * ${TILE}u + tx * 4u;
      let xa = vec4f(x_tile[xo], x_tile[xo + 1u], x_tile[xo + 2u], x_tile[xo + 3u]);
      let wb = vec4f(w_tile[wo], w_tile[wo + 1u], w_tile[wo + 2u], w_tile[wo + 3u]);
      acc0 += xa.x * wb;
      acc1 += xa.y * wb;
      acc2 += xa.z * wb;
      acc3 += xa.w * wb;
    }
    workgroupBarrier();
  }
  let block = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + ty * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let n = col0 + tx * 4u + j;
      if (r < rows && n < cols) { y[r * cols + n] = act_${activation}(block[i][j] + bias[n]); }
    }
  }
}
`;
}

/** Row-wise kernels cover M rows with a 2-D grid (a dimension holds at most 65535 workgroups). */
const ROW_INDEX = `group.y * num_groups.x + group.x`;

/**
 * out[r] = word[ids[r]] + position[offset + r % seq] + tokenType[types[r]] (rows of width).
 * Params: a = M, b = seq, c = width, d = positionOffset. The word table may be quantised.
 */
export function embeddingsShader(dtype) {
  return /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> types: array<u32>;
@group(0) @binding(3) var<storage, read> word: array<${storageType(dtype)}>;
@group(0) @binding(4) var<storage, read> position: array<f32>;
@group(0) @binding(5) var<storage, read> token_type: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
${weightLoader(dtype, 'word')}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) num_groups: vec3u, @builtin(local_invocation_index) thread: u32) {
  let r = ${ROW_INDEX};
  if (r >= params.a) { return; }
  let width = params.c;
  let id = ids[r];
  let pos = params.d + r % params.b;
  let kind = types[r];
  for (var c = thread; c < width; c += ${ROW_THREADS}u) {
    out[r * width + c] = load_weight(id, c, width) + position[pos * width + c] + token_type[kind * width + c];
  }
}
`;
}

/**
 * out[r] = LayerNorm(a[r] (+ residual[r])) · gamma + beta, one workgroup per row; the mean first,
 * then the variance around it (two passes: no cancellation in E[x²] − E[x]²).
 * Params: a = M, b = width, c = the residual's row stride (width, or a pair's seq·width when only
 * row 0 of each pair goes on: the last layer), g = eps.
 */
export function layerNormShader(residual) {
  return /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${residual ? '@group(0) @binding(5) var<storage, read> residual: array<f32>;' : ''}
var<workgroup> partial: array<f32, ${ROW_THREADS}>;

fn value(r: u32, c: u32) -> f32 { return a[r * params.b + c]${residual ? ' + residual[r * params.c + c]' : ''}; }

fn workgroup_sum(thread: u32, v: f32) -> f32 {
  partial[thread] = v;
  workgroupBarrier();
  for (var stride = ${ROW_THREADS / 2}u; stride > 0u; stride >>= 1u) {
    if (thread < stride) { partial[thread] += partial[thread + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) num_groups: vec3u, @builtin(local_invocation_index) thread: u32) {
  // Whole workgroups leave together, so the barriers below stay in uniform control flow.
  let r = ${ROW_INDEX};
  if (r >= params.a) { return; }
  let width = params.b;
  var s = 0.0;
  for (var c = thread; c < width; c += ${ROW_THREADS}u) { s += value(r, c); }
  let mean = workgroup_sum(thread, s) / f32(width);
  var s2 = 0.0;
  for (var c = thread; c < width; c += ${ROW_THREADS}u) { let d = value(r, c) - mean; s2 += d * d; }
  let inv = inverseSqrt(workgroup_sum(thread, s2) / f32(width) + params.g);
  for (var c = thread; c < width; c += ${ROW_THREADS}u) {
    out[r * width + c] = (value(r, c) - mean) * inv * gamma[c] + beta[c];
  }
}
`;
}

/**
 * Masked multi-head attention: ctx = softmax(q·kᵀ/√headSize + mask)·v per (pair, head). A
 * workgroup takes QUERY_TILE queries of one (pair, head), a query per thread; keys and values
 * stream through workgroup memory KEY_TILE at a time with an online softmax (running maximum and
 * sum, rescaled as it grows), so no score matrix is ever stored. Padding keys are skipped: their
 * probability is exactly zero, as with the CPU's large negative mask. q, k, v and ctx are
 * [M, hidden] with head h in columns h·headSize…; mask is [rows, seq] (1 = token). q and ctx may
 * hold only the first `queries` rows of each pair (the last layer needs row 0 alone).
 * Params: a = rows, b = seq, c = hidden, d = queries per pair (≤ seq), g = 1/√headSize.
 * Dispatch (⌈queries/QUERY_TILE⌉, heads, rows). `keyTile` shrinks for head sizes whose tiles would
 * not fit the device's workgroup memory.
 */
export function attentionShader(headSize, keyTile = KEY_TILE) {
  const tileValues = keyTile * headSize;
  return /* wgsl */ `${PARAMS}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> ctx: array<f32>;
const HEAD: u32 = ${headSize}u;
var<workgroup> k_tile: array<f32, ${tileValues}>;
var<workgroup> v_tile: array<f32, ${tileValues}>;
var<workgroup> key_valid: array<u32, ${keyTile}>;

@compute @workgroup_size(${QUERY_TILE})
fn main(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_index) thread: u32) {
  let seq = params.b;
  let hidden = params.c;
  let pair = group.z;
  let head = group.y;
  let queries = params.d;
  let query = group.x * ${QUERY_TILE}u + thread;
  let live = query < queries;
  let column = head * HEAD;
  var qv: array<f32, ${headSize}>;
  var acc: array<f32, ${headSize}>;
  if (live) {
    let base = (pair * queries + query) * hidden + column;
    for (var d = 0u; d < HEAD; d++) { qv[d] = q[base + d] * params.g; }
  }
  var running_max = -3.0e38;
  var running_sum = 0.0;
  for (var key0 = 0u; key0 < seq; key0 += ${keyTile}u) {
    for (var i = thread; i < ${tileValues}u; i += ${QUERY_TILE}u) {
      let key = key0 + i / HEAD;
      var kv = 0.0;
      var vv = 0.0;
      if (key < seq) {
        let at = (pair * seq + key) * hidden + column + i % HEAD;
        kv = k[at];
        vv = v[at];
      }
      k_tile[i] = kv;
      v_tile[i] = vv;
    }
    if (thread < ${keyTile}u) {
      let key = key0 + thread;
      key_valid[thread] = select(0u, mask[pair * seq + key], key < seq);
    }
    workgroupBarrier();
    if (live) {
      for (var j = 0u; j < ${keyTile}u; j++) {
        if (key_valid[j] == 0u) { continue; }
        var score = 0.0;
        for (var d = 0u; d < HEAD; d++) { score += qv[d] * k_tile[j * HEAD + d]; }
        let new_max = max(running_max, score);
        let rescale = exp(running_max - new_max);
        let weight = exp(score - new_max);
        running_sum = running_sum * rescale + weight;
        for (var d = 0u; d < HEAD; d++) { acc[d] = acc[d] * rescale + weight * v_tile[j * HEAD + d]; }
        running_max = new_max;
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let base = (pair * queries + query) * hidden + column;
    // running_sum > 0: every pair has its [CLS] token, so no row is all padding.
    for (var d = 0u; d < HEAD; d++) { ctx[base + d] = acc[d] / running_sum; }
  }
}
`;
}

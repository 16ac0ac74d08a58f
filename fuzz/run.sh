#!/usr/bin/env bash
# Builds the seed corpora and fuzzes every target for a fixed time, one after the other.
#   fuzz/run.sh [seconds per target, default 240] [target...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 (set
# here for the cargo-fuzz commands only) lets it pass its nightly-only flags (-Zsanitizer=address, -Cpasses=sancov-module). Logs go to fuzz/logs/,
# crashes to fuzz/artifacts/<target>/ (minimise them with `cargo fuzz tmin`, then keep them in
# fuzz/regressions/<target>/ so that tests/fuzz_regressions.rs replays them).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-240}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf_loader gguf_metadata safetensors_loader config_parser pair_tokenizer pytorch_loader)
mkdir -p logs
# candle's CPU kernels run single-threaded: one core per fuzzer, no thread-pool contention.
export RAYON_NUM_THREADS=1
# The seeds are built without RUSTC_BOOTSTRAP (cargo rebuilds everything when that variable changes).
[ -d corpus/gguf_loader ] || nice -n 15 cargo run --release --example make_seeds
RUSTC_BOOTSTRAP=1 nice -n 15 cargo fuzz build
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  # One process (fork=1) that keeps going after a crash, OOM or timeout, so one run reports them all.
  # A "timeout" is an input running over 10 s; an OOM is RSS over 2 GiB or one malloc over 1 GiB.
  RUSTC_BOOTSTRAP=1 nice -n 15 cargo fuzz run "$target" "corpus/$target" -- \
    -dict="dict/$target.dict" -max_total_time="$seconds" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=1048576 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" 2>&1 | tee "logs/$target.log" | grep -E '^#[0-9]+: cov|crash|INFO: (exiting|fuzzed)|Done' || true
done

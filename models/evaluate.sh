#!/usr/bin/env bash
# Reproduces every figure of models/MODEL_CARD.md's results tables: SciFact test (300 queries),
# BM25's top 100 reranked, metrics by `crossrank eval` for every system (PyTorch through its run file).
#
#   models/evaluate.sh        (PYTHON=/path/to/python with torch for the PyTorch row)
#
# Needs the trained HF directory from models/train.py (models/hf/crossrank-scifact-minilm-l4) and
# its starting point (…-untrained). MAXLEN is the length the model was trained at (chosen on dev:
# 0.57 at 128 vs 0.44 at 512). About 70 min on 2 cores; the output is artifacts/eval/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/scifact}
DEPTH=${DEPTH:-100}
WINDOW_DEPTH=${WINDOW_DEPTH:-20}
MAXLEN=${MAXLEN:-128}
PYTHON=${PYTHON:-python3}
TRAINED=models/hf/crossrank-scifact-minilm-l4
UNTRAINED=models/hf/crossrank-scifact-minilm-l4-untrained
CLI=target/release/crossrank
OUT=artifacts/eval
RUNS=artifacts/runs
mkdir -p "$OUT" "$RUNS"
./build.sh cli >&2

SOURCE="crossrank/scifact-minilm-l4 (models/train.py)"
"$CLI" convert --model "$UNTRAINED" --dtype f32 --out "$OUT/untrained.f32.gguf" --source "all-MiniLM-L6-v2 first 4 layers, untrained head"
for dtype in f32 q8_0 q4_0; do
  "$CLI" convert --model "$TRAINED" --dtype $dtype --out "$OUT/crossrank-scifact-minilm-l4.$dtype.gguf" --source "$SOURCE"
done

eval_args=(--corpus "$DATA/corpus.jsonl" --queries "$DATA/queries.jsonl" --qrels "$DATA/qrels/test.tsv"
  --candidates "$DATA/bm25_top100_test.tsv" --max-length "$MAXLEN" --markdown)
{
  echo "## Reranking quality: BM25 top $DEPTH reranked, max_length $MAXLEN"
  "$CLI" eval "${eval_args[@]}" --depth "$DEPTH" --write-runs "$RUNS" \
    --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" --model "$OUT/crossrank-scifact-minilm-l4.q8_0.gguf" \
    --model "$OUT/crossrank-scifact-minilm-l4.q4_0.gguf" --model "$OUT/untrained.f32.gguf"
} | tee "$OUT/results.md"

if "$PYTHON" -c 'import torch, sentence_transformers' 2>/dev/null; then
  "$PYTHON" models/pytorch_run.py --model "$TRAINED" --data-dir "$DATA" --depth "$DEPTH" --max-length "$MAXLEN" --out "$RUNS/pytorch.tsv" >&2
fi
{
  echo
  echo "## PyTorch (run file, same candidates and metric code)"
  [ -f "$RUNS/pytorch.tsv" ] && "$CLI" eval "${eval_args[@]}" --depth "$DEPTH" --run "$RUNS/pytorch.tsv" | tail -n 1
  echo
  echo "## Do the quantised files keep the f32 ranking? (per query, BM25 top $DEPTH)"
  python3 models/compare_runs.py "$RUNS/crossrank-crossrank-scifact-minilm-l4.f32.gguf.tsv" \
    "$RUNS/crossrank-crossrank-scifact-minilm-l4.q8_0.gguf.tsv" "$RUNS/crossrank-crossrank-scifact-minilm-l4.q4_0.gguf.tsv"
  echo
  echo "## Long documents: truncation vs windows (max over windows of $MAXLEN tokens, overlap 32), BM25 top $WINDOW_DEPTH"
  "$CLI" eval "${eval_args[@]}" --depth "$WINDOW_DEPTH" --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" | tail -n +3
  "$CLI" eval "${eval_args[@]}" --depth "$WINDOW_DEPTH" --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" --windows --window-overlap 32 | tail -n +4
  echo
  echo "## Windows at BM25 top $DEPTH (~90,000 pairs: the slowest row, ~55 min on 2 cores)"
  "$CLI" eval "${eval_args[@]}" --depth "$DEPTH" --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" --windows --window-overlap 32 | tail -n +4
} | tee -a "$OUT/results.md"

#!/usr/bin/env bash
# Reproduces every figure of models/MODEL_CARD.md's results table: SciFact test (300 queries),
# BM25 top 100 retrieved, the first DEPTH reranked, metrics by `crossrank eval` for every system.
#
#   models/evaluate.sh            (PYTHON=/path/to/python with torch for the PyTorch row; DEPTH=20)
#
# Needs the trained HF directory from models/train.py (models/hf/crossrank-scifact-minilm-l4) and
# its starting point (…-untrained); the shipped GGUF's rows need only the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/scifact}
DEPTH=${DEPTH:-20}
PYTHON=${PYTHON:-python3}
TRAINED=models/hf/crossrank-scifact-minilm-l4
UNTRAINED=models/hf/crossrank-scifact-minilm-l4-untrained
CLI=target/release/crossrank
OUT=artifacts/eval
mkdir -p "$OUT" artifacts/runs
./build.sh cli >&2

SOURCE="crossrank/scifact-minilm-l4 (models/train.py)"
"$CLI" convert --model "$UNTRAINED" --dtype f32 --out "$OUT/untrained.f32.gguf" --source "all-MiniLM-L6-v2 first 4 layers, untrained head"
for dtype in f32 q8_0 q4_0; do
  "$CLI" convert --model "$TRAINED" --dtype $dtype --out "$OUT/crossrank-scifact-minilm-l4.$dtype.gguf" --source "$SOURCE"
done

if "$PYTHON" -c 'import torch, sentence_transformers' 2>/dev/null; then
  "$PYTHON" models/pytorch_run.py --model "$TRAINED" --data-dir "$DATA" --depth "$DEPTH" --out artifacts/runs/pytorch.tsv >&2
fi
runs=()
[ -f artifacts/runs/pytorch.tsv ] && runs=(--run artifacts/runs/pytorch.tsv)

eval_args=(--corpus "$DATA/corpus.jsonl" --queries "$DATA/queries.jsonl" --qrels "$DATA/qrels/test.tsv"
  --candidates "$DATA/bm25_top100_test.tsv" --depth "$DEPTH" --markdown)
echo "## Reranking quality (DEPTH=$DEPTH)"
"$CLI" eval "${eval_args[@]}" "${runs[@]}" --model "$OUT/untrained.f32.gguf" \
  --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" --model "$OUT/crossrank-scifact-minilm-l4.q8_0.gguf" \
  --model "$OUT/crossrank-scifact-minilm-l4.q4_0.gguf"
echo
echo "## Long documents at max_length 256: truncation vs windows (max over windows, overlap 64)"
"$CLI" eval "${eval_args[@]}" --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" --max-length 256 | tail -n +4
"$CLI" eval "${eval_args[@]}" --model "$OUT/crossrank-scifact-minilm-l4.f32.gguf" --max-length 256 --windows | tail -n +4

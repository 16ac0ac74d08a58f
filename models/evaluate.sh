#!/usr/bin/env bash
# Reproduces every figure of models/MODEL_CARD.md's results table for the default model:
# TREC DL 2019 and 2020 (BM25 top 100, TREC's binary convention: grade >= 2), BEIR SciFact test
# (BM25 top 100, zero-shot) and SQuAD v1.1 dev (500 questions, BM25 top 20 over all dev
# paragraphs), every row by `crossrank eval` (plain rerank, + RRF, + weighted fusion).
#
#   models/evaluate.sh         (DATA=../shared/data by default; ~45 min on 2 cores)
#
# Needs the trained HF directory of models/train.py (models/hf/crossrank-minilm-l4). The model is
# scored at its default max_length (the trained length, recorded in the GGUF). Output:
# artifacts/eval/results.md, and run files under artifacts/runs/ for models/compare_runs.py.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-.venv-train/bin/python}
TRAINED=${TRAINED:-models/hf/crossrank-minilm-l4}
CLI=target/release/crossrank
OUT=artifacts/eval
RUNS=artifacts/runs
mkdir -p "$OUT" "$RUNS"
./build.sh cli >&2

SOURCE="crossrank/minilm-l4 (models/train.py, SQuAD v1.1 train)"
for dtype in f32 q8_0; do
  "$CLI" convert --model "$TRAINED" --dtype $dtype --out "$OUT/crossrank-minilm-l4.$dtype.gguf" --source "$SOURCE" >&2
done
F32=$OUT/crossrank-minilm-l4.f32.gguf
Q8=$OUT/crossrank-minilm-l4.q8_0.gguf
"$PYTHON" models/make_squad_eval.py --squad "$DATA/squad" --out artifacts/eval-data/squad-dev >&2

# eval NAME DIR CANDIDATES MIN_RELEVANCE MODEL...
eval_set() {
  local name=$1 dir=$2 candidates=$3 min_relevance=$4; shift 4
  local models=(); for m in "$@"; do models+=(--model "$m"); done
  echo
  echo "## $name"
  "$CLI" eval --corpus "$dir/corpus.jsonl" --queries "$dir/queries.jsonl" --qrels "$dir/qrels/test.tsv" \
    --candidates "$dir/$candidates" --min-relevance "$min_relevance" --markdown --write-runs "$RUNS/$name" "${models[@]}"
}
{
  echo "# crossrank-minilm-l4: reranking quality (crossrank eval; nDCG@10 uses the grades)"
  eval_set dl19 "$DATA/trec-dl/dl19" bm25_top100.tsv 2 "$F32" "$Q8"
  eval_set dl20 "$DATA/trec-dl/dl20" bm25_top100.tsv 2 "$F32" "$Q8"
  eval_set scifact-test "$DATA/scifact" bm25_top100_test.tsv 1 "$Q8"
  eval_set squad-dev artifacts/eval-data/squad-dev bm25_top20.tsv 1 "$Q8"
  echo
  echo "## Does Q8_0 keep the f32 ranking? (per query, BM25 top 100)"
  for set in dl19 dl20; do
    echo "### $set"
    python3 models/compare_runs.py "$RUNS/$set/crossrank-crossrank-minilm-l4.f32.gguf.tsv" "$RUNS/$set/crossrank-crossrank-minilm-l4.q8_0.gguf.tsv"
  done
  echo
  echo "## Long passages: windows of 128 tokens (overlap 32, best window) vs truncation"
  squad=artifacts/eval-data/squad-dev scifact=$DATA/scifact
  "$CLI" eval --corpus "$squad/corpus.jsonl" --queries "$squad/queries.jsonl" --qrels "$squad/qrels/test.tsv" \
    --candidates "$squad/bm25_top20.tsv" --markdown --windows --window-overlap 32 --model "$Q8"
  for windows in "" "--windows --window-overlap 32"; do
    # shellcheck disable=SC2086  # $windows is zero or three words
    "$CLI" eval --corpus "$scifact/corpus.jsonl" --queries "$scifact/queries.jsonl" --qrels "$scifact/qrels/test.tsv" \
      --candidates "$scifact/bm25_top100_test.tsv" --depth 20 --markdown $windows --model "$Q8"
  done
} | tee "$OUT/results.md"

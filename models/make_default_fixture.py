#!/usr/bin/env python3
"""PyTorch reference scores for the shipped default model -> tests/fixtures/default_model.json.

tests/default_model.rs checks the committed GGUF against this file without torch: its sha256,
its default max_length, its logits on the parity pairs of tests/make_fixtures.py (within the
precision's tolerance), and
its ranking of SciFact test queries' BM25 candidates (Spearman >= 0.99 and the same top 3 per query
as PyTorch f32). The SciFact texts are not copied here; the test reads them from ../shared by id.

Run from the repository root after models/train.py (needs torch, sentence-transformers):
    python3 models/make_default_fixture.py --gguf models/crossrank-scifact-minilm-l4.q8_0.gguf
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from sentence_transformers import CrossEncoder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "models"))
import make_fixtures  # noqa: E402  (PAIRS and the parity-fixture recipe)
from train import doc_text, read_candidates, read_jsonl  # noqa: E402

QUERIES = 20  # the first test queries by id
DEPTH = 20  # BM25 candidates per query


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/hf/crossrank-scifact-minilm-l4", help="trained HF directory")
    p.add_argument("--gguf", required=True, action="append",
                   help="a shipped GGUF (its name and sha256 go in the fixture); repeat for each precision")
    p.add_argument("--data-dir", default="../shared/data/scifact")
    p.add_argument("--out", default="tests/fixtures/default_model.json")
    args = p.parse_args()
    torch.set_num_threads(2)

    # CrossEncoder's default max_length is the tokenizer's model_max_length: the length the model was
    # trained at, which `crossrank convert` records in the GGUF as its default too.
    model = CrossEncoder(args.model, device="cpu")
    max_length = model.max_length
    logits = model.predict([(q, p) for _, q, p in make_fixtures.PAIRS], batch_size=8,
                           activation_fn=torch.nn.Identity(), convert_to_numpy=True)
    cases = [{"name": name, "query": q, "passage": p, "logit": float(logit)}
             for (name, q, p), logit in zip(make_fixtures.PAIRS, logits)]
    data = Path(args.data_dir)
    corpus = {d["_id"]: doc_text(d) for d in read_jsonl(data / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    candidates = read_candidates(data / "bm25_top100_test.tsv")
    ranking = []
    for qid in sorted(candidates, key=int)[:QUERIES]:
        doc_ids = [d for d, _, _ in candidates[qid][:DEPTH]]
        logits = model.predict([(queries[qid], corpus[d]) for d in doc_ids], batch_size=8,
                               activation_fn=torch.nn.Identity(), convert_to_numpy=True)
        ranking.append({"query_id": qid, "doc_ids": doc_ids, "logits": [float(x) for x in logits]})

    fixture = {
        "about": "PyTorch f32 reference for the shipped default model files (models/make_default_fixture.py): raw logits "
                 f"at its default max_length {max_length} for the parity pairs of tests/make_fixtures.py and for the first "
                 f"{QUERIES} SciFact test queries x their BM25 top {DEPTH} (texts read from ../shared by id; "
                 "document text = title + ' ' + abstract, as crossrank eval builds it).",
        "command": "python3 " + " ".join(sys.argv),
        "versions": make_fixtures.versions(),
        "max_length": max_length,
        "shipped": [{"gguf": Path(g).name, "sha256": hashlib.sha256(Path(g).read_bytes()).hexdigest()} for g in args.gguf],
        "cases": cases,
        "scifact": ranking,
    }
    Path(args.out).write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

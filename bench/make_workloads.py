#!/usr/bin/env python3
"""Benchmark workloads from real SciFact text (stdlib only; reads ../shared/data/scifact).

W30 / W100: the first test query and its BM25 top-30 / top-100 candidates (title + " " + text, as
`crossrank eval` builds them). W30-short: the same 30 candidates cut to their first 48 words
(~64 tokens per pair). Written to artifacts/bench/*.json as {"query", "documents"}.
"""
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CROSSRANK_DATA", ROOT.parent / "shared" / "data")) / "scifact"
OUT = ROOT / "artifacts" / "bench"


def main() -> None:
    corpus = {}
    for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        corpus[doc["_id"]] = (doc.get("title", "") + " " + doc.get("text", "")).strip()
    queries = {}
    for line in (DATA / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        query = json.loads(line)
        queries[query["_id"]] = query["text"]
    candidates = {}
    for line in (DATA / "bm25_top100_test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, rank = line.split("\t")[:3]
        candidates.setdefault(query_id, []).append((int(rank), doc_id))
    query_id = sorted(candidates, key=int)[0]
    ranked = [corpus[doc_id] for _, doc_id in sorted(candidates[query_id])]
    OUT.mkdir(parents=True, exist_ok=True)
    workloads = {
        "W30": ranked[:30],
        "W100": ranked[:100],
        "W30-short": [" ".join(doc.split()[:48]) for doc in ranked[:30]],
    }
    for name, documents in workloads.items():
        path = OUT / f"{name}.json"
        path.write_text(json.dumps({"query": queries[query_id], "query_id": query_id, "documents": documents}, ensure_ascii=False))
        print(path, len(documents), "documents")


if __name__ == "__main__":
    main()

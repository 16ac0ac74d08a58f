#!/usr/bin/env python3
"""Score SciFact test candidates with a cross-encoder in PyTorch and write a TREC run.

The reference side of the model card's table: sentence-transformers' CrossEncoder on the same
pairs crossrank scores (query text, title + " " + text, the first --depth BM25 candidates of each
test query, max_length 512, raw logits). `crossrank eval --run` then computes the metrics with the
same code as for every other system.

    python3 models/pytorch_run.py --model models/hf/crossrank-scifact-minilm-l4 --depth 20 \\
        --out artifacts/runs/pytorch-depth20.tsv
"""
import argparse
import json
import time
from pathlib import Path

import torch
from sentence_transformers import CrossEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data_dir)
    corpus = {}
    for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        corpus[doc["_id"]] = f"{doc.get('title', '')} {doc.get('text', '')}".strip()
    queries = {json.loads(l)["_id"]: json.loads(l)["text"] for l in (data / "queries.jsonl").read_text(encoding="utf-8").splitlines()}
    candidates = {}
    for line in (data / "bm25_top100_test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, rank = line.split("\t")[:3]
        candidates.setdefault(query_id, []).append((int(rank), doc_id))
    model = CrossEncoder(args.model, device="cpu", max_length=args.max_length)
    pairs, owners = [], []
    for query_id in sorted(candidates, key=int):
        for _, doc_id in sorted(candidates[query_id])[: args.depth]:
            pairs.append((queries[query_id], corpus[doc_id]))
            owners.append((query_id, doc_id))
    start = time.time()
    logits = model.predict(pairs, batch_size=16, activation_fn=torch.nn.Identity(), convert_to_numpy=True, show_progress_bar=False)
    lines = [f"{q} Q0 {d} 0 {float(s):.6f} pytorch" for (q, d), s in zip(owners, logits)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"{args.out}: {len(pairs)} pairs in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A teacher's own ranking: a sentence-transformers bi-encoder reranks BM25's top 100 of TREC DL
(cosine of mean-pooled, normalised embeddings), written as a TREC run for `crossrank eval --run`.

How strong a teacher models/train.py can distil from is bounded by this figure (evaluation data
only: TREC DL is never trained on). Measured 2026-12-01, DL19 nDCG@10 (grade >= 2 for binary
metrics): all-MiniLM-L6-v2 0.6424 (2.5 min on 2 cores), all-mpnet-base-v2 0.6831 (17 min),
their mean 0.6804; BM25 0.5058. DL20: all-MiniLM-L6-v2 0.6081, all-mpnet-base-v2 0.6423 (~20
min); BM25 0.4796.

    python models/studies/biencoder_rerank.py --teacher mpnet --set dl19 --out artifacts/runs/mpnet-dl19.tsv
    target/release/crossrank eval --corpus D/corpus.jsonl --queries D/queries.jsonl --qrels D/qrels/test.tsv \\
        --candidates D/bm25_top100.tsv --min-relevance 2 --run artifacts/runs/mpnet-dl19.tsv
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import doc_text, read_candidates, read_jsonl, teacher_dir  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", default="mpnet", choices=["minilm", "mpnet"])
    p.add_argument("--set", default="dl19", help="a folder of ../shared/data/trec-dl")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/trec-dl"))
    p.add_argument("--work", default="artifacts/teachers", help="where all-mpnet-base-v2 is unzipped")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(teacher_dir(args.teacher, args.work), device="cpu")
    model.max_seq_length = 256
    data = Path(args.data) / args.set
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    candidates = read_candidates(data / "bm25_top100.tsv")
    wanted = {d for docs in candidates.values() for d, _, _ in docs}
    texts = {r["_id"]: doc_text(r) for r in read_jsonl(data / "corpus.jsonl") if r["_id"] in wanted}
    ids = sorted(texts)
    row = {d: i for i, d in enumerate(ids)}
    docs = model.encode([texts[d] for d in ids], batch_size=64, normalize_embeddings=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for q, cands in candidates.items():
            if q not in queries:
                continue
            qe = model.encode([queries[q]], normalize_embeddings=True)[0]
            scored = sorted(((float(docs[row[d]] @ qe), d) for d, _, _ in cands), key=lambda x: -x[0])
            for rank, (score, d) in enumerate(scored, 1):
                f.write(f"{q} Q0 {d} {rank} {score:.6f} {args.teacher}\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Per-query nDCG@10 of two or more TREC runs on one set: where a model wins and loses against
another (a first stage, a teacher), with the query's text, so a failure has a shape to read.

Evaluation data only (TREC DL is never trained on). The runs come from `crossrank eval
--write-runs DIR` (a model; the first stage is BM25's candidate file in rank order) and from
models/studies/biencoder_rerank.py (a teacher):

    python models/studies/per_query.py --set ../shared/data/trec-dl/dl19 \\
        --run bm25=bm25 --run student=artifacts/runs/student.tsv --run teacher=artifacts/runs/minilm-dl19.tsv

The first two runs are compared: the table is sorted by their difference, then a summary line
per pair of runs (wins / ties / losses, mean difference).

Measured 2026-12-01 on DL19 (43 queries): the shipped model beats BM25 on 23 queries and loses on 16
(+0.085 mean); all-MiniLM-L6-v2 alone beats the shipped model on 26 and loses on 13 (+0.051). The
shipped model's largest losses to BM25 are queries whose answer is a list, not one fact ("causes
of military suicide", "causes of left ventricular hypertrophy", "right pelvic pain causes") and an
ambiguous name ("who is robert gray"); the teacher's largest gains over it are definitions and
"what is" queries ("rsa definition key", "what are the social determinants of health").
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import ndcg_at_k, read_candidates, read_jsonl, read_qrels  # noqa: E402
from compare_runs import read_run  # noqa: E402


def ranked(path):
    """query-id -> doc ids by descending score, from a TREC run file."""
    return {q: sorted(scores, key=lambda d: -scores[d]) for q, scores in read_run(path).items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", required=True, help="a BEIR-layout folder: queries.jsonl, qrels/test.tsv, bm25_top100.tsv")
    p.add_argument("--run", action="append", required=True,
                   help="NAME=PATH of a TREC run; NAME=bm25 takes the set's candidate order")
    p.add_argument("--tie", type=float, default=0.02, help="differences within this count as ties")
    args = p.parse_args()
    if len(args.run) < 2:
        p.error("give at least two --run")

    data = Path(args.set)
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    qrels = read_qrels(data / "qrels" / "test.tsv")
    runs = {}
    for spec in args.run:
        name, _, path = spec.partition("=")
        if path == "bm25":
            runs[name] = {q: [d for d, _, _ in docs] for q, docs in read_candidates(data / "bm25_top100.tsv").items()}
        else:
            runs[name] = ranked(path)
    names = list(runs)
    qs = [q for q in qrels if q in queries and any(g > 0 for g in qrels[q].values())]
    ndcg = {n: {q: ndcg_at_k(runs[n].get(q, []), qrels[q]) for q in qs} for n in names}

    a, b = names[0], names[1]
    print("| query | " + " | ".join(names) + f" | {b} − {a} |")
    print("|---|" + "---:|" * (len(names) + 1))
    for q in sorted(qs, key=lambda q: ndcg[b][q] - ndcg[a][q]):
        cells = " | ".join(f"{ndcg[n][q]:.3f}" for n in names)
        print(f"| {queries[q]} | {cells} | {ndcg[b][q] - ndcg[a][q]:+.3f} |")
    print()
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            d = [ndcg[y][q] - ndcg[x][q] for q in qs]
            wins = sum(v > args.tie for v in d)
            losses = sum(v < -args.tie for v in d)
            mean = sum(d) / len(d)
            print(f"{y} vs {x}: {wins} better, {len(d) - wins - losses} within {args.tie}, {losses} worse; "
                  f"mean nDCG@10 {sum(ndcg[x].values()) / len(qs):.4f} -> {sum(ndcg[y].values()) / len(qs):.4f} ({mean:+.4f})")


if __name__ == "__main__":
    main()

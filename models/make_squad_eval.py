#!/usr/bin/env python3
"""SQuAD v1.1 dev as a BEIR-layout reranking set for `crossrank eval` (models/evaluate.sh).

corpus.jsonl: every dev paragraph (2,067); queries.jsonl: ``--questions`` seeded dev questions;
qrels/test.tsv: each question's own paragraph (grade 1); bm25_top20.tsv: BM25 (common.BM25, the
recipe that reproduces the shipped BM25 files) top 20 over all dev paragraphs, with scores.
Never used for training; models/train.py selects its checkpoint on a different seeded sample.

    python models/make_squad_eval.py --out artifacts/eval-data/squad-dev
"""
import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BM25, read_jsonl  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--squad", default=str(Path(__file__).resolve().parents[2] / "shared/data/squad"))
    p.add_argument("--out", default="artifacts/eval-data/squad-dev")
    p.add_argument("--questions", type=int, default=500)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--seed", type=int, default=2016)
    args = p.parse_args()

    paras = read_jsonl(Path(args.squad) / "dev-v1.1.jsonl.gz")
    ids = [f"p{i}" for i in range(len(paras))]
    bm25 = BM25(ids, [p["context"] for p in paras])
    questions = [(qa["question"], ids[i]) for i, p in enumerate(paras) for qa in p["qas"]]
    questions = random.Random(args.seed).sample(questions, args.questions)
    out = Path(args.out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for pid, p in zip(ids, paras):
            f.write(json.dumps({"_id": pid, "title": "", "text": p["context"]}, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as fq, open(out / "qrels" / "test.tsv", "w") as fr, \
            open(out / f"bm25_top{args.depth}.tsv", "w") as fc:
        fr.write("query-id\tcorpus-id\tscore\n")
        fc.write("query-id\tcorpus-id\trank\tscore\n")
        for n, (question, pid) in enumerate(questions):
            qid = f"q{n}"
            fq.write(json.dumps({"_id": qid, "text": question}, ensure_ascii=False) + "\n")
            fr.write(f"{qid}\t{pid}\t1\n")
            for rank, (doc, score) in enumerate(bm25.top(question, args.depth), 1):
                fc.write(f"{qid}\t{doc}\t{rank}\t{score:.6f}\n")
    print(f"wrote {out}: {len(paras)} paragraphs, {len(questions)} questions, BM25 top {args.depth}")


if __name__ == "__main__":
    main()

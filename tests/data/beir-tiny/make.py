#!/usr/bin/env python3
"""Makes tests/data/beir-tiny/, the BEIR-layout folder of the fine-tuning tests (tests/finetune/):

    python3 tests/data/beir-tiny/make.py [path/to/dev-v1.1.jsonl.gz]

Documents: the first 12 paragraphs of four articles of the demo corpus
(www/demo/corpus/squad-dev-v1.1.jsonl.gz, SQuAD v1.1 dev, CC BY-SA 4.0), 48 in all. Queries: the
first question SQuAD v1.1 dev asks about each of them (../shared/data/squad/dev-v1.1.jsonl.gz by
default), judged relevant to its own paragraph: every fourth one (12) in qrels/test.tsv, the other
36 in qrels/train.tsv. Same input, same bytes.
"""
import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ARTICLES = ["Amazon rainforest", "Black Death", "Packet switching", "Geology"]
PER_ARTICLE = 12

corpus = [json.loads(l) for l in gzip.open(REPO / "www/demo/corpus/squad-dev-v1.1.jsonl.gz", "rt", encoding="utf-8")]
squad = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data/squad/dev-v1.1.jsonl.gz"
questions = {(r["title"].replace("_", " "), r["para_idx"]): r["qas"][0]["question"] for r in map(json.loads, gzip.open(squad, "rt", encoding="utf-8"))}

docs = []
for title in ARTICLES:
    docs += [d for d in corpus if d["title"] == title][:PER_ARTICLE]
(HERE / "qrels").mkdir(exist_ok=True)
with open(HERE / "corpus.jsonl", "w", encoding="utf-8") as c, open(HERE / "queries.jsonl", "w", encoding="utf-8") as q, \
        open(HERE / "qrels/train.tsv", "w", encoding="utf-8") as train, open(HERE / "qrels/test.tsv", "w", encoding="utf-8") as test:
    train.write("query-id\tcorpus-id\tscore\n")
    test.write("query-id\tcorpus-id\tscore\n")
    for n, d in enumerate(docs):
        doc_id = d["id"].replace(" ", "_")
        c.write(json.dumps({"_id": doc_id, "title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")
        query_id = f"q{n + 1:02d}"
        para = int(d["id"].rsplit("-", 1)[1])
        q.write(json.dumps({"_id": query_id, "text": questions[(d["title"], para)]}, ensure_ascii=False) + "\n")
        (test if n % 4 == 3 else train).write(f"{query_id}\t{doc_id}\t1\n")

#!/usr/bin/env python3
"""PyTorch reference scores for the shipped default model -> tests/fixtures/default_model.json.

tests/default_model.rs checks the committed GGUF against this file without torch and without
anything beside the checkout: its sha256, its default max_length, its logits on the parity pairs
of tests/make_fixtures.py (within the precision's tolerance), and its ranking of real candidates
(Spearman >= 0.99 and the same top 3 per query as PyTorch f32): 20 SQuAD v1.1 dev questions (10 as
asked, 10 as keyword queries) x BM25's top 20 dev paragraphs. The texts are stored in the fixture
(SQuAD is CC BY-SA 4.0: attribution in the fixture's "about").

Run from the repository root after models/train.py and models/make_squad_eval.py (needs torch):
    python3 models/make_default_fixture.py --gguf models/crossrank-minilm-l4.q8_0.gguf
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from sentence_transformers import CrossEncoder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
from common import BM25, read_jsonl, versions  # noqa: E402
from train import keyword_query  # noqa: E402

# The parity pairs (odd Unicode, empty and long passages...) as tests/make_fixtures.py wrote them
# into the committed tiny-model fixture: read as data, so models/ imports nothing from tests/.
PARITY_FIXTURE = ROOT / "tests" / "fixtures" / "tiny.json"
QUERIES = 20  # the first questions of the SQuAD dev eval set; the second half as keyword queries
DEPTH = 20  # BM25 candidates per query (Spearman >= 0.99 allows a near-tie swap at this depth, not at 10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/hf/crossrank-minilm-l4", help="trained HF directory")
    p.add_argument("--gguf", required=True, action="append",
                   help="a shipped GGUF (its name and sha256 go in the fixture); repeat for each precision")
    p.add_argument("--eval-data", default="artifacts/eval-data/squad-dev", help="models/make_squad_eval.py's output")
    p.add_argument("--out", default="tests/fixtures/default_model.json")
    args = p.parse_args()
    torch.set_num_threads(2)

    # CrossEncoder's default max_length is the tokenizer's model_max_length: the length the model was
    # trained at, which `crossrank convert` records in the GGUF as its default too.
    model = CrossEncoder(args.model, device="cpu")
    max_length = model.max_length

    def logits(pairs):
        return [float(x) for x in model.predict(pairs, batch_size=8, activation_fn=torch.nn.Identity(), convert_to_numpy=True)]

    pairs = [(c["name"], c["query"], c["passage"]) for c in json.loads(PARITY_FIXTURE.read_text(encoding="utf-8"))["cases"]]
    cases = [{"name": name, "query": q, "passage": p, "logit": logit}
             for (name, q, p), logit in zip(pairs, logits([(q, p) for _, q, p in pairs]))]
    data = Path(args.eval_data)
    corpus = {d["_id"]: d["text"] for d in read_jsonl(data / "corpus.jsonl")}
    questions = [q["text"] for q in read_jsonl(data / "queries.jsonl")][:QUERIES]

    ids = sorted(corpus, key=lambda i: int(i[1:]))
    bm25 = BM25(ids, [corpus[i] for i in ids])
    ranking = []
    for n, question in enumerate(questions):
        query = question if n < QUERIES // 2 else keyword_query(question)
        docs = [corpus[d] for d, _ in bm25.top(query, DEPTH)]
        ranking.append({"query": query, "documents": docs, "logits": logits([(query, d) for d in docs])})

    fixture = {
        "about": "PyTorch f32 reference for the shipped default model files (models/make_default_fixture.py): raw logits "
                 f"at its default max_length {max_length} for the parity pairs of tests/make_fixtures.py and for {QUERIES} "
                 f"SQuAD v1.1 dev questions (the last {QUERIES // 2} as keyword queries) x BM25's top {DEPTH} dev paragraphs. "
                 "SQuAD: Rajpurkar et al. 2016, CC BY-SA 4.0 (texts unchanged).",
        "command": "python3 " + " ".join(sys.argv),
        "versions": versions(),
        "max_length": max_length,
        "shipped": [{"gguf": Path(g).name, "sha256": hashlib.sha256(Path(g).read_bytes()).hexdigest()} for g in args.gguf],
        "cases": cases,
        "ranking": ranking,
    }
    Path(args.out).write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

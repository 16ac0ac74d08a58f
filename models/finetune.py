#!/usr/bin/env python3
"""Fine-tune a crossrank model on your own BEIR-layout folder and report whether it helped.

    ./build.sh finetune DATA_DIR [options]        (makes .venv-train, builds the CLI, runs this)
    python models/finetune.py DATA_DIR [--model START] [--out DIR] [--device cuda]

In: DATA_DIR/corpus.jsonl, queries.jsonl, qrels/train.tsv (optional qrels/dev.tsv, qrels/test.tsv).
Out (--out, default artifacts/finetune/<folder name>/): model.q8_0.gguf (browser-ready, its default
max_length the training length), MODEL_CARD.md, report.md and report.json; work/ holds the
checkpoints: run the same command again after a stop and it continues from the last one.

What it does (every draw seeded with --seed):

1. Checks the folder (models/finetune_data.py: named errors for missing files, unknown ids, too
   few labelled queries, a corpus too large for memory) and splits the queries: dev = qrels/dev.tsv,
   else a seeded share of the train queries; the report's held-out split = qrels/test.tsv, else dev.
2. BM25 (bm25s) over the streamed corpus: hard negatives for each (train query, relevant document)
   from its top --neg-pool, each dev query's top --dev-depth (checkpoint selection) and each
   held-out query's top --depth, written as the candidates file `crossrank eval` reads.
3. The starting model: a crossrank GGUF (default: the shipped models/crossrank-minilm-l4.q8_0.gguf;
   its tensors dequantised with PyPI's `gguf` reader, its config and tokenizer from its metadata) or
   a Hugging Face cross-encoder folder.
4. sentence-transformers' CrossEncoderTrainer with MultipleNegativesRankingLoss: each row's positive
   competes in one softmax with its BM25 hard negatives and --in-batch-negatives other rows'
   documents. Pointwise BCE did not learn at all on SciFact on this budget, the listwise loss did
   (models/history/scifact-training-notes.md). Dev nDCG@10 every --eval-every steps; a checkpoint
   at each; early stopping after --patience evaluations without a better one; the best is kept.
5. The best checkpoint -> `crossrank convert --dtype q8_0 --max-length L` (L: the training length).
6. `crossrank eval` on the held-out split: BM25, the starting model, the fine-tuned one. When the
   fine-tuned model's nDCG@10 is not higher, the output model is the starting model, and the report
   says so.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune_data as fd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "crossrank-minilm-l4.q8_0.gguf"
CLI = REPO / "target" / "release" / "crossrank"
STOPPED = 75  # exit status of a run stopped on purpose (--stop-after-steps, --time-budget-min): run again to continue


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- starting model


def gguf_string(reader, key):
    field = reader.fields.get(key)
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def hf_from_gguf(gguf_path, out_dir):
    """A crossrank GGUF as a Hugging Face folder: its tensors (HF names) dequantised to f32, its
    config.json and tokenizer.json from the metadata (src/gguf.rs writes them), and a
    tokenizer_config.json whose model_max_length is the file's recorded default length."""
    import numpy as np
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file

    reader = GGUFReader(str(gguf_path))
    config_text, tokenizer_text = gguf_string(reader, "crossrank.config_json"), gguf_string(reader, "tokenizer.huggingface.json")
    if config_text is None or tokenizer_text is None:
        raise fd.FinetuneError("bad_format", f"{gguf_path}: not a crossrank GGUF (no crossrank.config_json / tokenizer.huggingface.json): "
                                             "convert the model with `crossrank convert` or pass its Hugging Face folder")
    config = json.loads(config_text)
    field = reader.fields.get("crossrank.max_length")
    max_length = int(field.parts[-1][0]) if field is not None else int(config.get("max_position_embeddings", 512))
    tensors = {}
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        tensors[t.name] = torch.from_numpy(dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape).copy())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "tokenizer.json").write_text(tokenizer_text)
    write_tokenizer_config(out_dir, json.loads(tokenizer_text), max_length, int(config.get("type_vocab_size", 1)) > 1)
    return max_length


SPECIAL = {"cls_token": ("[CLS]", "<s>"), "sep_token": ("[SEP]", "</s>"), "pad_token": ("[PAD]", "<pad>"),
           "unk_token": ("[UNK]", "<unk>"), "mask_token": ("[MASK]", "<mask>")}


def write_tokenizer_config(out_dir, tokenizer, max_length, token_types):
    """A tokenizer_config.json for tokenizer.json alone: the fast tokenizer class, the special
    tokens it declares (padding needs pad_token), the training length, and whether the model reads
    token type ids (BERT's segment ids: without model_input_names saying so the generic class drops
    them, and every pair scores as if the document were part of the query)."""
    added = {t["content"] for t in tokenizer.get("added_tokens", [])}
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
           "model_input_names": ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]}
    for role, names in SPECIAL.items():
        for name in names:
            if name in added:
                cfg[role] = name
                break
    (Path(out_dir) / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))


def recorded_max_length(hf_dir):
    """The length a Hugging Face folder says it was trained at (tokenizer_config.json's
    model_max_length, when below its position embeddings), else its position embeddings."""
    cfg = json.loads((Path(hf_dir) / "config.json").read_text())
    positions = int(cfg.get("max_position_embeddings", 512))
    tok = Path(hf_dir) / "tokenizer_config.json"
    if tok.exists():
        n = json.loads(tok.read_text()).get("model_max_length")
        if isinstance(n, (int, float)) and 0 < n < positions:
            return int(n)
    return positions


# ----------------------------------------------------------------------------- data preparation (cached in work/)


def fingerprint(args, layout):
    """What the prepared data depends on: the input files (size, mtime) and the options that shape
    the data or the model. A work folder made by another command is refused, not mixed in."""
    files = [layout.corpus, layout.queries, layout.train, layout.dev, layout.test]
    parts = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files if p is not None]
    options = {k: getattr(args, k) for k in ("model", "seed", "dev_frac", "neg_pool", "hard_negatives", "dev_depth", "depth", "max_length")}
    parts.append(json.dumps(options, sort_keys=True, default=str))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def prepare(args, layout, work):
    """Checks, splits, mines and writes everything training and evaluation read; cached as
    work/prepared.json so that a resumed run trains on exactly the same rows."""
    prepared_path = work / "prepared.json"
    key = fingerprint(args, layout)
    if prepared_path.exists():
        prepared = json.loads(prepared_path.read_text())
        if prepared["fingerprint"] != key:
            raise fd.FinetuneError("work_in_use", f"{work}: made by another command (other data or options); delete it, or pass another --work/--out")
        log(f"data: reusing {prepared_path}")
        return prepared

    fd.check_corpus_size(layout.corpus, None if args.max_memory_mb is None else args.max_memory_mb * 2**20)
    t0 = time.time()
    index = fd.Bm25(layout.corpus, progress=lambda n: print(f"\rindexing corpus.jsonl: {n} documents", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    queries = fd.read_queries(layout.queries)
    named = {"train": layout.train, "dev": layout.dev, "test": layout.test}
    qrels = {name: fd.read_qrels(path) for name, path in named.items() if path is not None}
    for name, q in qrels.items():
        fd.check_ids(q, named[name], queries, index.doc_id_set)
    splits = fd.split_queries(qrels["train"], qrels.get("dev"), qrels.get("test"), seed=args.seed, dev_frac=args.dev_frac)
    blank = sorted(q for q in splits.train + splits.dev + splits.heldout if not queries[q].strip())
    if blank:
        raise fd.FinetuneError("bad_format", f"{layout.queries}: {len(blank)} labelled quer{'y has' if len(blank) == 1 else 'ies have'} an empty \"text\" (first: `{blank[0]}`)")
    log(f"corpus {len(index.doc_ids)} documents indexed in {time.time() - t0:.1f}s; queries: {len(splits.train)} train, "
        f"{len(splits.dev)} dev ({splits.dev_source}), {len(splits.heldout)} held out ({splits.heldout_name})")

    depth = max(args.neg_pool, args.dev_depth)
    top = dict(zip(splits.train + splits.dev, index.top([queries[q] for q in splits.train + splits.dev], depth)))
    heldout_top = dict(zip(splits.heldout, index.top([queries[q] for q in splits.heldout], args.depth)))
    rows, skipped = fd.listwise_rows(splits.train, splits.qrels, top, args.hard_negatives, args.neg_pool, args.seed)
    if len(rows) < fd.MIN_TRAIN_QUERIES:
        raise fd.FinetuneError("too_few_queries", f"{len(rows)} training rows: BM25 found fewer than {args.hard_negatives} negatives for most train queries "
                                                  "(is the corpus that small? lower --hard-negatives)")
    dev = [{"query": q, "relevant": {d: g for d, g in splits.qrels[q].items() if g > 0}, "candidates": [d for d, _ in top[q][: args.dev_depth]]}
           for q in splits.dev]
    heldout_dir = work / "heldout"
    fd.write_qrels(heldout_dir / "qrels.tsv", splits.heldout, splits.qrels)
    fd.write_candidates(heldout_dir / "candidates.tsv", splits.heldout, heldout_top)
    wanted = {d for _, pos, negs in rows for d in [pos, *negs]} | {d for s in dev for d in s["candidates"]}
    texts = fd.read_texts(layout.corpus, wanted)
    prepared = {
        "fingerprint": key,
        "corpus_documents": len(index.doc_ids),
        "splits": {"train": splits.train, "dev": splits.dev, "heldout": splits.heldout, "dev_source": splits.dev_source,
                   "heldout_name": splits.heldout_name},
        "rows": [{"query": queries[q], "positive": texts[pos], "negatives": [texts[n] for n in negs]} for q, pos, negs in rows],
        "rows_skipped": skipped,
        "dev": [{"query": queries[s["query"]], "relevant": s["relevant"], "candidates": s["candidates"],
                 "texts": [texts[d] for d in s["candidates"]]} for s in dev],
    }
    tmp = prepared_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(prepared))
    tmp.replace(prepared_path)
    return prepared


# ----------------------------------------------------------------------------- training


def ndcg10(ranked, relevant):
    """nDCG@10 with graded gains, the ideal ranking over every judged relevant document (as
    `crossrank eval` computes it: a relevant document BM25 missed counts against the ranking)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def train(args, prepared, start_hf, max_length, work):
    """Trains (or resumes) and returns (the best model's folder, the training record)."""
    import datasets
    import numpy as np
    import torch
    import transformers
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import EarlyStoppingCallback, TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    best_dir, record_path = work / "best", work / "training.json"
    if (best_dir / "model.safetensors").exists() and record_path.exists():
        log(f"training: already done ({best_dir})")
        return best_dir, json.loads(record_path.read_text())

    model = CrossEncoder(str(start_hf), num_labels=1, max_length=max_length, device=args.device)
    k = args.hard_negatives
    rows = prepared["rows"]
    columns = {"query": [r["query"] for r in rows], "positive": [r["positive"] for r in rows]}
    for i in range(k):
        columns[f"negative_{i + 1}"] = [r["negatives"][i] for r in rows]
    train_ds = datasets.Dataset.from_dict(columns)

    class DevNdcg(BaseEvaluator):
        """nDCG@10 of reranking each dev query's BM25 top --dev-depth."""

        def __init__(self):
            super().__init__()
            self.name, self.primary_metric = "dev", "ndcg@10"

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            pairs = [[s["query"], t] for s in prepared["dev"] for t in s["texts"]]
            scores = np.asarray(model.predict(pairs, batch_size=args.eval_batch_size, activation_fn=torch.nn.Identity(),
                                              show_progress_bar=False)).reshape(-1)
            values, at = [], 0
            for s in prepared["dev"]:
                n = len(s["candidates"])
                order = np.argsort(-scores[at : at + n], kind="stable")
                values.append(ndcg10([s["candidates"][i] for i in order], s["relevant"]))
                at += n
            value = float(np.mean(values))
            log(f"dev nDCG@10 {value:.4f} (step {steps if steps and steps > 0 else 0})")
            return {"dev_ndcg@10": value}

    evaluator = DevNdcg()
    start_dev_path = work / "dev_start.json"
    if not start_dev_path.exists():
        start_dev_path.write_text(json.dumps(evaluator(model)))
    start_dev = json.loads(start_dev_path.read_text())["dev_ndcg@10"]

    steps_per_epoch = math.ceil(len(train_ds) / args.batch_size)
    total_steps = math.ceil(steps_per_epoch * args.epochs)
    eval_steps = args.eval_every or max(1, math.ceil(steps_per_epoch / 2))

    class Stop(TrainerCallback):
        """--stop-after-steps / --time-budget-min / SIGTERM or Ctrl-C: a checkpoint at the end of the
        step in progress, then stop (run again to resume): a stop loses at most one step."""

        def __init__(self):
            self.t0, self.steps, self.stopped_at, self.signalled = time.time(), 0, None, False
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self.on_signal)

        def on_signal(self, signum, frame):
            if self.signalled:  # a second signal: stop now, without the checkpoint
                raise KeyboardInterrupt
            self.signalled = True
            log(f"{signal.Signals(signum).name}: writing a checkpoint at the end of this step, then stopping (again to stop at once)")

        def on_step_end(self, a, state, control, **kw):
            self.steps += 1
            over_time = args.time_budget_min is not None and time.time() - self.t0 > args.time_budget_min * 60
            asked = self.signalled or over_time or (args.stop_after_steps and self.steps >= args.stop_after_steps)
            if asked and state.global_step < state.max_steps:
                self.stopped_at = state.global_step
                control.should_save = True
                control.should_training_stop = True
            return control

    targs = CrossEncoderTrainingArguments(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.01,
        warmup_steps=int(round(args.warmup * total_steps)),
        lr_scheduler_type="linear",
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,  # the last and the best
        load_best_model_at_end=True,
        metric_for_best_model="eval_dev_ndcg@10",
        greater_is_better=True,
        logging_steps=max(1, min(10, eval_steps)),
        seed=args.seed,
        data_seed=args.seed,
        report_to="none",
        use_cpu=args.device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=False,  # the progress bar
        # a query with two relevant documents must not meet its other positive as an in-batch negative
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    loss = MultipleNegativesRankingLoss(model, num_negatives=args.in_batch_negatives)
    stop = Stop()
    trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=train_ds, loss=loss, evaluator=evaluator,
                                  callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience), stop])
    last = get_last_checkpoint(str(work / "checkpoints")) if (work / "checkpoints").is_dir() else None
    log(f"training: {len(train_ds)} rows ({k} BM25 hard + {args.in_batch_negatives} in-batch negatives each), batch {args.batch_size}, "
        f"{total_steps} steps planned, dev every {eval_steps}, max_length {max_length}, device {args.device}"
        + (f"; resuming from {last}" if last else ""))
    t0 = time.time()
    trainer.train(resume_from_checkpoint=last)
    wall = time.time() - t0
    state = trainer.state
    # Training time summed over stops and resumes: a stopped run adds its part before it exits.
    seconds_path = work / "train_seconds.json"
    previous = json.loads(seconds_path.read_text())["seconds"] if seconds_path.exists() else 0.0
    if stop.stopped_at is not None:
        seconds_path.write_text(json.dumps({"seconds": previous + wall}))
        log(f"stopped at step {stop.stopped_at} of {total_steps}: checkpoint written; run the same command again to continue")
        sys.exit(STOPPED)
    history = [{"step": h["step"], "dev_ndcg@10": h["eval_dev_ndcg@10"]} for h in state.log_history if "eval_dev_ndcg@10" in h]
    losses = [{"step": h["step"], "loss": h["loss"]} for h in state.log_history if "loss" in h]
    best_step = max(history, key=lambda h: h["dev_ndcg@10"])["step"] if history else state.global_step
    record = {
        "rows": len(train_ds), "steps_planned": total_steps, "steps_done": state.global_step, "best_step": best_step,
        "early_stopped": state.global_step < total_steps, "eval_steps": eval_steps, "dev_start": start_dev,
        "dev_best": state.best_metric, "dev_history": history, "loss_first": losses[0]["loss"] if losses else None,
        "loss_last": losses[-1]["loss"] if losses else None, "train_seconds": round(previous + wall, 1), "max_length": max_length,
        "hyper": {k: getattr(args, k) for k in ("lr", "epochs", "batch_size", "hard_negatives", "in_batch_negatives", "warmup", "patience", "seed")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "sentence-transformers": __import__("sentence_transformers").__version__},
    }
    # the best checkpoint (load_best_model_at_end) as a plain Hugging Face folder for `crossrank convert`
    hf = model[0].model if hasattr(model[0], "model") else model.model
    tmp = work / "best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    hf.save_pretrained(tmp, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (Path(start_hf) / name).exists():
            shutil.copy(Path(start_hf) / name, tmp / name)
    cfg = json.loads((tmp / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = max_length
    (tmp / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    shutil.rmtree(best_dir, ignore_errors=True)
    tmp.replace(best_dir)
    record_path.write_text(json.dumps(record, indent=2))
    return best_dir, record


# ----------------------------------------------------------------------------- convert, evaluate, report


def run_cli(*argv):
    out = subprocess.run([str(args_cli()), *map(str, argv)], capture_output=True, text=True)
    if out.returncode != 0:
        raise fd.FinetuneError("crossrank", f"crossrank {argv[0]} failed: {out.stderr.strip()}")
    return out.stdout


def args_cli():
    if not CLI.exists():
        raise fd.FinetuneError("missing_file", f"{CLI}: not built (./build.sh cli)")
    return CLI


def card(args, layout, prepared, record, rows, heldout_name, kept_start, out_model, total_seconds):
    s = prepared["splits"]
    lines = [
        f"# {out_model.name}: fine-tuned from {Path(args.model).name} on {layout.root.name}",
        "",
        ("**Fine-tuning did not help on the held-out split: this file is the starting model, unchanged.**\n" if kept_start else ""),
        f"- Start: `{args.model}`; recipe: `models/finetune.py` (crossrank), seed {args.seed}.",
        f"- Data: `{layout.root}`: {prepared['corpus_documents']:,} documents; {len(s['train'])} train queries -> {record['rows']:,} training rows "
        f"({args.hard_negatives} BM25 hard negatives each from its top {args.neg_pool}, + {args.in_batch_negatives} in-batch); "
        f"{len(s['dev'])} dev queries ({s['dev_source']}); {len(s['heldout'])} held-out queries ({heldout_name} split).",
        f"- Training: MultipleNegativesRankingLoss, lr {args.lr}, batch {args.batch_size}, max_length {record['max_length']} "
        f"(recorded as the model's default), {record['steps_done']} of {record['steps_planned']} steps"
        + (" (early stopping)" if record["early_stopped"] else "")
        + f", best dev nDCG@10 {record['dev_best']:.4f} at step {record['best_step']} (start {record['dev_start']:.4f}); "
        f"loss {record['loss_first']:.3f} -> {record['loss_last']:.3f}; {record['train_seconds'] / 60:.1f} min of training on {args.device} "
        f"({args.threads or os.cpu_count()} threads), {total_seconds / 60:.1f} min in all.",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in record['versions'].items())}.",
        "",
        f"## Before and after: {heldout_name} split, BM25 top {args.depth} reranked (`crossrank eval`)",
        "",
        fd.report_table(rows),
        "",
    ]
    if heldout_name == "dev":
        lines.append("(No qrels/test.tsv: the dev split also chose the checkpoint, so the fine-tuned figure is optimistic.)\n")
    lines.append("Licence: the fine-tuned weights derive from the starting model and from your data; both licences apply.")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dir", help="BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/train.tsv [, qrels/dev.tsv, qrels/test.tsv]")
    p.add_argument("--model", default=str(DEFAULT_MODEL.relative_to(REPO)), help="starting model: a crossrank GGUF or a Hugging Face cross-encoder folder")
    p.add_argument("--out", help="output folder (default artifacts/finetune/<data folder name>)")
    p.add_argument("--work", help="checkpoints and caches (default OUT/work); a rerun with the same folder resumes")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-length", type=int, default=0, help="tokens per pair for training (0: the starting model's recorded length)")
    p.add_argument("--epochs", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=16, help="rows per step (each row: query, positive and its hard negatives)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.1, help="share of the steps with a linear warm-up")
    p.add_argument("--hard-negatives", type=int, default=3, help="BM25 hard negatives per row")
    p.add_argument("--in-batch-negatives", type=int, default=4, help="other rows' documents added to each row's softmax")
    p.add_argument("--neg-pool", type=int, default=30, help="hard negatives are drawn from BM25's top N minus the judged documents")
    p.add_argument("--dev-frac", type=float, default=0.1, help="share of train queries held back as dev when there is no qrels/dev.tsv")
    p.add_argument("--dev-depth", type=int, default=30, help="BM25 candidates reranked per dev query")
    p.add_argument("--depth", type=int, default=100, help="BM25 candidates reranked per held-out query in the report")
    p.add_argument("--eval-every", type=int, default=0, help="steps between dev evaluations and checkpoints (0: twice an epoch)")
    p.add_argument("--patience", type=int, default=3, help="stop after this many dev evaluations without a better nDCG@10")
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--min-relevance", type=int, default=1, help="passed to crossrank eval (TREC DL's convention is 2)")
    p.add_argument("--max-memory-mb", type=int, help="memory the BM25 index may use (default: what the system has available)")
    p.add_argument("--stop-after-steps", type=int, help="write a checkpoint and stop after this many steps (run again to continue)")
    p.add_argument("--time-budget-min", type=float, help="write a checkpoint and stop after this many minutes of training (run again to continue)")
    args = p.parse_args()

    t_start = time.time()
    try:
        layout = fd.find_layout(args.data_dir)
        if not Path(args.model).exists():
            raise fd.FinetuneError("missing_file", f"{args.model}: no such starting model (a crossrank .gguf or a Hugging Face folder)")
        out = Path(args.out or REPO / "artifacts" / "finetune" / layout.root.resolve().name)
        work = Path(args.work or out / "work")
        work.mkdir(parents=True, exist_ok=True)
        start_is_gguf = Path(args.model).is_file()
        if not start_is_gguf and not (Path(args.model) / "config.json").exists():
            raise fd.FinetuneError("missing_file", f"{args.model}/config.json: not found (a Hugging Face cross-encoder folder has config.json, model.safetensors, tokenizer.json)")
        prepared = prepare(args, layout, work)

        start_hf = work / "start"
        if start_is_gguf:
            if not (start_hf / "model.safetensors").exists():
                hf_from_gguf(args.model, start_hf)
        else:
            start_hf = Path(args.model)
        max_length = args.max_length or recorded_max_length(start_hf)
        best_dir, record = train(args, prepared, start_hf, max_length, work)

        # the starting model as crossrank runs it (a folder converted to Q8_0 like the output), and the fine-tuned one
        start_gguf = Path(args.model) if start_is_gguf else work / "start.q8_0.gguf"
        if not start_is_gguf:
            run_cli("convert", "--model", start_hf, "--dtype", "q8_0", "--out", start_gguf, "--max-length", recorded_max_length(start_hf))
        tuned_gguf = work / "finetuned.q8_0.gguf"
        run_cli("convert", "--model", best_dir, "--dtype", "q8_0", "--out", tuned_gguf, "--max-length", max_length,
                "--source", f"models/finetune.py from {Path(args.model).name} on {layout.root.name}")
        log(f"evaluating on the {prepared['splits']['heldout_name']} split ({len(prepared['splits']['heldout'])} queries, BM25 top {args.depth})")
        stdout = run_cli("eval", "--corpus", layout.corpus, "--queries", layout.queries, "--qrels", work / "heldout" / "qrels.tsv",
                         "--candidates", work / "heldout" / "candidates.tsv", "--depth", args.depth, "--min-relevance", args.min_relevance,
                         "--model", start_gguf, "--model", tuned_gguf)
        metrics = fd.parse_eval(stdout, models=[start_gguf, tuned_gguf])
        start_m, tuned_m = metrics[str(start_gguf)], metrics[str(tuned_gguf)]
        heldout_name = prepared["splits"]["heldout_name"]
        rows = [("BM25 (bm25s), first stage", metrics["first stage"]), (f"start: {Path(args.model).name}", start_m),
                ("fine-tuned", tuned_m)]
        kept_start = not fd.helped(start_m, tuned_m)
        out_model = out / "model.q8_0.gguf"
        shutil.copy(start_gguf if kept_start else tuned_gguf, out_model)
        verdict = fd.verdict(start_m, tuned_m, heldout_name)
        total = time.time() - t_start
        table = fd.report_table(rows)
        (out / "report.md").write_text(f"{table}\n\n{verdict}\n")
        (out / "report.json").write_text(json.dumps({"heldout": heldout_name, "queries": len(prepared["splits"]["heldout"]),
                                                     "first_stage": metrics["first stage"], "start": start_m, "finetuned": tuned_m,
                                                     "kept_start": kept_start, "training": record, "wall_seconds_this_run": round(total, 1)}, indent=2))
        (out / "MODEL_CARD.md").write_text(card(args, layout, prepared, record, rows, heldout_name, kept_start, out_model, total))
        print(f"\n{table}\n\n{verdict}\n\n{out_model} ({out / 'MODEL_CARD.md'}, {out / 'report.md'})")
    except fd.FinetuneError as e:
        print(f"finetune: error {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

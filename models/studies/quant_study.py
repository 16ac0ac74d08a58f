#!/usr/bin/env python3
"""Which tensors can be 4-bit without changing the trained model's ranking? (issue 3)

Simulates GGUF block quantisation in PyTorch (quantise, dequantise, run in f32) on chosen groups
of the trained model's weights and compares each variant's ranking with the f32 model on SciFact
test queries x their BM25 top-N candidates: per query Spearman, same top 3, and max |Δlogit|.
Rounding is candle 0.11's own, bit for bit (models/studies/qat.py `round_like_candle`), or a
per-block scale search that writes the same Q4_0/Q8_0 format with a smaller squared error
("search": 3% less for Q4_0, 12% less for Q8_0, and no better ranking, so `crossrank convert`
keeps candle's rounding). Needs torch; not part of CI.

    python3 models/studies/quant_study.py --queries 300 --depth 20
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
from compare_runs import spearman  # noqa: E402
from qat import round_like_candle  # noqa: E402  (candle's own rounding, bit for bit)
from common import doc_text, read_candidates, read_jsonl  # noqa: E402

BLOCK = 32


def f16(x):
    return x.astype(np.float16).astype(np.float32)


def search_scales(b, divisors, reference, qmin, qmax):
    """Per block, the f16 scale (reference / divisor, or its least-squares refit) with the
    smallest squared error once the block is rounded to integers in [qmin, qmax]."""
    best_err = np.full((b.shape[0], 1), np.inf)
    best_d = np.zeros_like(reference)
    best_q = np.zeros_like(b)
    for divisor in divisors:
        d = f16(reference / divisor)
        inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0)
        q = np.clip(np.round(b * inv), qmin, qmax)
        qq = (q * q).sum(axis=1, keepdims=True)
        d_ls = f16(np.where(qq > 0, (b * q).sum(axis=1, keepdims=True) / np.where(qq > 0, qq, 1), 0))
        for dd in (d, d_ls):
            err = ((b - q * dd) ** 2).sum(axis=1, keepdims=True)
            take = err < best_err
            best_err = np.where(take, err, best_err)
            best_d = np.where(take, dd, best_d)
            best_q = np.where(take, q, best_q)
    return best_q * best_d


def q8_0_search(w):
    b = w.reshape(-1, BLOCK)
    amax = np.abs(b).max(axis=1, keepdims=True)
    return search_scales(b, np.linspace(127.0, 110.0, 18), amax, -128, 127).reshape(w.shape)


def q4_0_search(w):
    b = w.reshape(-1, BLOCK)
    signed_max = b[np.arange(b.shape[0]), np.abs(b).argmax(axis=1)][:, None]
    # The extreme value may map to -8 (candle's choice) or to +7; try scales around both.
    divisors = np.concatenate([np.linspace(-8.0, -6.0, 17), np.linspace(7.0, 5.5, 13)])
    return search_scales(b, divisors, signed_max, -8, 7).reshape(w.shape)


def group_of(name):
    if "word_embeddings" in name:
        return "emb"
    if "pooler" in name:
        return "pooler"
    if "attention.self" in name:
        return "qkv"
    if "attention.output.dense" in name:
        return "attn_out"
    if "intermediate.dense" in name:
        return "ffn_in"
    if "output.dense" in name:
        return "ffn_out"
    return None


def layer_of(name):
    parts = name.split(".")
    return int(parts[parts.index("layer") + 1]) if "layer" in parts else None


def quantisable(name):
    return name.endswith(".weight") and group_of(name) is not None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/hf/crossrank-scifact-minilm-l4")
    p.add_argument("--data-dir", default="../shared/data/scifact")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--variants", default="all", help="';'-separated names from the table, or 'none'")
    p.add_argument("--compare", action="append", default=[],
                   help="another HF directory (e.g. from models/qat.py) to compare with --model as it is")
    args = p.parse_args()
    torch.set_num_threads(2)

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    original = {n: t.detach().clone() for n, t in model.state_dict().items()}
    data = Path(args.data_dir)
    corpus = {d["_id"]: doc_text(d) for d in read_jsonl(data / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    candidates = read_candidates(data / "bm25_top100_test.tsv")
    qids = sorted(candidates, key=int)[: args.queries]
    pairs, spans = [], []
    for qid in qids:
        docs = [d for d, _, _ in candidates[qid][: args.depth]]
        spans.append((len(pairs), len(pairs) + len(docs)))
        pairs += [(queries[qid], corpus[d]) for d in docs]
    # Sort by length so batches carry little padding; scores are put back in pair order.
    enc = [tok(q, d, truncation=True, max_length=args.max_length) for q, d in pairs]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]["input_ids"]))

    def score():
        out = np.zeros(len(enc), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                batch = tok.pad([enc[i] for i in idx], return_tensors="pt")
                out[idx] = model(**batch).logits[:, 0].numpy()
        return out

    def apply(plan):
        state = {}
        for name, t in original.items():
            kind = plan(name) if quantisable(name) else None
            w = t.numpy().astype(np.float32)
            as_is = plan(name)
            if isinstance(as_is, tuple):  # another model's weights, every tensor as stored
                state[name] = as_is[1][name].float()
                continue
            if kind in ("q8", "q4"):
                w = round_like_candle(torch.from_numpy(w), f"{kind}_0").numpy()
            elif kind == "q8s":
                w = q8_0_search(w)
            elif kind == "q4s":
                w = q4_0_search(w)
            state[name] = torch.from_numpy(np.ascontiguousarray(w))
        model.load_state_dict(state)

    t0 = time.time()
    apply(lambda n: None)
    ref = score()
    print(f"f32 reference: {len(enc)} pairs in {time.time() - t0:.0f}s", flush=True)

    def mix(base, keep8, high="q8"):
        return lambda n: high if keep8(n) else base

    variants = {
        "q8_0": lambda n: "q8",
        "q8_0 search": lambda n: "q8s",
        "q4_0": lambda n: "q4",
        "q4_0 search": lambda n: "q4s",
        "q4s, emb q8": mix("q4s", lambda n: group_of(n) == "emb"),
        "q4s, qkv q8": mix("q4s", lambda n: group_of(n) == "qkv"),
        "q4s, attn q8": mix("q4s", lambda n: group_of(n) in ("qkv", "attn_out")),
        "q4s, ffn q8": mix("q4s", lambda n: group_of(n) in ("ffn_in", "ffn_out")),
        "q4s, ffn_out q8": mix("q4s", lambda n: group_of(n) == "ffn_out"),
        "q4s, pooler q8": mix("q4s", lambda n: group_of(n) == "pooler"),
        "q4s, layer0 q8": mix("q4s", lambda n: layer_of(n) == 0),
        "q4s, layer3+pooler q8": mix("q4s", lambda n: layer_of(n) == 3 or group_of(n) == "pooler"),
        "q4s, encoder q8": mix("q4s", lambda n: group_of(n) != "emb"),
        "emb q4_0, rest f32": lambda n: "q4" if group_of(n) == "emb" else None,
        "emb q4_0 search, rest f32": lambda n: "q4s" if group_of(n) == "emb" else None,
        "emb q8_0, rest f32": lambda n: "q8" if group_of(n) == "emb" else None,
        "encoder q4_0 search, emb f32": lambda n: None if group_of(n) == "emb" else "q4s",
    }
    if args.variants == "all":
        chosen = variants
    elif args.variants == "none":
        chosen = {}
    else:
        chosen = {k: variants[k] for k in args.variants.split(";")}
    for other in args.compare:
        weights = AutoModelForSequenceClassification.from_pretrained(other).state_dict()
        chosen[other] = lambda n, weights=weights: ("as_is", weights)
    print("| variant | min ρ | mean ρ | ρ ≥ 0.99 | same top 3 | max abs Δ | mean abs Δ |")
    print("|---|---|---|---|---|---|---|")
    for label, plan in chosen.items():
        apply(plan)
        got = score()
        rhos = [spearman(list(got[a:b]), list(ref[a:b])) for a, b in spans]
        top3 = [list(np.argsort(-got[a:b], kind="stable")[:3]) == list(np.argsort(-ref[a:b], kind="stable")[:3]) for a, b in spans]
        d = np.abs(got - ref)
        print(f"| {label} | {min(rhos):.4f} | {np.mean(rhos):.4f} | {np.mean(np.array(rhos) >= 0.99):.1%} "
              f"| {np.mean(top3):.1%} | {d.max():.3f} | {d.mean():.4f} |", flush=True)


if __name__ == "__main__":
    main()

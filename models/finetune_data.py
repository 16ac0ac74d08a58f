"""The data side of `models/finetune.py`, without torch: reading and checking a BEIR-layout folder,
the dev split, BM25 (PyPI `bm25s`) over the user's corpus, hard negatives, the candidate and qrels
files `crossrank eval` reads, and the before/after report. CI tests it with the small test venv
(tests/finetune/); the training itself needs torch and lives in models/finetune.py.

Every refusal is a `FinetuneError` whose `code` names the kind of problem (missing_file,
bad_format, unknown_id, too_few_queries, corpus_too_large) and whose message says what to do.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

# Fewer labelled queries than these and the procedure measures noise, not the model: on a dev split
# of n queries one query moves dev nDCG@10 by up to 1/n, so with fewer than 10 a single query (0.1)
# outweighs the 5–15% that fine-tuning is expected to bring, and early stopping would follow it.
# Training needs at least two listwise batches of distinct queries (2 x 8): 20 is the floor for
# the command to run at all; 500–1,000 labelled queries are what makes a real difference.
MIN_TRAIN_QUERIES = 20
MIN_DEV_QUERIES = 10

# Building the BM25 index held 5.3x the corpus file's size at its peak on SciFact (8.0 MB of
# corpus.jsonl -> 42 MB over the interpreter's own; bm25s 0.3.16): the tokens of every document
# while the sparse score matrix is built. The corpus text is never held whole (two streaming
# passes; only the documents that training or evaluation use are kept), so this is the bound.
INDEX_BYTES_PER_CORPUS_BYTE = 6


class FinetuneError(Exception):
    """A refusal with a stable `code` (missing_file, bad_format, unknown_id, too_few_queries,
    corpus_too_large) and an actionable message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


@dataclass
class Layout:
    """The files of a BEIR-layout folder that fine-tuning reads."""

    root: Path
    corpus: Path
    queries: Path
    train: Path
    dev: Path | None
    test: Path | None


def find_layout(data_dir) -> Layout:
    """The folder's files; a missing required one is named, with the layout expected."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FinetuneError("missing_file", f"{root}: no such folder (expected a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/train.tsv)")
    required = [root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / "train.tsv"]
    missing = [str(p) for p in required if not p.is_file()]
    if missing:
        raise FinetuneError(
            "missing_file",
            f"{', '.join(missing)}: not found (a BEIR-layout folder holds corpus.jsonl, queries.jsonl and qrels/train.tsv; "
            "qrels/dev.tsv and qrels/test.tsv are optional)",
        )
    optional = lambda name: (root / "qrels" / name) if (root / "qrels" / name).is_file() else None  # noqa: E731
    return Layout(root, *required, optional("dev.tsv"), optional("test.tsv"))


# ----------------------------------------------------------------------------- reading


def _json_lines(path):
    """(line number, object) for each non-blank line; a line that is not a JSON object is named."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise FinetuneError("bad_format", f"{path}:{number}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("_id"), (str, int)):
                raise FinetuneError("bad_format", f"{path}:{number}: expected an object with an \"_id\"")
            yield number, row


def doc_text(row) -> str:
    """The text a document is scored by: title + " " + text, as `crossrank eval` builds it."""
    return f"{row.get('title') or ''} {row.get('text') or ''}".strip()


def read_queries(path) -> dict[str, str]:
    """query id -> text. Queries are few (one line each) and are all kept."""
    return {str(row["_id"]): str(row.get("text") or "") for _, row in _json_lines(path)}


def read_qrels(path) -> dict[str, dict[str, int]]:
    """query id -> {doc id: grade} from a qrels TSV with its header (query-id, corpus-id, score)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        if not header.strip():
            raise FinetuneError("bad_format", f"{path}: empty (expected a header line `query-id<TAB>corpus-id<TAB>score` and one judgement a line)")
        for number, line in enumerate(f, 2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 3:
                raise FinetuneError("bad_format", f"{path}:{number}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}")
            query_id, doc_id, grade = fields
            try:
                qrels.setdefault(query_id, {})[doc_id] = int(grade)
            except ValueError:
                raise FinetuneError("bad_format", f"{path}:{number}: the score must be an integer, got `{grade}`") from None
    return qrels


def labelled(qrels) -> list[str]:
    """The queries with at least one relevant document (grade > 0), sorted."""
    return sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))


def check_ids(qrels, path, query_ids, doc_ids):
    """Every query and document a qrels file names must exist: one unknown id means the files come
    from different sets (BEIR's loader stops on them too)."""
    unknown_q = sorted(q for q in qrels if q not in query_ids)
    if unknown_q:
        raise FinetuneError("unknown_id", f"{path}: {len(unknown_q)} quer{'y' if len(unknown_q) == 1 else 'ies'} not in queries.jsonl "
                                          f"(first: `{unknown_q[0]}`): are the files from the same data set?")
    unknown_d = sorted({d for docs in qrels.values() for d in docs if d not in doc_ids})
    if unknown_d:
        raise FinetuneError("unknown_id", f"{path}: {len(unknown_d)} document{'' if len(unknown_d) == 1 else 's'} not in corpus.jsonl "
                                          f"(first: `{unknown_d[0]}`): are the files from the same data set?")


def memory_available() -> int:
    """Bytes the kernel says a new allocation can get (MemAvailable), or the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_corpus_size(path, limit_bytes=None):
    """Refuses a corpus whose BM25 index would not fit: INDEX_BYTES_PER_CORPUS_BYTE x its size
    against ``limit_bytes`` (default: the memory available now)."""
    size = Path(path).stat().st_size
    limit = memory_available() if limit_bytes is None else limit_bytes
    need = size * INDEX_BYTES_PER_CORPUS_BYTE
    if need > limit:
        raise FinetuneError(
            "corpus_too_large",
            f"{path}: {size / 2**20:.2f} MiB; its BM25 index needs about {INDEX_BYTES_PER_CORPUS_BYTE}x that "
            f"({need / 2**20:.2f} MiB) and {limit / 2**20:.2f} MiB are available: split the corpus, "
            "or run on a machine with more memory (--max-memory-mb raises the limit if you know better)",
        )


# ----------------------------------------------------------------------------- BM25 (bm25s)


class Bm25:
    """BM25 over corpus.jsonl with PyPI's bm25s: Lucene's variant, k1 0.9, b 0.4 (Anserini's BEIR
    defaults; as in Lucene 8+, without Okapi's constant (k1 + 1) factor), lowercase ``\\w+`` tokens
    over title + " " + text, no stop words, no stemming. On
    SciFact test this gives nDCG@10 0.662 (the provided bm25_top100_test.tsv: 0.660).

    The corpus is streamed: documents are tokenised ``chunk`` at a time, only their token ids and
    ids are kept, never their text."""

    def __init__(self, corpus_path, chunk=4096, progress=None):
        import bm25s

        self._bm25s = bm25s
        self.tokenizer = bm25s.tokenization.Tokenizer(lower=True, splitter=r"\w+", stopwords=None)
        self.doc_ids: list[str] = []
        token_ids: list[list[int]] = []
        texts: list[str] = []
        seen: set[str] = set()

        def flush():
            token_ids.extend(self.tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False))
            texts.clear()
            if progress:
                progress(len(self.doc_ids))

        for number, row in _json_lines(corpus_path):
            doc_id = str(row["_id"])
            if doc_id in seen:
                raise FinetuneError("bad_format", f"{corpus_path}:{number}: document id `{doc_id}` appears twice")
            seen.add(doc_id)
            self.doc_ids.append(doc_id)
            texts.append(doc_text(row))
            if len(texts) >= chunk:
                flush()
        flush()
        if not self.doc_ids:
            raise FinetuneError("bad_format", f"{corpus_path}: no documents")
        self.doc_id_set = seen
        self.retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
        self.retriever.index(bm25s.tokenization.Tokenized(ids=token_ids, vocab=self.tokenizer.get_vocab_dict()), show_progress=False)

    def top(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        """For each text, its k best documents with their BM25 scores, best first. Documents with a
        score of 0 (no shared word) are left out."""
        k = min(k, len(self.doc_ids))
        if not texts:
            return []
        ids = self.tokenizer.tokenize(texts, update_vocab=False, return_as="ids", show_progress=False)
        tokenized = self._bm25s.tokenization.Tokenized(ids=ids, vocab=self.tokenizer.get_vocab_dict())
        docs, scores = self.retriever.retrieve(tokenized, k=k, show_progress=False, n_threads=1)
        return [[(self.doc_ids[int(d)], float(s)) for d, s in zip(row_d, row_s) if s > 0] for row_d, row_s in zip(docs, scores)]


def read_texts(corpus_path, wanted) -> dict[str, str]:
    """The texts of the documents in ``wanted`` only (a second streaming pass)."""
    return {str(row["_id"]): doc_text(row) for _, row in _json_lines(corpus_path) if str(row["_id"]) in wanted}


# ----------------------------------------------------------------------------- splits


@dataclass
class Splits:
    """Query ids per role. ``heldout_name`` says where the before/after report comes from."""

    train: list[str]
    dev: list[str]
    heldout: list[str]
    dev_source: str  # "qrels/dev.tsv" or "held back from qrels/train.tsv (seed S, n of m)"
    heldout_name: str  # "test" or "dev"
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # every judgement of every split


def split_queries(train_qrels, dev_qrels=None, test_qrels=None, seed=42, dev_frac=0.1) -> Splits:
    """Train / dev / held-out queries. Without dev qrels a seeded ``dev_frac`` of the labelled train
    queries (at least MIN_DEV_QUERIES) is held back; without test qrels the report uses dev (and
    says that dev also chose the checkpoint). A query judged in two splits stays out of training."""
    train_labelled = labelled(train_qrels)
    others = set(dev_qrels or {}) | set(test_qrels or {})
    train_labelled = [q for q in train_labelled if q not in others]
    if dev_qrels is not None:
        dev = labelled(dev_qrels)
        source = "qrels/dev.tsv"
        train = train_labelled
    else:
        shuffled = train_labelled[:]
        random.Random(seed).shuffle(shuffled)
        n_dev = max(MIN_DEV_QUERIES, round(dev_frac * len(shuffled)))
        dev, train = sorted(shuffled[:n_dev]), sorted(shuffled[n_dev:])
        source = f"held back from qrels/train.tsv (seed {seed}, {len(dev)} of {len(shuffled)} labelled queries)"
    need_total = MIN_TRAIN_QUERIES + (0 if dev_qrels is not None else MIN_DEV_QUERIES)
    if len(train) < MIN_TRAIN_QUERIES:
        have = len(train_labelled)
        raise FinetuneError(
            "too_few_queries",
            f"qrels/train.tsv: {have} labelled quer{'y' if have == 1 else 'ies'} (a relevant document, score > 0); fine-tuning needs at least "
            f"{need_total}: {MIN_TRAIN_QUERIES} to train on"
            + ("" if dev_qrels is not None else f" and {MIN_DEV_QUERIES} held back as the dev split that chooses the checkpoint")
            + " (500-1,000 are what typically make a difference)",
        )
    if len(dev) < MIN_DEV_QUERIES:
        raise FinetuneError(
            "too_few_queries",
            f"qrels/dev.tsv: {len(dev)} labelled quer{'y' if len(dev) == 1 else 'ies'}; the dev split needs at least {MIN_DEV_QUERIES} "
            "(with fewer, one query moves dev nDCG@10 by more than fine-tuning gains); add queries or remove dev.tsv to hold some back from train",
        )
    heldout, name = (labelled(test_qrels), "test") if test_qrels is not None else (dev, "dev")
    if not heldout:
        raise FinetuneError("too_few_queries", "qrels/test.tsv: no labelled query (a relevant document, score > 0): nothing to report on")
    qrels = {}
    for part in (train_qrels, dev_qrels or {}, test_qrels or {}):
        for q, docs in part.items():
            qrels.setdefault(q, {}).update(docs)
    return Splits(train, dev, heldout, source, name, qrels)


# ----------------------------------------------------------------------------- training rows


def listwise_rows(train_qids, qrels, bm25_top, hard_negatives, neg_pool, seed):
    """(query id, positive doc id, [hard negative doc ids]) for each (train query, relevant doc):
    ``hard_negatives`` drawn (seeded) from the query's BM25 top ``neg_pool`` minus every document
    judged for it (a judged-irrelevant one is a negative we are sure of, but a judged one of grade
    > 0 is never one). Rows of a query with fewer candidates than that are left out and counted."""
    rng = random.Random(seed)
    rows, skipped = [], 0
    for q in train_qids:
        judged = qrels[q]
        pool = [d for d, _ in bm25_top[q][:neg_pool] if d not in judged or judged[d] <= 0]
        for d, grade in sorted(judged.items()):
            if grade <= 0:
                continue
            if len(pool) < hard_negatives:
                skipped += 1
                continue
            rows.append((q, d, rng.sample(pool, hard_negatives)))
    return rows, skipped


# ----------------------------------------------------------------------------- files for crossrank eval


def write_lines(path, lines):
    """`lines` (each without its newline) into `path`, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def write_qrels(path, qids, qrels):
    write_lines(path, ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q in qids for d, g in sorted(qrels[q].items())])


def write_candidates(path, qids, top):
    """The first stage as `crossrank eval --candidates` reads it: query-id, corpus-id, rank, score."""
    rows = (f"{q}\t{d}\t{rank}\t{score:.6f}" for q in qids for rank, (d, score) in enumerate(top[q], 1))
    write_lines(path, ["query-id\tcorpus-id\trank\tscore", *rows])


def write_queries(path, qids, queries):
    write_lines(path, (json.dumps({"_id": q, "text": queries[q]}) for q in qids))


# ----------------------------------------------------------------------------- report

METRICS = (("ndcg_at_10", "nDCG@10"), ("mrr_at_10", "MRR@10"), ("precision_at_1", "P@1"))


def parse_eval(stdout: str, first_stage_prefix="first stage", models=()) -> dict[str, dict]:
    """The plain-rerank rows of `crossrank eval`'s JSON lines: {"first stage": metrics, model path:
    metrics}; fusion rows (+RRF, +weighted) are left out."""
    rows = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        system = row["system"]
        if system.startswith(first_stage_prefix):
            rows["first stage"] = row["metrics"]
            continue
        for model in models:
            if system.startswith(f"crossrank {model} (top ") and system.endswith(" reranked)"):
                rows[str(model)] = row["metrics"]
    return rows


def helped(start, tuned) -> bool:
    """Fine-tuning helped when it raised nDCG@10 on the held-out split (a tie keeps the start)."""
    return tuned["ndcg_at_10"] > start["ndcg_at_10"]


def report_table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| system | " + " | ".join(name for _, name in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for label, m in rows:
        lines.append(f"| {label} | " + " | ".join(f"{m[key]:.4f}" for key, _ in METRICS) + " |")
    return "\n".join(lines)


def verdict(start, tuned, heldout_name) -> str:
    d = tuned["ndcg_at_10"] - start["ndcg_at_10"]
    if d > 0:
        return f"Fine-tuning helped: nDCG@10 on the {heldout_name} split {start['ndcg_at_10']:.4f} -> {tuned['ndcg_at_10']:.4f} ({d:+.4f}); the output is the fine-tuned model."
    return (f"Fine-tuning did not help: nDCG@10 on the {heldout_name} split {start['ndcg_at_10']:.4f} -> {tuned['ndcg_at_10']:.4f} ({d:+.4f}); "
            "the output is the starting model, unchanged.")

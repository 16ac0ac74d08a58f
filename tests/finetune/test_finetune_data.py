"""The torch-free data side of `./build.sh finetune` (models/finetune_data.py): layout and input
checks with their named errors, the seeded dev split, BM25 (bm25s) against the formula, hard
negatives, and the files `crossrank eval` reads. Runs in CI (`./build.sh test`) with the test venv
(tests/requirements.txt); the end-to-end run with torch is tests/finetune/e2e_finetune.py
(`./build.sh finetune-test`, not in CI).

    .venv/bin/python -m unittest discover tests/finetune
"""
import json
import math
import shutil
import subprocess
import sys
import tempfile
import unittest
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models"))
import finetune_data as fd  # noqa: E402

TINY = REPO / "tests" / "data" / "beir-tiny"
CLI = REPO / "target" / "release" / "crossrank"
TINY_MODEL = REPO / "artifacts" / "models" / "tiny.f32.gguf"


def copy_tiny(tmp):
    out = Path(tmp) / "data"
    shutil.copytree(TINY, out)
    return out


class Layout(unittest.TestCase):
    def test_tiny_folder(self):
        layout = fd.find_layout(TINY)
        self.assertEqual(layout.corpus, TINY / "corpus.jsonl")
        self.assertIsNone(layout.dev)
        self.assertEqual(layout.test, TINY / "qrels" / "test.tsv")

    def test_missing_folder(self):
        with self.assertRaises(fd.FinetuneError) as e:
            fd.find_layout("/nonexistent/beir")
        self.assertEqual(e.exception.code, "missing_file")
        self.assertEqual(e.exception.message, "/nonexistent/beir: no such folder (expected a BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/train.tsv)")

    def test_missing_files_are_named(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = copy_tiny(tmp)
            (data / "corpus.jsonl").unlink()
            (data / "qrels" / "train.tsv").unlink()
            with self.assertRaises(fd.FinetuneError) as e:
                fd.find_layout(data)
            self.assertEqual(e.exception.code, "missing_file")
            self.assertTrue(e.exception.message.startswith(f"{data}/corpus.jsonl, {data}/qrels/train.tsv: not found"), e.exception.message)


class Reading(unittest.TestCase):
    def write(self, tmp, text):
        path = Path(tmp) / "qrels.tsv"
        path.write_text(text)
        return path

    def test_qrels(self):
        qrels = fd.read_qrels(TINY / "qrels" / "train.tsv")
        lines = (TINY / "qrels" / "train.tsv").read_text().splitlines()[1:]
        self.assertEqual(sum(len(d) for d in qrels.values()), len(lines))
        q, d, g = lines[0].split("\t")
        self.assertEqual(qrels[q][d], int(g))

    def test_qrels_bad_lines(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = self.write(tmp, "query-id\tcorpus-id\tscore\nq1\td1\n")
            with self.assertRaises(fd.FinetuneError) as e:
                fd.read_qrels(path)
            self.assertEqual((e.exception.code, e.exception.message),
                             ("bad_format", f"{path}:2: expected 3 tab-separated fields (query-id, corpus-id, score), got 2"))
            path = self.write(tmp, "query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
            with self.assertRaises(fd.FinetuneError) as e:
                fd.read_qrels(path)
            self.assertEqual(e.exception.message, f"{path}:2: the score must be an integer, got `yes`")

    def test_unknown_ids(self):
        queries = fd.read_queries(TINY / "queries.jsonl")
        docs = {json.loads(l)["_id"] for l in (TINY / "corpus.jsonl").read_text().splitlines()}
        qrels = fd.read_qrels(TINY / "qrels" / "train.tsv")
        fd.check_ids(qrels, "train.tsv", queries, docs)  # the tiny folder is consistent
        with self.assertRaises(fd.FinetuneError) as e:
            fd.check_ids({**qrels, "zz": {"Geology-0": 1}, "zy": {"Geology-0": 1}}, "train.tsv", queries, docs)
        self.assertEqual((e.exception.code, e.exception.message),
                         ("unknown_id", "train.tsv: 2 queries not in queries.jsonl (first: `zy`): are the files from the same data set?"))
        with self.assertRaises(fd.FinetuneError) as e:
            fd.check_ids({"q01": {"no-such-doc": 1}}, "train.tsv", queries, docs)
        self.assertEqual(e.exception.message, "train.tsv: 1 document not in corpus.jsonl (first: `no-such-doc`): are the files from the same data set?")

    def test_duplicate_document_id(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = copy_tiny(tmp)
            first = (data / "corpus.jsonl").read_text().splitlines()[0]
            with open(data / "corpus.jsonl", "a") as f:
                f.write(first + "\n")
            with self.assertRaises(fd.FinetuneError) as e:
                fd.Bm25(data / "corpus.jsonl")
            self.assertEqual((e.exception.code, e.exception.message),
                             ("bad_format", f"{data}/corpus.jsonl:49: document id `Amazon_rainforest-0` appears twice"))

    def test_corpus_too_large(self):
        size = (TINY / "corpus.jsonl").stat().st_size
        fd.check_corpus_size(TINY / "corpus.jsonl", limit_bytes=size * fd.INDEX_BYTES_PER_CORPUS_BYTE)
        with self.assertRaises(fd.FinetuneError) as e:
            fd.check_corpus_size(TINY / "corpus.jsonl", limit_bytes=size)
        self.assertEqual(e.exception.code, "corpus_too_large")
        self.assertIn(f"its BM25 index needs about {fd.INDEX_BYTES_PER_CORPUS_BYTE}x that", e.exception.message)

    def test_read_texts_keeps_only_wanted(self):
        texts = fd.read_texts(TINY / "corpus.jsonl", {"Geology-0", "Black_Death-3"})
        self.assertEqual(sorted(texts), ["Black_Death-3", "Geology-0"])
        self.assertTrue(texts["Geology-0"].startswith("Geology "))


class Split(unittest.TestCase):
    def qrels(self, n):
        return {f"q{i}": {f"d{i}": 1} for i in range(n)}

    def test_seeded_dev_split(self):
        train = self.qrels(200)
        a = fd.split_queries(train, seed=7)
        b = fd.split_queries(train, seed=7)
        c = fd.split_queries(train, seed=8)
        self.assertEqual((a.train, a.dev), (b.train, b.dev))
        self.assertNotEqual(a.dev, c.dev)
        self.assertEqual(len(a.dev), 20)  # 10% of 200
        self.assertFalse(set(a.dev) & set(a.train))
        self.assertEqual(sorted(a.dev + a.train), sorted(train))
        self.assertEqual((a.heldout, a.heldout_name), (a.dev, "dev"))
        self.assertEqual(len(fd.split_queries(self.qrels(40)).dev), fd.MIN_DEV_QUERIES)

    def test_test_split_is_held_out_and_never_trained_on(self):
        train = self.qrels(40)
        test = {"q0": {"d0": 1}, "x": {"d9": 1}}
        s = fd.split_queries(train, test_qrels=test)
        self.assertEqual((s.heldout, s.heldout_name), (["q0", "x"], "test"))
        self.assertNotIn("q0", s.train + s.dev)

    def test_unlabelled_queries_are_not_counted(self):
        train = {**self.qrels(29), "neg": {"d1": 0}}
        with self.assertRaises(fd.FinetuneError) as e:
            fd.split_queries(train)
        self.assertEqual((e.exception.code, e.exception.message), (
            "too_few_queries",
            "qrels/train.tsv: 29 labelled queries (a relevant document, score > 0); fine-tuning needs at least 30: 20 to train on "
            "and 10 held back as the dev split that chooses the checkpoint (500-1,000 are what typically make a difference)"))
        fd.split_queries(self.qrels(30))

    def test_given_dev_split(self):
        dev = {f"v{i}": {"d": 1} for i in range(9)}
        with self.assertRaises(fd.FinetuneError) as e:
            fd.split_queries(self.qrels(20), dev_qrels=dev)
        self.assertEqual(e.exception.message, "qrels/dev.tsv: 9 labelled queries; the dev split needs at least 10 (with fewer, one query moves "
                                              "dev nDCG@10 by more than fine-tuning gains); add queries or remove dev.tsv to hold some back from train")
        dev["v9"] = {"d": 1}
        s = fd.split_queries(self.qrels(20), dev_qrels=dev)
        self.assertEqual((len(s.train), len(s.dev), s.dev_source), (20, 10, "qrels/dev.tsv"))


class Bm25(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.index = fd.Bm25(TINY / "corpus.jsonl", chunk=7)  # several chunks: streaming must not change the index
        cls.texts = fd.read_texts(TINY / "corpus.jsonl", set(cls.index.doc_ids))
        cls.queries = fd.read_queries(TINY / "queries.jsonl")

    def reference(self, query):
        """Lucene's BM25 written out (k1 0.9, b 0.4, lowercase \\w+ tokens), independent of bm25s. As in
        Lucene 8+, the term frequency part has no (k1 + 1) factor (a constant: the ranking is Okapi's)."""
        import re
        tokens = {d: re.findall(r"\w+", t.lower()) for d, t in self.texts.items()}
        n, avgdl = len(tokens), sum(map(len, tokens.values())) / len(tokens)
        df = Counter(w for toks in tokens.values() for w in set(toks))
        scores = {}
        for d, toks in tokens.items():
            tf, s = Counter(toks), 0.0
            for w in re.findall(r"\w+", query.lower()):  # a repeated query word counts again, as in Lucene
                if tf[w]:
                    idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                    s += idf * tf[w] / (tf[w] + 0.9 * (0.6 + 0.4 * len(toks) / avgdl))
            scores[d] = s
        return scores

    def test_scores_follow_the_formula(self):
        qids = sorted(self.queries)[:12]
        tops = self.index.top([self.queries[q] for q in qids], 10)
        for q, top in zip(qids, tops):
            ref = self.reference(self.queries[q])
            self.assertEqual(len(top), min(10, sum(s > 0 for s in ref.values())))
            for d, s in top:
                self.assertAlmostEqual(s, ref[d], places=4, msg=(q, d))
            self.assertEqual([s for _, s in top], sorted((s for _, s in top), reverse=True))
            best = max(ref.values())
            self.assertAlmostEqual(top[0][1], best, places=4)

    def test_hard_negatives(self):
        qrels = fd.read_qrels(TINY / "qrels" / "train.tsv")
        qids = sorted(qrels)
        top = dict(zip(qids, self.index.top([self.queries[q] for q in qids], 30)))
        rows, skipped = fd.listwise_rows(qids, qrels, top, hard_negatives=3, neg_pool=10, seed=1)
        self.assertEqual(len(rows) + skipped, sum(len(d) for d in qrels.values()))
        for q, pos, negs in rows:
            self.assertEqual(qrels[q][pos], 1)
            self.assertEqual(len(set(negs)), 3)
            pool = [d for d, _ in top[q][:10]]
            self.assertTrue(all(n in pool and n not in qrels[q] for n in negs), (q, negs))
        self.assertEqual(rows, fd.listwise_rows(qids, qrels, top, 3, 10, seed=1)[0])


@unittest.skipUnless(CLI.exists() and TINY_MODEL.exists(), "needs target/release/crossrank and artifacts/models/tiny.f32.gguf (./build.sh models)")
class EvalFiles(unittest.TestCase):
    """The qrels, queries and candidate files written here are what `crossrank eval` reads, and
    parse_eval reads its output back."""

    def test_crossrank_eval_reads_them(self):
        index = fd.Bm25(TINY / "corpus.jsonl")
        queries = fd.read_queries(TINY / "queries.jsonl")
        qrels = fd.read_qrels(TINY / "qrels" / "test.tsv")
        qids = sorted(qrels)
        top = dict(zip(qids, index.top([queries[q] for q in qids], 20)))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            fd.write_qrels(tmp / "qrels.tsv", qids, qrels)
            fd.write_candidates(tmp / "candidates.tsv", qids, top)
            fd.write_queries(tmp / "queries.jsonl", qids, queries)
            out = subprocess.run([str(CLI), "eval", "--corpus", str(TINY / "corpus.jsonl"), "--queries", str(tmp / "queries.jsonl"),
                                  "--qrels", str(tmp / "qrels.tsv"), "--candidates", str(tmp / "candidates.tsv"), "--model", str(TINY_MODEL)],
                                 capture_output=True, text=True, check=True).stdout
        rows = fd.parse_eval(out, models=[TINY_MODEL])
        self.assertEqual(sorted(rows), sorted(["first stage", str(TINY_MODEL)]))
        # The first stage's P@1 is the share of queries whose BM25 top document is the judged one.
        p1 = sum(qrels[q].get(top[q][0][0], 0) > 0 for q in qids) / len(qids)
        self.assertAlmostEqual(rows["first stage"]["precision_at_1"], p1, places=6)
        self.assertEqual(rows[str(TINY_MODEL)]["queries"], len(qids))


class CommandRefusals(unittest.TestCase):
    """models/finetune.py checks its input before it imports torch: its refusals run here too."""

    def finetune(self, data, *args):
        return subprocess.run([sys.executable, str(REPO / "models" / "finetune.py"), str(data), *args], capture_output=True, text=True, cwd=REPO)

    def test_missing_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = copy_tiny(tmp)
            (data / "queries.jsonl").unlink()
            run = self.finetune(data, "--out", str(Path(tmp) / "out"))
            self.assertEqual(run.returncode, 2)
            self.assertEqual(run.stderr.strip(), f"finetune: error [missing_file] {data}/queries.jsonl: not found (a BEIR-layout folder holds "
                                                 "corpus.jsonl, queries.jsonl and qrels/train.tsv; qrels/dev.tsv and qrels/test.tsv are optional)")

    def test_too_few_queries(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = copy_tiny(tmp)
            lines = (data / "qrels" / "train.tsv").read_text().splitlines()
            (data / "qrels" / "train.tsv").write_text("\n".join(lines[:13]) + "\n")  # header + 12 queries
            run = self.finetune(data, "--out", str(Path(tmp) / "out"))
            self.assertEqual(run.returncode, 2)
            self.assertEqual(run.stderr.splitlines()[-1], "finetune: error [too_few_queries] qrels/train.tsv: 12 labelled queries (a relevant "
                             "document, score > 0); fine-tuning needs at least 30: 20 to train on and 10 held back as the dev split that "
                             "chooses the checkpoint (500-1,000 are what typically make a difference)")

    def test_unknown_document(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = copy_tiny(tmp)
            with open(data / "qrels" / "test.tsv", "a") as f:
                f.write("q04\tGeology-99\t1\n")
            run = self.finetune(data, "--out", str(Path(tmp) / "out"))
            self.assertEqual(run.returncode, 2)
            self.assertEqual(run.stderr.splitlines()[-1], f"finetune: error [unknown_id] {data}/qrels/test.tsv: 1 document not in corpus.jsonl "
                                                          "(first: `Geology-99`): are the files from the same data set?")

    def test_corpus_too_large(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.finetune(TINY, "--out", str(Path(tmp) / "out"), "--max-memory-mb", "0")
            self.assertEqual(run.returncode, 2)
            size = (TINY / "corpus.jsonl").stat().st_size / 2**20
            self.assertEqual(run.stderr.strip(), f"finetune: error [corpus_too_large] {TINY}/corpus.jsonl: {size:.2f} MiB; its BM25 index needs "
                                                 f"about 6x that ({6 * size:.2f} MiB) and 0.00 MiB are available: split the corpus, or run on a "
                                                 "machine with more memory (--max-memory-mb raises the limit if you know better)")


class Report(unittest.TestCase):
    def test_table_and_verdict(self):
        start = {"ndcg_at_10": 0.5, "mrr_at_10": 0.4, "precision_at_1": 0.3}
        better = {"ndcg_at_10": 0.61234, "mrr_at_10": 0.5, "precision_at_1": 0.4}
        self.assertEqual(fd.report_table([("start", start), ("tuned", better)]),
                         "| system | nDCG@10 | MRR@10 | P@1 |\n|---|---:|---:|---:|\n"
                         "| start | 0.5000 | 0.4000 | 0.3000 |\n| tuned | 0.6123 | 0.5000 | 0.4000 |")
        self.assertTrue(fd.helped(start, better))
        self.assertFalse(fd.helped(start, start))
        self.assertEqual(fd.verdict(better, start, "test"), "Fine-tuning did not help: nDCG@10 on the test split 0.6123 -> 0.5000 (-0.1123); "
                                                            "the output is the starting model, unchanged.")


if __name__ == "__main__":
    unittest.main()

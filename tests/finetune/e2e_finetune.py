"""`./build.sh finetune` end to end on tests/data/beir-tiny (needs torch: run by
`./build.sh finetune-test` in .venv-train, not by CI; ~3 min on 2 cores):

- a run stopped after 2 steps (--stop-after-steps) leaves a checkpoint and exits 75; the same
  command again resumes from that checkpoint and finishes: the files, the report and the card;
- the output GGUF records the training max_length; the report's decision matches the output file;
- a SIGTERM checkpoints the step in progress and exits 75;
- a run that ruins the model (lr 1e-2) says that fine-tuning did not help and keeps the start;
- a Hugging Face folder as the starting model (converted to Q8_0 for the comparison).

    .venv-train/bin/python -m unittest tests.finetune.e2e_finetune -v
"""
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "beir-tiny"
DEFAULT_GGUF = REPO / "models" / "crossrank-minilm-l4.q8_0.gguf"
FAST = ["--max-length", "64", "--batch-size", "8", "--eval-every", "2", "--threads", "2", "--depth", "20", "--dev-depth", "10"]


def finetune(*args):
    return subprocess.run([sys.executable, str(REPO / "models" / "finetune.py"), str(TINY), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def gguf_max_length(path):
    from gguf import GGUFReader
    return int(GGUFReader(str(path)).fields["crossrank.max_length"].parts[-1][0])


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = Path(self.tmp.name) / "out"

    def tearDown(self):
        self.tmp.cleanup()

    def check_outputs(self, start_gguf):
        report = json.loads((self.out / "report.json").read_text())
        model = (self.out / "model.q8_0.gguf").read_bytes()
        tuned = (self.out / "work" / "finetuned.q8_0.gguf").read_bytes()
        self.assertEqual(report["kept_start"], report["finetuned"]["ndcg_at_10"] <= report["start"]["ndcg_at_10"])
        self.assertEqual(model, Path(start_gguf).read_bytes() if report["kept_start"] else tuned)
        self.assertEqual(gguf_max_length(self.out / "work" / "finetuned.q8_0.gguf"), 64)
        text = (self.out / "report.md").read_text()
        self.assertIn("| BM25 (bm25s), first stage | ", text)
        self.assertIn("| fine-tuned | ", text)
        self.assertIn(f"{report['finetuned']['ndcg_at_10']:.4f}", text)
        card = (self.out / "MODEL_CARD.md").read_text()
        self.assertIn("48 documents; 26 train queries", card)
        self.assertIn("12 held-out queries (test split)", card)
        self.assertIn(text.split("\n\n")[0], card)  # the same table
        return report

    def test_stop_resume_and_outputs(self):
        stopped = finetune("--out", self.out, "--epochs", "2", "--stop-after-steps", "2", *FAST)
        self.assertEqual(stopped.returncode, 75, stopped.stderr[-3000:])
        self.assertIn("stopped at step 2 of 8: checkpoint written; run the same command again to continue", stopped.stderr)
        self.assertTrue((self.out / "work" / "checkpoints" / "checkpoint-2").is_dir())
        self.assertFalse((self.out / "model.q8_0.gguf").exists())

        resumed = finetune("--out", self.out, "--epochs", "2", *FAST)
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(f"resuming from {self.out / 'work' / 'checkpoints' / 'checkpoint-2'}", resumed.stderr)
        self.assertIn("data: reusing", resumed.stderr)
        training = json.loads((self.out / "work" / "training.json").read_text())
        self.assertEqual((training["steps_done"], training["steps_planned"]), (8, 8))
        # the step-2 evaluation was made by the stopped run and carried over by the checkpoint
        self.assertEqual([h["step"] for h in training["dev_history"]], [2, 4, 6, 8])
        report = self.check_outputs(DEFAULT_GGUF)
        verdict = "Fine-tuning did not help" if report["kept_start"] else "Fine-tuning helped"
        self.assertIn(verdict, resumed.stdout)

        again = finetune("--out", self.out, "--epochs", "2", *FAST)  # done: nothing is trained again
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertIn("training: already done", again.stderr)

        other = finetune("--out", self.out, "--epochs", "2", "--seed", "7", *FAST)
        self.assertEqual(other.returncode, 2)
        self.assertIn("finetune: error [work_in_use]", other.stderr)

    def test_sigterm_writes_a_checkpoint(self):
        """A stop by signal (a shell's kill, a session's end) checkpoints the step in progress."""
        import signal
        import time
        proc = subprocess.Popen([sys.executable, str(REPO / "models" / "finetune.py"), str(TINY), "--out", str(self.out), "--epochs", "2", *FAST],
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
        for line in proc.stderr:  # wait until training has begun
            if "training: " in line and "rows" in line:
                break
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        self.assertEqual(proc.wait(), 75, rest[-3000:])
        self.assertIn("SIGTERM: writing a checkpoint at the end of this step", rest)
        step = int(rest.split("stopped at step ")[1].split()[0])
        self.assertTrue((self.out / "work" / "checkpoints" / f"checkpoint-{step}").is_dir())

    def test_keeps_the_start_when_it_did_not_help(self):
        run = finetune("--out", self.out, "--epochs", "1", "--lr", "1e-2", "--warmup", "0", *FAST)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        report = self.check_outputs(DEFAULT_GGUF)
        self.assertTrue(report["kept_start"], report)
        self.assertIn("Fine-tuning did not help", run.stdout)
        self.assertIn("the output is the starting model, unchanged", (self.out / "report.md").read_text())
        self.assertIn("this file is the starting model, unchanged", (self.out / "MODEL_CARD.md").read_text())

    def test_hugging_face_folder_as_start(self):
        start = REPO / "tests" / "models" / "minilm-l4"
        run = finetune("--out", self.out, "--model", start, "--epochs", "1", *FAST)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.check_outputs(self.out / "work" / "start.q8_0.gguf")


if __name__ == "__main__":
    unittest.main()

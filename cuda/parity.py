#!/usr/bin/env python3
"""GPU parity for the CUDA build (`./build.sh cuda-parity`): the same checks as the CPU tests, run
through the CLI with `--device cuda`, on a machine with an NVIDIA GPU and driver. Stdlib only, and
no cargo needed there: it runs a binary built by `./build.sh cuda` (on any machine).

Checks (each prints a line; any failure exits 1):
1. PyTorch f32 fixtures (tests/fixtures/tiny.json, minilm_l4.json when tests/models/minilm-l4 is
   there): max |Δlogit| <= 1e-4 on CUDA, as on CPU.
2. The shipped default model (Q8_0 GGUF) against its PyTorch fixture: within the CPU test's
   tolerance (0.15), and against the CPU build's logits.
3. `crossrank eval` on TREC DL19 (BM25 top 100) with --device cuda: every metric equal to the CPU
   run's within 1e-4.
4. Throughput, pairs/s, on the W30/W100 workloads (bench/make_workloads.py) with `crossrank bench`,
   CUDA next to CPU.
The report (date, GPU, driver, numbers) is printed as Markdown for BENCHMARKS.md and written to
artifacts/cuda-parity.md. f16/bf16 compute is not offered by crossrank (weights are computed in
f32, or Q8_0/Q4_0 dequantised to f32), so there is no half-precision row.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
F32_TOLERANCE = 1e-4
DEFAULT_MODEL_TOLERANCE = 0.15  # tests/default_model.rs: Q8_0 vs PyTorch f32
EVAL_TOLERANCE = 1e-4

failures: list[str] = []
report: list[str] = []


def say(line: str, ok: bool = True) -> None:
    print(("ok   " if ok else "FAIL ") + line, flush=True)
    report.append(f"- {'' if ok else '**FAILED** '}{line}")
    if not ok:
        failures.append(line)


def crossrank(cli: Path, args: list[str], stdin: str = "") -> str:
    done = subprocess.run([str(cli), *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"crossrank {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def score(cli: Path, model: Path, device: str, pairs: list[tuple[str, str]], max_length: int | None) -> list[float]:
    lines = "".join(json.dumps({"query": q, "document": d}) + "\n" for q, d in pairs)
    args = ["score", "--model", str(model), "--device", device, "--batch-size", "8"]
    if max_length:
        args += ["--max-length", str(max_length)]
    return [json.loads(line)["logit"] for line in crossrank(cli, args, lines).splitlines()]


def max_delta(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max(abs(x - y) for x, y in zip(a, b))


def f32_fixtures(cli: Path) -> None:
    for name, model in [("tiny", ROOT / "tests/models/tiny"), ("minilm_l4", ROOT / "tests/models/minilm-l4")]:
        if not (model / "model.safetensors").exists():
            say(f"{name}: skipped, {model.relative_to(ROOT)} is not built here (./build.sh minilm)")
            continue
        fixture = json.loads((ROOT / f"tests/fixtures/{name}.json").read_text())
        pairs = [(case["query"], case["passage"]) for case in fixture["cases"]]
        expected = [case["logit"] for case in fixture["cases"]]
        for device in ["cpu", "cuda"]:
            delta = max_delta(score(cli, model, device, pairs, fixture["max_length"]), expected)
            say(f"{name} f32, {device}: max |Δlogit| vs PyTorch {delta:.2e} over {len(pairs)} pairs (≤ {F32_TOLERANCE})",
                delta <= F32_TOLERANCE)


def default_model(cli: Path, gguf: Path) -> None:
    fixture = json.loads((ROOT / "tests/fixtures/default_model.json").read_text())
    pairs = [(case["query"], case["passage"]) for case in fixture["cases"]]
    expected = [case["logit"] for case in fixture["cases"]]
    for ranking in fixture["ranking"]:
        pairs += [(ranking["query"], doc) for doc in ranking["documents"]]
        expected += ranking["logits"]
    cpu = score(cli, gguf, "cpu", pairs, None)
    cuda = score(cli, gguf, "cuda", pairs, None)
    say(f"default model Q8_0, cuda: max |Δlogit| vs PyTorch f32 {max_delta(cuda, expected):.4f} over {len(pairs)} pairs "
        f"(≤ {DEFAULT_MODEL_TOLERANCE}); vs the CPU path {max_delta(cuda, cpu):.2e}",
        max_delta(cuda, expected) <= DEFAULT_MODEL_TOLERANCE)


def trec_dl19(cli: Path, gguf: Path, data: Path) -> None:
    if not (data / "corpus.jsonl").exists():
        say(f"TREC DL19: skipped, no data at {data} (set DL19=… to a BEIR-layout folder)")
        return
    metrics = {}
    for device in ["cpu", "cuda"]:
        out = crossrank(cli, ["eval", "--corpus", str(data / "corpus.jsonl"), "--queries", str(data / "queries.jsonl"),
                              "--qrels", str(data / "qrels/test.tsv"), "--candidates", str(data / "bm25_top100.tsv"),
                              "--model", str(gguf), "--min-relevance", "2", "--device", device])
        rows = [json.loads(line) for line in out.splitlines()]
        # the plain rerank row (the fused rows follow it)
        metrics[device] = next(row["metrics"] for row in rows if row["system"].endswith("reranked)") and "crossrank" in row["system"])
    worst = max(abs(metrics["cpu"][k] - metrics["cuda"][k]) for k in metrics["cpu"])
    say(f"TREC DL19 (43 queries, BM25 top 100), Q8_0: nDCG@10 cuda {metrics['cuda']['ndcg_at_10']:.4f}, "
        f"cpu {metrics['cpu']['ndcg_at_10']:.4f}; largest metric difference {worst:.1e} (≤ {EVAL_TOLERANCE})",
        worst <= EVAL_TOLERANCE)


def throughput(cli: Path, models: list[Path]) -> None:
    workloads = [ROOT / f"artifacts/bench/{name}.json" for name in ["W30", "W100"]]
    if not all(w.exists() for w in workloads):
        say("throughput: skipped, no artifacts/bench/W30.json (python3 bench/make_workloads.py)")
        return
    for device in ["cuda", "cpu"]:
        args = ["bench", "--device", device, "--repeat", "10"]
        for model in models:
            args += ["--model", str(model)]
        for workload in workloads:
            args += ["--workload", str(workload)]
        table = crossrank(cli, args)
        report.append(f"\n`crossrank bench --device {device}` (pairs/s = 1000 / ms per pair):\n\n{table}")
        print(table, flush=True)


# What the CUDA build loads besides the driver (`readelf -d target/cuda/release/crossrank | grep NEEDED`).
CUDA_LIBRARIES = ["libcublas.so.13", "libcurand.so.10", "libcudart.so.13"]


def find_cuda_libraries() -> None:
    """Puts the folders of the CUDA libraries that the loader cannot find on LD_LIBRARY_PATH:
    PyTorch's cu13 wheels (nvidia-cublas, nvidia-curand, nvidia-cuda-runtime) hold them. Never the
    stand-ins of cuda/stubs.py."""
    import site
    import sysconfig
    known = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    path = os.environ.get("LD_LIBRARY_PATH", "")
    roots = list(dict.fromkeys(Path(p) / "nvidia" for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]))
    folders: list[str] = []
    for library in CUDA_LIBRARIES:
        if library in known or any((Path(folder) / library).exists() for folder in path.split(":") if folder):
            continue
        found = [f for root in roots if root.is_dir() for f in root.glob(f"**/{library}") if "stubs" not in f.parts]
        if not found:
            say(f"{library}: not found by the loader nor in {', '.join(map(str, roots))}", ok=False)
            continue
        if str(found[0].parent) not in folders:
            folders.append(str(found[0].parent))
    os.environ["LD_LIBRARY_PATH"] = ":".join(folders + ([path] if path else []))


def gpu_description() -> str:
    try:
        return subprocess.check_output(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], text=True).strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"unknown (nvidia-smi: {e})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", type=Path, default=ROOT / "target/cuda/release/crossrank")
    p.add_argument("--model", type=Path, default=ROOT / "models/crossrank-minilm-l4.q8_0.gguf")
    p.add_argument("--dl19", type=Path, default=Path(os.environ.get("DL19", ROOT.parent / "shared/data/trec-dl/dl19")))
    args = p.parse_args()
    gpu = gpu_description()
    report.append(f"CUDA parity, {datetime.date.today()}, GPU: {gpu}, binary {args.cli}\n")
    print(report[0], flush=True)
    find_cuda_libraries()
    if failures:
        sys.exit("the CUDA libraries are missing: pip install nvidia-cublas nvidia-curand nvidia-cuda-runtime (CUDA 13)")
    f32_fixtures(args.cli)
    default_model(args.cli, args.model)
    trec_dl19(args.cli, args.model, args.dl19)
    throughput(args.cli, [m for m in [ROOT / "tests/models/minilm-l4", args.model] if m.exists()])
    out = ROOT / "artifacts/cuda-parity.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report) + "\n")
    print(f"\nreport: {out.relative_to(ROOT)}")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


if __name__ == "__main__":
    main()

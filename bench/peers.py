#!/usr/bin/env python3
"""crossrank (native CLI) against its peers on the same model and workloads, on this machine's CPU.

Systems, each at 1 and 2 threads, each in its own process (so peak RSS is its own):
  - PyTorch f32: sentence-transformers CrossEncoder.predict (its default batch_size 32, length-sorted)
  - ONNX Runtime f32 and dynamic int8: the export of bench/export_onnx.py, tokenised by `tokenizers`,
    length-sorted batches of 16 (crossrank's default), intra_op_num_threads = threads
  - crossrank f32 / q8_0 / q4_0 GGUFs: `crossrank bench` (timing) and `crossrank score` (logits),
    RAYON_NUM_THREADS = threads, its default batch 16 (length-sorted)

Every timing is text in, logits out (tokenisation included), after one warm-up, over --repeat runs.
All tokenise the same way (max_length 512, longest_first); the token ids of the ONNX Runtime path are
checked against the PyTorch reference. GFLOP/s counts the workload's useful work from its real token
counts (no padding): 2 · encoder parameters · tokens + per layer 4 · L² · hidden per pair, plus the
pooler and classifier once per pair; it is set against the best 1024³ f32 matmul that torch, numpy or
ONNX Runtime reach here.

    python3 bench/peers.py --model tests/models/minilm-l4

prints a Markdown report and writes it to artifacts/bench/native.md (and native.json).
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_onnx  # noqa: E402

ROOT = export_onnx.ROOT
BENCH = export_onnx.BENCH
DTYPES = ("f32", "q8_0", "q4_0")
ORT_BATCH = 16
ST_BATCH = 32


# ---------------------------------------------------------------- workers (one process per system)

def worker_matmul(threads: int) -> dict:
    """Best f32 1024³ matmul over about two seconds of tries each, by torch, numpy and ONNX Runtime (the
    best counts: on this AMD CPU only ONNX Runtime's MLAS uses AVX-512), by wall clock and by this
    process's CPU time (which a loaded machine does not inflate)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1024, 1024]) for n in ("a", "b")],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1024, 1024])])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString(),
                                   options, providers=["CPUExecutionProvider"])
    a32, b32 = np.random.rand(1024, 1024).astype(np.float32), np.random.rand(1024, 1024).astype(np.float32)
    ta, tb = torch.from_numpy(a32), torch.from_numpy(b32)
    candidates = {"torch": lambda: ta @ tb, "numpy": lambda: a32 @ b32, "onnxruntime": lambda: session.run(["c"], {"a": a32, "b": b32})}
    best, best_cpu = {}, {}
    for name, multiply in candidates.items():
        deadline, fastest, fastest_cpu = time.perf_counter() + 2.0, float("inf"), float("inf")
        while time.perf_counter() < deadline:
            start, start_cpu = time.perf_counter(), time.process_time()
            multiply()
            fastest = min(fastest, time.perf_counter() - start)
            fastest_cpu = min(fastest_cpu, time.process_time() - start_cpu)
        best[name] = 2 * 1024**3 / fastest / 1e9
        best_cpu[name] = 2 * 1024**3 / fastest_cpu / 1e9
    return {"gflops": max(best.values()), "gflops_per_cpu_s": max(best_cpu.values()), "by_library": best, "by_library_cpu": best_cpu}


def worker_torch(model: Path, threads: int, workloads: dict, repeats: dict) -> dict:
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    encoder = CrossEncoder(str(model), device="cpu", max_length=export_onnx.MAX_LENGTH)
    identity = torch.nn.Identity()

    def run(workload):
        pairs = [(workload["query"], document) for document in workload["documents"]]
        return encoder.predict(pairs, batch_size=ST_BATCH, activation_fn=identity, convert_to_numpy=True).tolist()

    return _time_all(run, workloads, repeats)


def worker_ort(onnx_file: Path, tokenizer_file: Path, threads: int, workloads: dict, repeats: dict, reference: dict) -> dict:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(export_onnx.MAX_LENGTH, strategy="longest_first")
    tokenizer.no_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def encode(workload):
        return tokenizer.encode_batch([(workload["query"], document) for document in workload["documents"]])

    for name, workload in workloads.items():
        ids = [encoding.ids for encoding in encode(workload)]
        if ids != reference["workloads"][name]["input_ids"]:
            raise SystemExit(f"{name}: the tokenizers encoding differs from PyTorch's reference")

    def run(workload):
        encodings = encode(workload)
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        logits = [0.0] * len(encodings)
        for start in range(0, len(order), ORT_BATCH):
            batch = order[start:start + ORT_BATCH]
            width = len(encodings[batch[0]].ids)
            feeds = {name: np.zeros((len(batch), width), dtype=np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
            for row, index in enumerate(batch):
                encoding = encodings[index]
                n = len(encoding.ids)
                feeds["input_ids"][row, :n] = encoding.ids
                feeds["attention_mask"][row, :n] = 1
                feeds["token_type_ids"][row, :n] = encoding.type_ids
            out = session.run(["logits"], feeds)[0]
            for row, index in enumerate(batch):
                logits[index] = float(out[row, 0])
        return logits

    return _time_all(run, workloads, repeats)


def _time_all(run, workloads: dict, repeats: dict) -> dict:
    results = {}
    for name, workload in workloads.items():
        logits = run(workload)  # warm-up
        times, cpu = [], []
        for _ in range(repeats[name]):
            start, start_cpu = time.perf_counter(), time.process_time()
            run(workload)
            times.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - start_cpu) * 1e3)
        results[name] = {"times_ms": times, "cpu_ms": statistics.median(cpu), "logits": logits}
    return results


def worker_main(spec: dict) -> None:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(spec["threads"])
    workloads = export_onnx.load_workloads(spec["workloads"])
    if spec["kind"] == "matmul":
        result = worker_matmul(spec["threads"])
    elif spec["kind"] == "torch":
        result = worker_torch(Path(spec["model"]), spec["threads"], workloads, spec["repeats"])
    else:
        reference = json.loads(Path(spec["reference"]).read_text())
        result = worker_ort(Path(spec["onnx"]), Path(spec["tokenizer"]), spec["threads"], workloads, spec["repeats"], reference)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"results": result, "peak_rss_bytes": rss_kib * 1024}))


def run_worker(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"worker {spec['kind']} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- crossrank (the CLI)

def ensure_ggufs(cli: Path, model: Path) -> dict:
    out_dir = BENCH / "gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    newest = export_onnx.newest_mtime(model)
    paths = {}
    for dtype in DTYPES:
        path = out_dir / f"{model.name}.{dtype}.gguf"
        if not path.exists() or path.stat().st_mtime < newest or path.stat().st_mtime < cli.stat().st_mtime:
            subprocess.run([str(cli), "convert", "--model", str(model), "--dtype", dtype, "--out", str(path), "--source", model.name],
                           check=True, capture_output=True)
        paths[dtype] = path
    return paths


def run_with_rusage(command: list, env: dict, stdin: str | None = None) -> tuple[str, int, float]:
    """Runs `command`; returns its stdout, its own peak RSS in bytes and its CPU seconds (wait4's rusage,
    so the child is reaped here rather than by subprocess; its streams go through temporary files)."""
    with tempfile.TemporaryFile("w+") as input_file, tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        input_file.write(stdin or "")
        input_file.seek(0)
        process = subprocess.Popen(command, env=env, stdin=input_file, stdout=output, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        errors.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, command))} failed:\n{errors.read()[-4000:]}")
        return output.read(), usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def crossrank_bench(cli: Path, gguf: Path, threads: int, workloads: list, repeats: dict) -> dict:
    """Times with `crossrank bench`, one process per workload. CPU time per run, which `bench` does not
    print, is the difference between this process and one with a single timed run, over the extra runs."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    results, peak = {}, 0
    for name in workloads:
        command = [str(cli), "bench", "--model", str(gguf), "--workload", str(BENCH / f"{name}.json")]
        _, _, cpu_one = run_with_rusage(command + ["--repeat", "1"], env)
        stdout, rss, cpu_all = run_with_rusage(command + ["--repeat", str(repeats[name] + 1)], env)
        peak = max(peak, rss)
        for line in stdout.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 7 and cells[1] == f"{name}.json":
                median, low, high = (float(cells[i]) for i in (3, 4, 5))
                results[name] = {"median_ms": median, "min_ms": low, "max_ms": high,
                                 "cpu_ms": max(cpu_all - cpu_one, 0.0) / repeats[name] * 1e3}
        if name not in results:
            raise SystemExit(f"no row for {name} in the output of {' '.join(command)}:\n{stdout}")
    return {"results": results, "peak_rss_bytes": peak}


def crossrank_logits(cli: Path, gguf: Path, workloads: dict) -> dict:
    lines, spans, start = [], {}, 0
    for name, workload in workloads.items():
        lines += [json.dumps({"query": workload["query"], "document": document}) for document in workload["documents"]]
        spans[name] = (start, len(lines))
        start = len(lines)
    stdout, _, _ = run_with_rusage([str(cli), "score", "--model", str(gguf)], dict(os.environ), "\n".join(lines) + "\n")
    logits = [json.loads(line)["logit"] for line in stdout.splitlines() if line.strip()]
    return {name: logits[a:b] for name, (a, b) in spans.items()}


# ---------------------------------------------------------------- counting

def model_flops(model: Path, reference: dict) -> dict:
    """Useful FLOPs of each workload from its real (unpadded) token counts and the BERT config."""
    config = json.loads((model / "config.json").read_text())
    hidden, layers, intermediate = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    labels = config.get("num_labels", len(config.get("id2label", {"0": 0})))
    # Per layer: Q, K, V and output projections, the two feed-forward matrices, their biases and two LayerNorms.
    encoder = layers * (4 * hidden * hidden + 4 * hidden + 2 * hidden * intermediate + intermediate + hidden + 4 * hidden)
    head = hidden * hidden + hidden + hidden * labels + labels  # pooler (on [CLS] only) and classifier
    flops = {}
    for name, data in reference["workloads"].items():
        lengths = [len(ids) for ids in data["input_ids"]]
        flops[name] = {
            "pairs": len(lengths),
            "tokens": sum(lengths),
            "flops": sum(2 * encoder * n + layers * 4 * n * n * hidden + 2 * head for n in lengths),
        }
    return {"encoder_params": encoder, "head_params": head, "workloads": flops}


def summarise(times_ms: list) -> dict:
    ordered = sorted(times_ms)
    return {"median_ms": statistics.median(ordered), "min_ms": ordered[0], "max_ms": ordered[-1]}


def max_delta(logits: list, reference: list) -> float:
    return max(abs(a - b) for a, b in zip(logits, reference, strict=True))


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    name = fields.get("Model name", "?").strip()
    cpus = fields.get("CPU(s)", "?").strip()
    flags = fields.get("Flags", "")
    simd = " ".join(flag for flag in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16") if re.search(rf"\b{flag}\b", flags))
    return f"{name}, {cpus} CPUs ({simd})"


def git_revision() -> str:
    """HEAD's short hash, marked when the work tree differs from it (the CLI may hold uncommitted code)."""
    run = lambda *command: subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = run("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if run("status", "--porcelain", "--untracked-files=no") else "")


def load() -> str:
    return "{:.1f}/{:.1f}".format(*os.getloadavg()[:2])


# ---------------------------------------------------------------- report

def render(report: dict) -> str:
    out = []
    out.append(f"Machine: {report['machine']}. Model: `{report['model']}` "
               f"({report['flops']['encoder_params']:,} encoder parameters). Load average (1/5 min) "
               f"{report['load_start']} at start, {report['load_end']} at end; repeats {report['repeats']} after one warm-up.")
    out.append("")
    peaks = report["matmul_gflops"]
    cpu_peak = report["matmul_gflops_per_cpu_s"]["1"] if "1" in report["matmul_gflops_per_cpu_s"] else max(report["matmul_gflops_per_cpu_s"].values())
    out.append("f32 matmul peak (best 1024³ matmul of torch, numpy and ONNX Runtime over 2 s each): " + ", ".join(
        f"{t} thread{'s' if t != '1' else ''} {g:.0f} GFLOP/s" for t, g in peaks.items())
        + f"; by CPU time, {cpu_peak:.0f} GFLOP per CPU-second. \"GFLOP/s\" is useful work over the median wall time, "
        "set against the wall-clock peak at the same thread count; \"GFLOP/CPU-s\" over the CPU time the run used "
        "(all its threads), set against the per-CPU-second peak: the better measure while other work shares the cores.")
    out.append("")
    out.append("| workload | pairs | tokens | useful GFLOP |\n|---|---|---|---|")
    for name, data in report["flops"]["workloads"].items():
        out.append(f"| {name} | {data['pairs']} | {data['tokens']:,} | {data['flops'] / 1e9:.1f} |")
    out.append("")
    out.append("| system | threads | workload | median ms | min–max ms | CPU ms/run | ms/pair | GFLOP/s | % of peak | GFLOP/CPU-s | % of peak | max \\|Δlogit\\| vs PyTorch | model bytes | peak RSS MiB | load |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        for name in report["workloads"]:
            result = row["results"].get(name)
            if not result:
                continue
            work = report["flops"]["workloads"][name]
            gflops = work["flops"] / (result["median_ms"] / 1e3) / 1e9
            peak = peaks[str(row["threads"])]
            cpu_gflops = work["flops"] / (result["cpu_ms"] / 1e3) / 1e9
            out.append(
                f"| {row['system']} | {row['threads']} | {name} | {result['median_ms']:.0f} | {result['min_ms']:.0f}–{result['max_ms']:.0f} | "
                f"{result['cpu_ms']:.0f} | {result['median_ms'] / work['pairs']:.1f} | {gflops:.1f} | {100 * gflops / peak:.0f}% | "
                f"{cpu_gflops:.1f} | {100 * cpu_gflops / cpu_peak:.0f}% | {result['max_delta']:.1e} | "
                f"{row['model_bytes']:,} | {row['peak_rss_bytes'] / 2**20:.0f} | {row['load']} |"
            )
    out.append("")
    out.append("crossrank's median time over each peer's, same workload and thread count, same run (below 1 means crossrank is faster):")
    out.append("")
    peers = [row["system"] for row in report["rows"] if not row["system"].startswith("crossrank")]
    peers = list(dict.fromkeys(peers))
    out.append("| crossrank | threads | workload | " + " | ".join(f"÷ {peer}" for peer in peers) + " |")
    out.append("|---|---|---|" + "---|" * len(peers))
    index = {(row["system"], row["threads"]): row for row in report["rows"]}
    for row in report["rows"]:
        if not row["system"].startswith("crossrank"):
            continue
        for name in report["workloads"]:
            mine = row["results"].get(name)
            cells = []
            for peer in peers:
                theirs = index.get((peer, row["threads"]), {}).get("results", {}).get(name)
                cells.append(f"{mine['median_ms'] / theirs['median_ms']:.2f}" if mine and theirs else "—")
            out.append(f"| {row['system'].removeprefix('crossrank ')} | {row['threads']} | {name} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "tests" / "models" / "minilm-l4", help="a Hugging Face cross-encoder directory")
    parser.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "crossrank")
    parser.add_argument("--workload", action="append", choices=export_onnx.WORKLOADS, help="default: all three")
    parser.add_argument("--threads", type=int, action="append", help="default: 1 and 2")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per workload (after one warm-up)")
    parser.add_argument("--repeat-w100", type=int, default=3, help="timed runs of W100")
    parser.add_argument("--systems", default="torch,ort-f32,ort-int8,crossrank", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=BENCH / "native.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(json.loads(args.worker))

    import importlib.metadata as metadata

    model = args.model.resolve()
    workload_names = args.workload or list(export_onnx.WORKLOADS)
    thread_counts = args.threads or [1, 2]
    systems = args.systems.split(",")
    repeats = {name: (args.repeat_w100 if name == "W100" else args.repeat) for name in workload_names}
    if "crossrank" in systems and not args.cli.exists():
        sys.exit(f"{args.cli} not found: build it with `./build.sh cli`")
    onnx_dir = export_onnx.ensure(model)
    reference = json.loads((onnx_dir / "reference.json").read_text())
    workloads = export_onnx.load_workloads(workload_names)
    flops = model_flops(model, reference)
    flops["workloads"] = {name: flops["workloads"][name] for name in workload_names}
    report = {
        "machine": machine(),
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "workloads": workload_names,
        "repeats": ", ".join(f"{name} ×{n}" for name, n in repeats.items()),
        "load_start": load(),
        "flops": flops,
        "matmul_gflops": {},
        "rows": [],
        "versions": {name: metadata.version(name) for name in ("torch", "sentence-transformers", "transformers", "onnxruntime", "tokenizers")},
    }
    for threads in thread_counts:
        measured = run_worker({"kind": "matmul", "threads": threads, "workloads": []})["results"]
        report["matmul_gflops"][str(threads)] = measured["gflops"]
        report.setdefault("matmul_by_library", {})[str(threads)] = measured["by_library"]
        report.setdefault("matmul_gflops_per_cpu_s", {})[str(threads)] = measured["gflops_per_cpu_s"]
    ggufs = ensure_ggufs(args.cli, model) if "crossrank" in systems else {}
    crossrank_parity = {dtype: crossrank_logits(args.cli, path, workloads) for dtype, path in ggufs.items()}
    if ggufs:
        report["versions"]["crossrank"] = subprocess.run([str(args.cli), "--version"], capture_output=True, text=True).stdout.split()[-1]
        report["versions"]["crossrank"] += f" (CLI built {time.strftime('%Y-%m-%d %H:%M', time.gmtime(args.cli.stat().st_mtime))} UTC, tree {git_revision()})"

    def add(system: str, threads: int, model_bytes: int, measured: dict, logits: dict, load_at: str) -> None:
        results = {}
        for name in workload_names:
            result = measured["results"][name]
            summary = summarise(result["times_ms"]) | {"cpu_ms": result["cpu_ms"]} if "times_ms" in result else result
            summary["max_delta"] = max_delta(logits[name], reference["workloads"][name]["logits"])
            results[name] = summary
        row = {"system": system, "threads": threads, "model_bytes": model_bytes, "peak_rss_bytes": measured["peak_rss_bytes"],
               "load": load_at, "results": results}
        report["rows"].append(row)
        print(f"  {system} ×{threads}: " + ", ".join(f"{n} {r['median_ms']:.0f} ms (Δ {r['max_delta']:.1e})" for n, r in results.items())
              + f"  [load {load_at}]", file=sys.stderr)

    common = {"workloads": workload_names, "repeats": repeats}
    for threads in thread_counts:
        if "torch" in systems:
            at = load()
            measured = run_worker({"kind": "torch", "model": str(model), "threads": threads, **common})
            weights = next((model / name for name in ("model.safetensors", "pytorch_model.bin") if (model / name).exists()))
            add("PyTorch f32 (sentence-transformers)", threads, weights.stat().st_size, measured,
                {n: r["logits"] for n, r in measured["results"].items()}, at)
        for system, file in (("ort-f32", "model.onnx"), ("ort-int8", "model_quantized.onnx")):
            if system not in systems:
                continue
            at = load()
            onnx_file = onnx_dir / "onnx" / file
            measured = run_worker({"kind": "ort", "onnx": str(onnx_file), "tokenizer": str(onnx_dir / "tokenizer.json"),
                                   "reference": str(onnx_dir / "reference.json"), "threads": threads, **common})
            label = "ONNX Runtime f32" if system == "ort-f32" else "ONNX Runtime int8 (dynamic)"
            add(label, threads, onnx_file.stat().st_size, measured, {n: r["logits"] for n, r in measured["results"].items()}, at)
        for dtype, path in ggufs.items():
            at = load()
            measured = crossrank_bench(args.cli, path, threads, workload_names, repeats)
            add(f"crossrank {dtype}", threads, path.stat().st_size, measured, crossrank_parity[dtype], at)
    report["load_end"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    text = render(report)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

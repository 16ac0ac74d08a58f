#!/usr/bin/env python3
"""Where crossrank's native time goes: samples `crossrank bench` with Linux perf (DWARF call stacks)
and prints the share of samples under each model operation, as a Markdown table.

    python3 bench/perf_profile.py [--model artifacts/bench/gguf/minilm-l4.f32.gguf] [--workload W30] [--threads 1]

Needs `perf` (Debian: linux-perf) and a release CLI with symbols (the default release profile keeps
them). Shares are inclusive (a sample counts for every frame on its stack), so rows overlap: the
"matmul" row holds both the Linear layers and attention's two batched products. The model load and
the warm-up run are sampled too; on W30 they are a few percent.
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (label, regular expression on a frame's symbol). Order is the table's.
ROWS = [
    ("model forward (samples on rayon's worker thread lack this frame)", r"^crossrank::model::CrossEncoder::forward"),
    ("matmul (candle → gemm)", r"^candle_core::tensor::Tensor::matmul"),
    ("↳ in Linear layers", r"^crossrank::linear::Linear::forward"),
    ("↳ gemm f32 microkernel, AVX2+FMA (x2x6: 16×6 tile)", r"^gemm_f32::microkernel::fma::"),
    ("↳ gemm f32 microkernel, AVX-512", r"^gemm_f32::microkernel::avx512"),
    ("GELU (erf; Tensor::gelu_erf)", r"^candle_core::tensor::Tensor::gelu_erf"),
    ("↳ scalar libm erff", r"erff|erfc"),
    ("broadcast add (biases, attention mask)", r"^candle_core::tensor::Tensor::broadcast_add"),
    ("softmax (candle_nn softmax_last_dim: scalar expf per element)", r"softmax|expf"),
    ("layer norm", r"layer_norm|LayerNorm::forward"),
    ("copies (contiguous, transpose)", r"^candle_core::tensor::Tensor::contiguous|copy_strided"),
    ("tokenisation", r"^crossrank::tokenize::"),
    ("model load (read, parse, dequantise)", r"^crossrank::local::load_model"),
    ("kernel: page faults (fresh allocations)", r"exc_page_fault|do_anonymous_page|clear_page"),
    ("kernel: munmap (freed allocations)", r"do_vmi_munmap|unmap_page_range|__x64_sys_munmap"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "crossrank")
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "bench" / "gguf" / "minilm-l4.f32.gguf")
    parser.add_argument("--workload", default="W30")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--frequency", type=int, default=199, help="samples per second")
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf not found (Debian: apt-get install linux-perf)")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        subprocess.run(["perf", "record", "-q", "-F", str(args.frequency), "--call-graph", "dwarf,16384", "-o", str(data),
                        str(args.cli), "bench", "--model", str(args.model), "--repeat", str(args.repeat),
                        "--workload", str(ROOT / "artifacts" / "bench" / f"{args.workload}.json")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True, check=True).stdout
    samples = [block for block in script.split("\n\n") if block.strip()]
    counts = collections.Counter()
    for block in samples:
        symbols = [re.sub(r"\+0x[0-9a-f]+$", "", line.split(None, 1)[1].rsplit(" (", 1)[0])
                   for line in block.splitlines()[1:] if len(line.split(None, 1)) == 2]
        for label, pattern in ROWS:
            if any(re.search(pattern, symbol) for symbol in symbols):
                counts[label] += 1
    print(f"`crossrank bench` on {args.workload}, {args.model.name}, RAYON_NUM_THREADS={args.threads}, "
          f"{len(samples)} samples at {args.frequency} Hz (load + warm-up + {args.repeat} runs):\n")
    print("| where | share of samples |\n|---|---|")
    for label, _ in ROWS:
        print(f"| {label} | {100 * counts[label] / max(len(samples), 1):.1f}% |")


if __name__ == "__main__":
    main()

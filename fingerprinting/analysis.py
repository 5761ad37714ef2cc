"""Small summaries computed in Python for the console (the SQL marts hold the full analysis)."""

from __future__ import annotations

import numpy as np


def rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney probability P(pos > neg) + 0.5 P(pos == neg)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    i = 0
    while i < len(sorted_v):
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def separation(pairs: list[dict], family_of: dict[str, str]) -> dict:
    """Related (same family) vs unrelated similarity: means and AUC."""
    rel, unrel = [], []
    for p in pairs:
        fa, fb = family_of.get(p["model_a"]), family_of.get(p["model_b"])
        if fa is None or fb is None:
            continue
        (rel if fa == fb else unrel).append(p["similarity"])
    return {"related_mean": float(np.mean(rel)) if rel else float("nan"),
            "unrelated_mean": float(np.mean(unrel)) if unrel else float("nan"),
            "auc": rank_auc(np.array(rel), np.array(unrel)), "n_related": len(rel), "n_unrelated": len(unrel)}

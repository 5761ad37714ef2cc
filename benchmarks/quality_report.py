"""Provenance quality on the demo zoo and the real zoo, side by side with published figures.

    fplake demo [--real]                       # fingerprints, verdict, lineage, dbt build
    python -m benchmarks.quality_report        # print the tables
    python -m benchmarks.quality_report --write-docs docs/fingerprints.md

Reads the warehouse's marts (``pair_similarities``, ``provenance_verdicts``,
``lineage_recovery_quality``) and computes, per zoo, for each method with its
verdict metric(s) and for the combined verdict (out-of-fold scores):
ROC-AUC (Mann-Whitney, ties 1/2), TPR at 1% FPR, and precision / recall at
the 1%-FPR threshold, overall and per derivation type.

Zoos: a pair belongs to the *demo* zoo when both models are demo-zoo models;
to the *real* zoo when at least one model is a real-zoo model (so real
derivations are scored against every unrelated pair that involves a real
model, demo models included: the real zoo alone has too few unrelated pairs
for a 1% FPR). Sibling pairs (same recipe, not derived) are negatives and
are listed on their own. ``--write-docs`` replaces the text between
``<!-- quality:begin -->`` and ``<!-- quality:end -->``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from fingerprinting.provenance.verdict import choose_threshold, roc_auc
from fingerprinting.settings import get_settings
from fingerprinting.warehouse import connect

TARGET_FPR = 0.01
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"
PUBLISHED = [
    ("white-box weight signals (111 real model pairs)", "accuracy 96.4%, F1 0.963"),
    ("black-box provenance testing (600+ models, 30M-4B)", "precision 0.90-0.95, recall 0.80-0.90"),
    ("trigger-based black-box fingerprints", "IP-ROC > 0.95"),
]


def zoo_ids(settings) -> dict[str, set[str]]:
    """Model ids of the demo zoo and the real zoo, from their cached manifests."""
    out = {}
    for zoo, sub in (("demo", "full"), ("real", "real")):
        path = Path(settings.zoo_dir) / sub / "manifest.json"
        out[zoo] = {m["model_id"] for m in json.loads(path.read_text())["models"]} if path.is_file() else set()
    return out


def in_zoo(a: np.ndarray, b: np.ndarray, zoo: str, ids: dict[str, set[str]]) -> np.ndarray:
    ina = np.isin(a, list(ids[zoo]))
    inb = np.isin(b, list(ids[zoo]))
    return (ina & inb) if zoo == "demo" else (ina | inb)


def binary_quality(scores: np.ndarray, labels: np.ndarray, target_fpr: float = TARGET_FPR) -> dict:
    """ROC-AUC, and TPR / precision / recall at the lowest threshold with FPR <= target."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    if y.all() or not y.any():
        return {"auc": None, "tpr": None, "threshold": None, "precision": None, "n_pos": int(y.sum()),
                "n_neg": int((~y).sum())}
    t = choose_threshold(s, y, target_fpr)
    return {"auc": roc_auc(s, y), "tpr": t.tpr, "threshold": t.threshold, "precision": t.precision,
            "n_pos": int(y.sum()), "n_neg": int((~y).sum())}


def _f(v, d=3) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def verdict_features(con) -> list[tuple[str, str]]:
    row = con.execute("select features_json from stg_provenance_model where is_current").fetchone() \
        if _has(con, "stg_provenance_model") else None
    if not row:
        return []
    return [(f["method"], f["metric"], f["config_hash"]) for f in json.loads(row[0])]


def _has(con, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?",
                            [table]).fetchone()[0])


def load_rows(con) -> dict[str, dict[str, np.ndarray]]:
    """{'method/metric' or 'combined': {'a','b','score','label','relation'}} as numpy arrays."""
    out: dict[str, dict[str, np.ndarray]] = {}
    feats = verdict_features(con)
    for method, metric, config_hash in feats:
        # same labels as the verdict: siblings are negatives, lineage / same family positive
        df = con.execute("""
            select p.model_a, p.model_b, p.similarity, v.label, v.relation
            from pair_similarities p
            join provenance_verdicts v using (model_a, model_b)
            where p.method = ? and p.metric = ? and p.config_hash = ?""", [method, metric, config_hash]).fetchnumpy()
        out[f"{method}/{metric}"] = {"a": df["model_a"], "b": df["model_b"], "score": df["similarity"],
                                     "label": df["label"], "relation": df["relation"]}
    if _has(con, "provenance_verdicts"):
        df = con.execute("""select model_a, model_b, score_oof, label, relation from provenance_verdicts
                            where score_oof is not null""").fetchnumpy()
        out["combined"] = {"a": df["model_a"], "b": df["model_b"], "score": df["score_oof"],
                           "label": df["label"], "relation": df["relation"]}
    return out


def zoo_section(zoo: str, rows: dict, ids: dict[str, set[str]], fit_threshold: float | None) -> list[str]:
    lines = []
    relations = sorted({str(r) for d in rows.values() for r in d["relation"]} - {"unrelated", "sibling"})
    head = "| method / metric | pairs (related / unrelated) | ROC-AUC | TPR @ 1% FPR | precision @ that threshold |"
    lines += [head, "|---|---|---|---|---|"]
    per_type: dict[str, dict[str, str]] = {}
    for key, d in rows.items():
        m = in_zoo(d["a"], d["b"], zoo, ids) & (d["relation"] != "sibling")
        if not m.any():
            continue
        q = binary_quality(d["score"][m], d["label"][m])
        lines.append(f"| {key} | {q['n_pos']} / {q['n_neg']} | {_f(q['auc'])} | {_f(q['tpr'])} | "
                     f"{_f(q['precision'])} |")
        neg = m & ~d["label"].astype(bool)
        for rel in relations:
            pos = m & (d["relation"] == rel)
            if pos.any():
                sel = pos | neg
                qq = binary_quality(d["score"][sel], d["label"][sel])
                per_type.setdefault(key, {})[rel] = f"{_f(qq['auc'], 2)} / {_f(qq['tpr'], 2)} (n={qq['n_pos']})"
    if "combined" in rows and fit_threshold is not None:
        d = rows["combined"]
        m = in_zoo(d["a"], d["b"], zoo, ids)
        y, s = d["label"][m].astype(bool), d["score"][m]
        if y.any():
            tp, fp = int((s[y] >= fit_threshold).sum()), int((s[~y] >= fit_threshold).sum())
            prec = tp / (tp + fp) if tp + fp else None
            lines.append("")
            lines.append(f"Combined verdict at the fitted threshold {fit_threshold:.4f} (chosen for 1% FPR on the "
                         f"pooled out-of-fold scores of the whole lake): recall {tp / y.sum():.3f} ({tp}/{int(y.sum())}), "
                         f"false positives {fp}/{int((~y).sum())}, precision {_f(prec)}.")
    if per_type:
        used = [r for r in relations if any(r in v for v in per_type.values())]
        lines += ["", "ROC-AUC / TPR at 1% FPR per derivation type (its related pairs against every unrelated pair):", "",
                  "| method / metric | " + " | ".join(used) + " |", "|---|" + "---|" * len(used)]
        for key, v in per_type.items():
            lines.append(f"| {key} | " + " | ".join(v.get(r, "-") for r in used) + " |")
    return lines


def real_pairs_section(rows: dict, ids: dict[str, set[str]], fit_threshold: float | None, con) -> list[str]:
    """Every recorded real derivation and every sibling pair with its combined score."""
    if "combined" not in rows or not ids["real"]:
        return []
    d = rows["combined"]
    names = dict(con.execute("select model_id, display_name from stg_models").fetchall())
    m = in_zoo(d["a"], d["b"], "real", ids) & ((d["relation"] == "sibling") | d["label"].astype(bool))
    out = ["| pair | relation | combined score (out of fold) | verdict |", "|---|---|---|---|"]
    order = np.argsort(-d["score"][m])
    for i in np.flatnonzero(m)[order]:
        verdict = "-" if fit_threshold is None else ("related" if d["score"][i] >= fit_threshold else "unrelated")
        out.append(f"| {names.get(d['a'][i], d['a'][i])} / {names.get(d['b'][i], d['b'][i])} | {d['relation'][i]} | "
                   f"{d['score'][i]:.4f} | {verdict} |")
    return out


def lineage_section(con) -> list[str]:
    if not _has(con, "lineage_recovery_quality"):
        return []
    cols = [c[0] for c in con.execute("describe lineage_recovery_quality").fetchall()]
    rows = con.execute("select * from lineage_recovery_quality order by 1").fetchall()
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + [
        "| " + " | ".join(_f(v) if isinstance(v, float) else str(v) for v in r) + " |" for r in rows]


def report(settings=None) -> str:
    settings = settings or get_settings()
    ids = zoo_ids(settings)
    with connect(settings) as con:
        rows = load_rows(con)
        thr = con.execute("select threshold from stg_provenance_model where is_current").fetchone() \
            if _has(con, "stg_provenance_model") else None
        thr = thr[0] if thr else None
        out = ["Generated by `python -m benchmarks.quality_report --write-docs docs/fingerprints.md` from the "
               "warehouse (do not edit by hand).", ""]
        for zoo, title in (("demo", "Demo zoo"), ("real", "Real zoo (GGUF models from PyPI packages and their derivatives)")):
            if not ids[zoo]:
                out += [f"### {title}", "", "Not built in this warehouse.", ""]
                continue
            out += [f"### {title}", ""] + zoo_section(zoo, rows, ids, thr) + [""]
        real = real_pairs_section(rows, ids, thr, con)
        if real:
            out += ["### Every real derivation and sibling pair", ""] + real + [""]
        lin = lineage_section(con)
        if lin:
            out += ["### Lineage recovery (`lineage_recovery_quality`)", ""] + lin + [""]
    out += ["### Published figures", "", "| system | reported |", "|---|---|"]
    out += [f"| {s} | {r} |" for s, r in PUBLISHED]
    return "\n".join(out) + "\n"


def write_docs(path: str, text: str) -> None:
    p = Path(path)
    doc = p.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path}: markers {BEGIN} / {END} not found")
    doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: f"{BEGIN}\n{text}{END}", doc, flags=re.S)
    p.write_text(doc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", metavar="MD", help="replace the marked section of this Markdown file")
    args = ap.parse_args(argv)
    text = report()
    print(text)
    if args.write_docs:
        write_docs(args.write_docs, text)
        print(f"wrote {args.write_docs}")


if __name__ == "__main__":
    main()

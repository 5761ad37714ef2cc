"""``fplake verdict A B`` and ``fplake provenance fit``: the calibrated provenance verdict.

    fplake verdict A B [--format pretty|json]
    fplake provenance fit [--target-fpr 0.01] [--features METHOD/METRIC ...] [--c C] [--format pretty|json]

The logic lives in :mod:`fingerprinting.provenance.verdict` and ``flows/provenance_flow.py``; this
module parses and prints. Wire it into ``fplake`` with :func:`add_verdict_parser` and :data:`HANDLERS`.
"""

from __future__ import annotations

import argparse
import json

FORMATS = ["pretty", "json"]


def add_verdict_parser(sub, common: argparse.ArgumentParser) -> None:
    """Add ``verdict`` and ``provenance fit`` to the sub-parsers ``sub`` (global options from ``common``)."""
    v = sub.add_parser("verdict", parents=[common],
                       help="is B derived from A (or A from B)? the calibrated verdict with per-method evidence")
    v.add_argument("a", metavar="A", help="model id or display name")
    v.add_argument("b", metavar="B", help="model id or display name")
    v.add_argument("--format", choices=FORMATS, default="pretty")
    p = sub.add_parser("provenance", parents=[common], help="fit the calibrated provenance verdict")
    ps = p.add_subparsers(dest="provenance_cmd", required=True)
    f = ps.add_parser("fit", parents=[common],
                      help="logistic regression on stored similarities, leave-one-family-out, threshold at a target FPR")
    f.add_argument("--target-fpr", type=float, default=0.01, help="false-positive rate of the threshold (default 0.01)")
    f.add_argument("--features", nargs="+", default=None, metavar="METHOD/METRIC",
                   help="features to combine (default: every method with similarities, its default metrics)")
    f.add_argument("--c", dest="C", type=float, default=None,
                   help="inverse L2 strength of the logistic regression (default 0.1)")
    f.add_argument("--format", choices=FORMATS, default="pretty")


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def cmd_verdict(args) -> int:
    from fingerprinting.provenance.verdict import verdict
    from flows.model_cli import _lake, _table

    r = verdict(_lake(args), args.a, args.b)
    if args.format == "json":
        print(json.dumps(r, indent=1, default=str))
        return 0
    a, b = r["a"], r["b"]
    print(f"{a['display_name']} ({a['model_id']}; {a['family']}/{a['model_type']})  vs  "
          f"{b['display_name']} ({b['model_id']}; {b['family']}/{b['model_type']})")
    cmp = ">=" if r["related"] else "<"
    print(f"verdict: {r['verdict'].upper()}  score {_f(r['score'])} {cmp} threshold {_f(r['threshold'])} "
          f"(FPR <= {_pct(r['target_fpr'])} out of fold; fit {r['fit_id']}, {r['fitted_at']})")
    _table("evidence per feature (contribution = coef x standardised similarity, summed into the log-odds)",
           ["feature", "config", "similarity", "source", "percentile among unrelated", "coef", "contribution"],
           [[e["feature"], e["config_hash"], _f(e["similarity"]) if e["similarity"] is not None
             else f"missing (imputed {_f(e['imputed_value'])})", e["source"],
             _f(e["percentile_among_unrelated"], 1), _f(e["coef"], 3), f"{e['contribution']:+.3f}"]
            for e in r["evidence"]])
    print(f"log-odds {r['logit']:+.3f} = intercept {r['intercept']:+.3f} + contributions; "
          f"model: OOF ROC-AUC {_f(r['roc_auc_oof'])}, TPR {_pct(r['tpr_at_fpr_oof'])} at the threshold")
    rec = r["recorded"]
    oof = f"; its out-of-fold score {_f(r['score_oof'])} (families {r['oof_excluded']} held out)" \
        if r["score_oof"] is not None else ""
    print(f"recorded: {rec['relation']} ({'related' if rec['label'] else 'unrelated'}){oof}")
    if r["n_missing"]:
        print(f"note: {r['n_missing']} feature(s) missing for this pair (no stored similarity or fingerprints); "
              "imputed with the unrelated pairs' median")
    return 0


def cmd_provenance(args) -> int:
    from fingerprinting.provenance.verdict import DEFAULT_C, check_target_fpr
    from flows.cli import _settings
    from flows.model_cli import _table

    check_target_fpr(args.target_fpr)  # before Prefect starts
    from flows.provenance_flow import provenance_flow

    settings = _settings(args)
    s = provenance_flow(settings=settings, features=args.features, target_fpr=args.target_fpr,
                        C=args.C if args.C is not None else DEFAULT_C)
    if args.format == "json":
        from dataclasses import asdict

        print(json.dumps(asdict(s), indent=1, default=str))
        return 0
    print(f"fit {s.fit_id}: {s.n_pairs} pairs ({s.n_positive} related, {s.n_negative} unrelated) over "
          f"{s.n_families} families; {s.cv}, {s.n_fits} fits" + (f", {s.n_unscored} pair(s) unscored" if s.n_unscored else ""))
    print(f"out of fold: ROC-AUC {_f(s.roc_auc_oof)}, TPR {_pct(s.tpr_at_fpr_oof)} at FPR <= {_pct(s.target_fpr)} "
          f"(threshold {_f(s.threshold)}, FPR {_pct(s.fpr_at_threshold_oof)}, precision {_pct(s.precision_oof)})")
    feats = {f["name"]: f for f in s.features}
    _table(f"coefficients (standardised features; intercept {s.intercept:+.3f})",
           ["feature", "config", "coef", "imputed pairs"],
           [[n, feats[n]["config_hash"], f"{c:+.3f}", s.n_imputed.get(n, 0)] for n, c in s.coefficients.items()])
    _table("out-of-fold quality per derivation type (sibling: every related pair vs sibling pairs only)",
           ["derivation", "related", "unrelated", "ROC-AUC", f"TPR @ {_pct(s.target_fpr)} FPR", "TPR @ thr",
            "FPR @ thr", "precision @ thr"],
           [[q["derivation_type"], q["n_positive"], q["n_negative"], _f(q["roc_auc"]), _pct(q["tpr_at_target_fpr"]),
             _pct(q["tpr_at_threshold"]), _pct(q["fpr_at_threshold"]), _pct(q["precision_at_threshold"])]
            for q in s.quality])
    print(f"wrote {s.written.get('provenance_scores', 0)} pair scores and the model to {settings.lake_root} "
          f"in {s.seconds:.1f} s; `fplake verdict A B` uses it")
    return 0


HANDLERS = {"verdict": cmd_verdict, "provenance": cmd_provenance}

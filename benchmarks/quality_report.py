"""Markdown tables of fingerprint quality on the demo zoo, read from the warehouse's marts.

    fplake demo && python -m benchmarks.quality_report

ROC-AUC of related (same family / lineage) vs unrelated pairs per method x
metric, then ROC-AUC and mean similarity per derivation type.
"""

from __future__ import annotations

from fingerprinting.settings import get_settings
from fingerprinting.warehouse import connect


def main() -> None:
    con = connect(get_settings())
    rows = con.execute("""
        select method, metric, roc_auc, tpr_at_target_fpr, mean_positive_similarity
        from provenance_quality where derivation_type = 'all' order by method, metric""").fetchall()
    neg = dict(con.execute("""select method || '/' || metric, avg(similarity) from pair_similarities
                              where not is_related group by all""").fetchall())
    print("| method | metric | ROC-AUC | TPR @ 1% FPR | mean related | mean unrelated |")
    print("|---|---|---|---|---|---|")
    for m, me, auc, tpr, pos in rows:
        print(f"| {m} | {me} | {auc:.3f} | {tpr:.3f} | {pos:.4f} | {neg[m + '/' + me]:.4f} |")
    types = [r[0] for r in con.execute("select distinct derivation_type from provenance_quality "
                                       "where derivation_type <> 'all' order by 1").fetchall()]
    print("\nROC-AUC (mean similarity) of each derivation type against unrelated pairs, metric l1:\n")
    print("| method | " + " | ".join(types) + " |")
    print("|---|" + "---|" * len(types))
    for (method,) in con.execute("select distinct method from provenance_quality order by 1").fetchall():
        cells = []
        for t in types:
            r = con.execute("select roc_auc, mean_positive_similarity, n_positive_pairs from provenance_quality "
                            "where method = ? and metric = 'l1' and derivation_type = ?", [method, t]).fetchone()
            cells.append(f"{r[0]:.2f} ({r[1]:.3f}, n={r[2]})" if r else "-")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""The memorization dashboard over hand-made marts in an in-memory DuckDB (values worked out by hand)."""

from __future__ import annotations

import json
import re

import duckdb
import numpy as np
import polars as pl
import pytest

from fingerprinting.reports.memorization import (
    calibration_bins,
    load_memorization_data,
    pr_curve,
    render_memorization_dashboard,
)

EVIL = "<script>alert('pwn')</script> & more"
PILE, PLANTED = "pile", "planted"


def _taxonomy_rows() -> list[dict]:
    """pythia-70m on the pile: 8 samples, 4 memorized (2 recitation, 1 reconstruction, 1 recollection)."""
    base = dict(family="pythia", prompt_perplexity=5.0, continuation_perplexity=3.0, max_frequency=100.0,
                min_frequency=1.0, median_frequency=10.0, p25_frequency=5.0, p75_frequency=50.0, incrementing=False,
                repeating=False, semantic_matches=0, textual_matches=0, code_score=0.1, is_code=False,
                code_label="natural_language", continuation_text="cont", rule_category=None)
    spec = [  # sample, score, duplicates, templating, category, sequence perplexity
        ("s1", 1.0, 10, False, "recitation", 1.1), ("s2", 1.0, 2, True, "reconstruction", 1.2),
        ("s3", 1.0, 1, False, "recollection", 1.3), ("s4", 0.5, 1, False, "not_memorized", 8.0),
        ("s5", 0.0, 1, False, "not_memorized", 20.0), ("s6", 0.0, 1, False, "not_memorized", 30.0),
        ("s7", 1 / 32, 1, False, "not_memorized", 25.0), ("s8", 1.0, 7, False, "recitation", 1.05)]
    rows = []
    for sid, score, dup, tmpl, cat, ppl in spec:
        rows.append({**base, "sample_id": sid, "model_id": "pythia-70m", "corpus": PILE,
                     "display_name": "Pythia 70M", "score": score, "memorized": score == 1.0, "duplicates": dup,
                     "is_templating": tmpl, "category": cat, "sequence_perplexity": ppl,
                     "mean_frequency": 20.0 + dup, "huffman_length": 4.0 - 0.1 * dup, "text": f"text {sid}",
                     "rule_category": cat if score == 1.0 else None})
    # pythia-1b on the pile: two samples, one recollected
    for sid, score, cat in (("s1", 1.0, "recollection"), ("s2", 0.25, "not_memorized")):
        rows.append({**base, "sample_id": sid, "model_id": "pythia-1b", "corpus": PILE, "display_name": "Pythia 1B",
                     "score": score, "memorized": score == 1.0, "duplicates": 1, "is_templating": False,
                     "category": cat, "sequence_perplexity": 3.0, "mean_frequency": 21.0, "huffman_length": 3.9,
                     "text": f"1b {sid}"})
    return rows


def make_marts(con, *, predictions: bool = True) -> None:
    tables = {
        "memorization_taxonomy": pl.DataFrame(_taxonomy_rows()),
        "taxonomy_shares": pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PILE, n_samples=8, n_memorized=4, memorization_rate=0.5,
                 n_recitation=2, n_reconstruction=1, n_recollection=1, share_recitation=0.5,
                 share_reconstruction=0.25, share_recollection=0.25, mean_score=0.56640625),
            dict(model_id="pythia-1b", corpus=PILE, n_samples=2, n_memorized=1, memorization_rate=0.5,
                 n_recitation=0, n_reconstruction=0, n_recollection=1, share_recitation=0.0,
                 share_reconstruction=0.0, share_recollection=1.0, mean_score=0.625),
            dict(model_id="pythia-70m", corpus=PLANTED, n_samples=40, n_memorized=3, memorization_rate=0.075,
                 n_recitation=3, n_reconstruction=0, n_recollection=0, share_recitation=1.0,
                 share_reconstruction=0.0, share_recollection=0.0, mean_score=0.2)]),
        "feature_correlations": pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PILE, feature=f, subset=s, n=8, pearson=0.1, spearman=sp, xi=0.05,
                 pearson_sql=0.1)
            for f, s, sp in (("duplicates", "all", 0.4321), ("duplicates", "recitation", 0.9),
                             ("huffman_length", "all", -0.4321), ("huffman_length", "code", None))]),
        "taxonomic_model_metrics": pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PILE, predictor=p, status="ok", n=8, positives=4, precision=prec,
                 recall=0.75, roc_auc=auc, pr_auc=ap, ece=0.05, n_train=24, lrt_statistic=12.5, lrt_df=10,
                 lrt_p_value=0.0123)
            for p, prec, auc, ap in (("baseline", 0.6, 0.71, 0.6543), ("taxonomic", 0.8, 0.8766, 0.812),
                                     ("recitation", 1.0, 0.99, 0.98))]),
        "taxonomic_model_weights": pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PILE, predictor=p, feature=f, coefficient=c, abs_rank=1)
            for p, f, c in (("baseline", "duplicates", 1.5), ("baseline", "huffman_length", -0.3),
                            ("recitation", "duplicates", 2.5), ("recollection", "huffman_length", -0.9))]),
        "planted_recovery_summary": pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PLANTED, kind=k, planted_count=c, n=10, memorized_share=s,
                 mean_score=0.5, mean_duplicates=float(c))
            for k, c, s in (("random", 0, 0.0), ("random", 1, 0.0), ("random", 10, 0.2), ("random", 100, 0.9))]),
        "memorization_examples": pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PILE, category=cat, rank=rank, sample_id=sid, text=text,
                 continuation_text="continues here", score=1.0, duplicates=dup, is_templating=False,
                 code_label="natural_language")
            for cat, rank, sid, text, dup in (("recitation", 1, "s1", EVIL, 10), ("recitation", 2, "s8", "second", 7),
                                              ("recitation", 3, "s9", "third-ranked example", 6),
                                              ("recollection", 1, "s3", "x" * 900, 1))]),
    }
    if predictions:
        y = [1, 0, 1, 0]
        tables["taxonomic_predictions"] = pl.DataFrame([
            dict(model_id="pythia-70m", corpus=PILE, sample_id=f"s{i}", predictor=pred, y_true=yi, p=pi)
            for pred, ps in (("baseline", [0.9, 0.8, 0.7, 0.1]), ("taxonomic", [0.95, 0.2, 0.9, 0.1]))
            for i, (yi, pi) in enumerate(zip(y, ps, strict=True))])
    for name, df in tables.items():
        con.register("df_tmp", df.to_arrow())
        con.execute(f"create table {name} as select * from df_tmp")
        con.unregister("df_tmp")


def _plot_json(html_text: str, div: str) -> dict:
    """The data of one plotly figure of the page (as handed to Plotly.newPlot)."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div) + r'",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"',
                  html_text, re.S)
    assert m, f"no figure {div}"
    return {"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))}


@pytest.fixture
def rendered(tmp_path):
    con = duckdb.connect()
    make_marts(con)
    out = render_memorization_dashboard(con, tmp_path / "out", max_examples=2)
    return out, open(out["dashboard"], encoding="utf-8").read()


def test_pr_curve_hand_values():
    # thresholds 0.9, 0.8, 0.7, 0.1 -> precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1
    rec, prec, ap = pr_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    assert rec.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert prec.tolist() == pytest.approx([1.0, 1.0, 0.5, 2 / 3, 0.5])
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # 0.8333, as scikit-learn's average_precision_score
    # tied scores form one threshold
    rec, prec, ap = pr_curve([1, 0], [0.5, 0.5])
    assert rec.tolist() == [0.0, 1.0] and prec.tolist() == [1.0, 0.5] and ap == 0.5
    assert np.isnan(pr_curve([0, 0], [0.1, 0.2])[2])


def test_calibration_bins_hand_values():
    bins = calibration_bins([0, 1, 0, 1, 1], [0.05, 0.15, 0.12, 0.95, 1.0])
    assert [b["bin"] for b in bins] == [0, 1, 9]
    assert bins[1]["mean_p"] == pytest.approx(0.135) and bins[1]["observed"] == 0.5 and bins[1]["n"] == 2
    assert bins[2]["mean_p"] == pytest.approx(0.975) and bins[2]["observed"] == 1.0


def test_load_reads_combos_histogram_and_boxes():
    con = duckdb.connect()
    make_marts(con)
    d = load_memorization_data(con)
    # pile before planted; 70m before 1b by model size
    assert [c.key for c in d.combos] == [("pythia-70m", PILE), ("pythia-1b", PILE), ("pythia-70m", PLANTED)]
    assert d.combos[0].label == "Pythia 70M · pile"
    hist = {(h["bin"], h["category"]): h["n"] for h in d.histogram if h["model_id"] == "pythia-70m"}
    # scores 1,1,1,1 -> bin 32 by category; 0.5 -> 16; 0, 0 -> 0; 1/32 -> 1
    assert hist == {(32, "recitation"): 2, (32, "reconstruction"): 1, (32, "recollection"): 1,
                    (16, "not_memorized"): 1, (0, "not_memorized"): 2, (1, "not_memorized"): 1}
    box = next(b for b in d.boxes if b["model_id"] == "pythia-70m" and b["category"] == "recitation"
               and b["feature"] == "duplicates")
    # recitation duplicates 10 and 7: median 8.5, mean 8.5, quartiles 7.75 and 9.25 (linear interpolation)
    assert (box["n"], box["med"], box["mean"], box["q1"], box["q3"]) == (2, 8.5, 8.5, 7.75, 9.25)
    assert d.missing == {}
    assert set(d.predictions) == {("pythia-70m", PILE)}
    assert d.predictions[("pythia-70m", PILE)]["baseline"]["ap"] == pytest.approx(5 / 6)


def test_dashboard_sections_and_numbers(rendered):
    out, text = rendered
    assert set(out) == {"dashboard"}
    assert text.count("<script type='text/javascript'>") == 1  # plotly inlined once
    assert not re.search(r"<script[^>]+src=", text)  # nothing fetched from the network
    for sid in ("shares", "metrics", "planted", "per-model"):
        assert f'<section id="{sid}">' in text
    # one block per model x corpus, chosen by the selector
    assert text.count('<div class="combo"') == 3
    assert '<option value="0" selected>Pythia 70M · pile</option>' in text
    # shares: the rate annotation and the table values
    shares = _plot_json(text, "fig-shares")
    assert [t["name"] for t in shares["data"]] == ["recitation", "reconstruction", "recollection"]
    assert shares["data"][0]["y"] == [0.5, 0.0, 1.0]
    assert any(a["text"] == "50.0% memorized<br>4 of 8" for a in shares["layout"]["annotations"])
    assert "0.5664" in text  # mean score in the shares table
    # colours: recitation is the same blue in the shares, histogram and weights
    blue = shares["data"][0]["marker"]["color"]
    hist = _plot_json(text, "fig-hist-0")
    assert next(t for t in hist["data"] if t["name"] == "recitation")["marker"]["color"] == blue
    weights = _plot_json(text, "fig-weights-0")
    assert next(t for t in weights["data"] if t["name"] == "recitation")["marker"]["color"] == blue
    assert [t["name"] for t in weights["data"]] == ["baseline", "recitation", "recollection"]
    # metrics table and LRT line
    assert "0.877" in text and "0.654" in text
    assert "χ² = 12.50, df = 10, p = 0.0123" in text
    # correlation heatmap: Spearman first, xi behind a button
    corr = _plot_json(text, "fig-corr-0")
    assert corr["data"][0]["y"] == ["duplicates", "huffman_length"]
    assert corr["data"][0]["x"] == ["all", "recitation", "code"]
    assert corr["data"][0]["z"][0][0] == 0.4321
    labels = [b["label"] for b in corr["layout"]["updatemenus"][0]["buttons"]]
    assert labels == ["Spearman", "xi (Chatterjee)", "Pearson"]
    # planted: log x, controls (planted 0 times) left out of the plot
    planted = _plot_json(text, "fig-planted")
    assert planted["layout"]["xaxis"]["type"] == "log"
    assert planted["data"][0]["x"] == [1, 10, 100]
    # PR and calibration curves from the predictions table
    pred = _plot_json(text, "fig-pred-0")
    assert pred["data"][0]["name"] == "baseline (AP 0.833)"
    # duplicates on a log axis in the box plots
    boxes = _plot_json(text, "fig-boxes-0")
    assert boxes["layout"]["yaxis"]["type"] == "log"


def test_examples_are_escaped_and_limited(rendered):
    _, text = rendered
    assert EVIL not in text
    assert "&lt;script&gt;alert(&#x27;pwn&#x27;)&lt;/script&gt; &amp; more" in text
    assert "second" in text and "third-ranked example" not in text  # max_examples=2
    assert "x" * 499 + "…" in text and "x" * 500 not in text  # long texts shortened


def test_missing_marts_are_named(tmp_path):
    con = duckdb.connect()
    path = render_memorization_dashboard(con, tmp_path)["dashboard"]
    text = open(path, encoding="utf-8").read()
    assert "not built yet: " in text
    for mart in ("taxonomy_shares", "taxonomic_model_metrics", "planted_recovery_summary"):
        assert f"not built: {mart} is not in the warehouse yet" in text
    assert "no model has memorization data yet" in text


def test_empty_and_partial_marts(tmp_path):
    con = duckdb.connect()
    make_marts(con, predictions=False)
    con.execute("delete from planted_recovery_summary")
    con.execute("drop table feature_correlations")
    con.execute("drop table memorization_taxonomy")
    # the box plots fall back to the profile mart
    con.execute("""create table taxonomy_feature_profile as select * from (values
        ('pythia-70m', 'pile', 'recitation', 'duplicates', 2, 8.5, 7.0, 7.75, 8.5, 9.25, 10.0))
        t(model_id, corpus, category, feature, n, mean, min, p25, median, p75, max)""")
    text = open(render_memorization_dashboard(con, tmp_path)["dashboard"], encoding="utf-8").read()
    assert "Planted ground truth: no planted corpus in this warehouse." in text
    assert "not built: feature_correlations is not in the warehouse yet" in text
    assert "Score histogram: not built: memorization_taxonomy" in text
    assert "whiskers = min-max" in text
    assert "per-sample predictions (table taxonomic_predictions) are not in the warehouse" in text
    assert "fig-shares" in text and "fig-metrics" in text


def test_a_mart_with_other_columns_is_reported(tmp_path):
    con = duckdb.connect()
    make_marts(con)
    con.execute("drop table taxonomic_model_weights")
    con.execute("create table taxonomic_model_weights as select 1 as unexpected")
    text = open(render_memorization_dashboard(con, tmp_path)["dashboard"], encoding="utf-8").read()
    assert "Weights: could not be read: BinderException" in text
    assert "fig-shares" in text

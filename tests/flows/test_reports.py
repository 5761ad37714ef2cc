"""compute_similarity_metrics on a hand-made external results file, plus report formats."""

import json

import pytest

pytestmark = pytest.mark.slow

# Two families, A = {a-base, a-chat}, B = {b-base, b-chat}; model 5 is absent from the info file.
MODELS = ["1", "2", "3", "4", "5"]
S = {("1", "2"): 0.9, ("3", "4"): 0.7, ("1", "3"): 0.2, ("1", "4"): 0.4, ("2", "3"): 0.3, ("2", "4"): 0.5}
INFO = [{"model_id": "1", "family": "A", "model_type": "Base", "display_name": "a-base"},
        {"model_id": "2", "family": "A", "model_type": "Chat", "display_name": "a-chat"},
        {"model_id": "3", "family": "B", "model_type": "Base", "display_name": "b-base"},
        {"model_id": "4", "family": "B", "model_type": "Chat", "display_name": "b-chat"}]


def _matrix():
    m = [[1.0] * 5 for _ in range(5)]
    for i, a in enumerate(MODELS):
        for j, b in enumerate(MODELS):
            if i != j:
                m[i][j] = S.get((a, b)) or S.get((b, a)) or 0.1
    return m


def _files(tmp_path):
    res = tmp_path / "similarity_matrices.json"
    res.write_text(json.dumps({"similarity_matrices": {"input_output": {"l1": {"matrix": _matrix(), "models": MODELS}}}}))
    info = tmp_path / "model_info.json"
    info.write_text(json.dumps(INFO))
    return str(res), str(info)


# Worked by hand: A (0.9, one pair), B (0.7, one pair); A - B: 0.2, 0.4, 0.3, 0.5 -> mean 0.35,
# population variance (0.15^2 + 0.05^2 + 0.05^2 + 0.15^2) / 4 = 0.0125; Base-Chat: 0.9, 0.7 -> 0.8, 0.01.
EXPECTED_SUMMARY = """\
INTRAFAMILY SIMILARITY (sorted by mean similarity):
Family               Min        Max        Mean       Variance   # Pairs
---------------------------------------------------------------------------
A                    0.9000     0.9000     0.9000     0.0000     1
B                    0.7000     0.7000     0.7000     0.0000     1

INTERFAMILY SIMILARITY (sorted by mean similarity):
Family Pair          Min        Max        Mean       Variance   # Pairs
---------------------------------------------------------------------------
A - B                0.2000     0.5000     0.3500     0.0125     4

TYPE PAIR SIMILARITY (sorted by mean similarity):
Type Pair            Min        Max        Mean       Variance   # Pairs
---------------------------------------------------------------------------
Base-Chat            0.7000     0.9000     0.8000     0.0100     2
"""


def test_external_results_end_to_end(prefect_harness, tmp_path, capsys):
    from flows.compute_similarity_metrics import main

    res, info = _files(tmp_path)
    out = tmp_path / "out"
    rc = main(["--results-file", res, "--model-info", info, "--method", "input_output", "--metric", "l1",
               "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "skipped 1 model(s) missing" in printed and ": 5" in printed
    assert EXPECTED_SUMMARY in printed
    assert EXPECTED_SUMMARY in (out / "input_output_l1_summary.txt").read_text()

    text = (out / "input_output_l1_pairs.txt").read_text().splitlines()
    intra = text.index("== INTRAFAMILY PAIRS (2) ==")
    assert text[intra + 1 : intra + 3] == ["a-base (A/Base) <-> a-chat (A/Chat): 0.9000",
                                          "b-base (B/Base) <-> b-chat (B/Chat): 0.7000"]
    inter = text.index("== INTERFAMILY PAIRS (4) ==")
    assert text[inter + 1] == "a-chat (A/Chat) <-> b-chat (B/Chat): 0.5000"
    assert text[inter + 4] == "a-base (A/Base) <-> b-base (B/Base): 0.2000"
    assert "-- Base-Chat (2) --" in text

    rep = json.loads((out / "input_output_l1_report.json").read_text())
    assert rep["n_models"] == 4 and rep["n_pairs"] == 6
    inter_row = rep["interfamily"][0]
    assert inter_row["variance"] == pytest.approx(0.0125) and inter_row["n_pairs"] == 4
    prov = {r["derivation_type"]: r for r in rep["provenance_quality"]}
    assert prov["all"]["roc_auc"] == pytest.approx(1.0)  # 0.9 and 0.7 beat every cross pair
    for name in ("dashboard", "heatmap", "quartiles", "type_pairs", "roc"):
        assert (out / f"input_output_l1_{name}.html").stat().st_size > 1000
    assert (out / "plotly.min.js").is_file()  # figures share one local copy, no CDN
    assert "cdn.plot.ly" not in (out / "input_output_l1_heatmap.html").read_text()


@pytest.mark.parametrize("mutate,expected", [
    (lambda r, i: r.write_text("{oops"), "not valid JSON"),
    (lambda r, i: r.write_text(json.dumps({"similarity_matrices": {"weight": {}}})), "method 'input_output' not in"),
    (lambda r, i: i.write_text(json.dumps({"model_id": "1"})), "must be a JSON array"),
    (lambda r, i: i.write_text(json.dumps([{"model_id": "1"}])), "lacks"),
    (lambda r, i: r.write_text(json.dumps({"similarity_matrices": {"input_output": {"l1": {"matrix": [[1]], "models": ["1", "2"]}}}})),
     "matrix must be 2 x 2"),
])
def test_malformed_inputs_exit_2(tmp_path, capsys, mutate, expected):
    from pathlib import Path

    from flows.compute_similarity_metrics import main

    res, info = _files(tmp_path)
    mutate(Path(res), Path(info))
    rc = main(["--results-file", res, "--model-info", info, "--output-dir", str(tmp_path / "o")])
    assert rc == 2
    assert expected in capsys.readouterr().err

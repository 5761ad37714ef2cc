"""``memorization_flow`` end to end on the planted-memorization model (tiny profile) and bad input."""

import json

import numpy as np
import pytest

from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, UnknownModelError, register_models
from fingerprinting.settings import Settings
from flows.memorization_flow import memorization_flow, prepare_planted


@pytest.fixture(scope="module")
def planted(tmp_path_factory, zoo_settings):
    root = tmp_path_factory.mktemp("mem")
    s = Settings(lake_root=str(root / "lake"), warehouse=str(root / "wh.duckdb"), reports_dir=str(root / "r"),
                 zoo_dir=zoo_settings.zoo_dir, global_registry=str(root / "g"), device="cpu")
    Lake(s.lake_root).init()
    name, corpus = prepare_planted.fn("tiny", s, False)
    return s, name, corpus


def test_planted_model_scores_and_recovers_ground_truth(planted, tmp_path):
    s, name, corpus = planted
    lake = Lake(s.lake_root)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama"}))  # no weights, no tokenizer
    register_models(lake, [ModelRecord("broken", str(broken), "X", "Base", "broken")])
    # a seeded random sample of the planted corpus's windows keeps the test quick
    opts = {"mode": "random", "max_samples": 400, "seed": 0}
    summary = memorization_flow.fn([name, "broken"], corpus, corpus=name, settings=s, progress=False, **opts)
    # the broken checkpoint gets one line naming it; the planted model's rows land
    assert list(summary.failures) == ["broken"] and "\n" not in summary.failures["broken"]
    n = summary.samples[name]
    assert n == 400 and lake.count("memorization_scores") == n
    scores = lake.read("memorization_scores").to_pylist()
    for r in scores[:50]:  # score = share of the 32 greedy tokens equal to the true continuation
        assert r["memorized"] == (r["score"] == 1.0)
    samples = {r["sample_id"]: r for r in lake.read("memorization_samples").to_pylist()}
    first = scores[0]
    truth = samples[first["sample_id"]]["token_ids"][32:]
    assert first["score"] == np.mean(np.asarray(first["generated"]) == np.asarray(truth))
    # ground truth: a planted text's first window, its continuation counted in the whole corpus
    gt = {(r["doc_id"]): r for r in lake.read("memorization_ground_truth").to_pylist()}
    feats = {r["sample_id"]: r for r in lake.read("memorization_features").to_pylist()}
    checked = 0
    for sid, smp in samples.items():
        g = gt.get(smp["doc_id"])
        if g and smp["offset"] == 0 and g["kind"] == "planted":
            assert feats[sid]["duplicates"] == g["planted_count"], g
            checked += 1
    assert checked >= 3
    # the planted model memorizes: the text planted 200 times comes back exactly
    by_doc = {samples[r["sample_id"]]["doc_id"]: r for r in scores if samples[r["sample_id"]]["offset"] == 0}
    top = [d for d, g in gt.items() if g["planted_count"] == 200 and g["kind"] == "planted" and d in by_doc]
    assert top and all(by_doc[d]["memorized"] for d in top)
    # the taxonomic model and its companions land for (model, corpus)
    res = {r["predictor"] for r in lake.read("memorization_model_results").to_pylist()}
    assert {"baseline", "taxonomic"} <= res
    assert lake.count("memorization_correlations") > 0 and lake.count("taxonomic_predictions") > 0
    # rerun: replaced, not duplicated
    memorization_flow.fn([name], corpus, corpus=name, settings=s, progress=False, **opts)
    assert lake.count("memorization_scores") == n
    # --use-existing: the stored scores are kept and the model is not loaded again
    import fingerprinting.loading as loading

    loads = loading.LOAD_COUNT
    again = memorization_flow.fn([name], corpus, corpus=name, settings=s, progress=False, use_existing=True)
    assert again.reused == [name] and again.samples[name] == n and loading.LOAD_COUNT == loads


def test_bad_input_is_refused_before_any_model_loads(planted, tmp_path):
    s, name, corpus = planted
    with pytest.raises(UnknownModelError, match="did you mean"):
        memorization_flow.fn([name + "x"], corpus, settings=s, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        memorization_flow.fn([name], str(tmp_path / "nope.txt"), settings=s, progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    summary = memorization_flow.fn([name], str(empty), settings=s, progress=False)
    assert "empty" in summary.failures[name]

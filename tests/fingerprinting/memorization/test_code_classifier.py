"""The shipped code-vs-prose classifier."""

from __future__ import annotations

import json

from fingerprinting.memorization.code_classifier import CLASSIFIER_DIR, load_classifier


def test_shipped_model_separates_code_and_prose():
    clf = load_classifier()
    code = ("static int parse_header(const char *buf, size_t len) {\n    if (len < 4)\n"
            "        return -EINVAL;\n    return buf[0] << 8 | buf[1];\n}\n")
    prose = ("The committee met on Tuesday to discuss the proposal. Most members agreed that "
             "the plan was sensible, although several asked for more time to read it.")
    p = clf.predict_proba([code, prose])
    assert p[0] > 0.8 and p[1] < 0.2


def test_shipped_metadata_reports_heldout_accuracy():
    meta = json.loads((CLASSIFIER_DIR / "code_classifier.json").read_text())
    assert meta["heldout_accuracy"] >= 0.9
    assert meta["holdout"].startswith("files")
    assert not list(CLASSIFIER_DIR.glob("*.pkl")) and not list(CLASSIFIER_DIR.glob("*.pickle"))

"""The text-features command's logic: file in, Parquet out, values worked out by hand."""

import json

import numpy as np
import polars as pl
import pytest

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.memorization.textfeatures import TextFeaturesError, features_file


class BraceClassifier:
    """A stand-in code classifier: 0.7 for texts with a brace, else 0.1 (so labels are known by hand)."""

    def predict_proba(self, texts):
        return np.array([0.7 if "{" in t else 0.1 for t in texts])


TEXTS = ["item_1, item_2, item_3", "aab", "abcabcabc", "hello world", "int f() { return 0; }"]


def _check_hand_values(out: pl.DataFrame):
    rows = {r["doc_id"]: r for r in out.iter_rows(named=True)}
    # words item_1, item_2, item_3: same text, numbers step +1
    assert rows["d0"]["incrementing"] and rows["d0"]["is_templating"] and not rows["d0"]["repeating"]
    # "aab": p(a) = 2/3 -> ceil(0.585) = 1 bit, p(b) = 1/3 -> ceil(1.585) = 2 bits: 2/3 + 2/3 = 4/3
    assert rows["d1"]["huffman_length"] == pytest.approx(4 / 3)
    assert not rows["d1"]["is_templating"]
    # "abcabcabc": period 3; three letters of 1/3 each -> 2 bits each
    assert rows["d2"]["repeating"] and rows["d2"]["is_templating"] and not rows["d2"]["incrementing"]
    assert rows["d2"]["huffman_length"] == pytest.approx(2.0)
    # "hello world", 11 chars: l 3/11 -> 2 bits, o 2/11 -> 3 bits, six singles 1/11 -> 4 bits: 36/11
    assert rows["d3"]["huffman_length"] == pytest.approx(36 / 11)
    assert not rows["d3"]["is_templating"]
    # the stand-in classifier: 0.7 >= 0.6 is "code", 0.1 < 0.475 natural language
    assert rows["d4"]["code_score"] == pytest.approx(0.7) and rows["d4"]["is_code"]
    assert rows["d4"]["code_label"] == "code"
    assert rows["d3"]["code_label"] == "natural_language" and not rows["d3"]["is_code"]


def test_parquet_input_keeps_columns_and_counts(tmp_path):
    src = tmp_path / "texts.parquet"
    pl.DataFrame({"doc_id": [f"d{i}" for i in range(5)], "offset": [0, 64, 128, 192, 256],
                  "text": TEXTS}).write_parquet(src)
    dst = tmp_path / "out" / "features.parquet"
    res = features_file(src, "text", dst, classifier=BraceClassifier(), batch_size=2)
    out = pl.read_parquet(dst)
    assert out.columns == ["doc_id", "offset", "text", "incrementing", "repeating", "is_templating",
                           "code_score", "is_code", "code_label", "huffman_length"]
    assert out["doc_id"].to_list() == ["d0", "d1", "d2", "d3", "d4"]  # row order kept across batches
    assert out["offset"].to_list() == [0, 64, 128, 192, 256]
    _check_hand_values(out)
    assert res["rows"] == 5 and res["texts"] == 5 and res["null_texts"] == 0
    assert res["batches"] == 3  # 2 + 2 + 1
    assert res["templating"] == 2 and res["code"] == 1
    assert res["output"] == str(dst)
    assert [p.name for p in dst.parent.iterdir()] == ["features.parquet"]  # no temporary left behind


def test_csv_input(tmp_path):
    src = tmp_path / "texts.csv"
    pl.DataFrame({"doc_id": [f"d{i}" for i in range(5)], "body": TEXTS}).write_csv(src)
    res = features_file(src, "body", tmp_path / "f.parquet", classifier=BraceClassifier())
    out = pl.read_parquet(tmp_path / "f.parquet")
    _check_hand_values(out)
    assert res["rows"] == 5 and res["batches"] == 1


def test_jsonl_input_with_null_texts(tmp_path):
    src = tmp_path / "texts.jsonl"
    lines = [{"doc_id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)] + [{"doc_id": "d5", "text": None}]
    src.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    res = features_file(src, "text", tmp_path / "f.parquet", classifier=BraceClassifier(), batch_size=4)
    out = pl.read_parquet(tmp_path / "f.parquet")
    _check_hand_values(out)
    last = out.row(5, named=True)
    assert last["doc_id"] == "d5"
    assert all(last[c] is None for c in ("incrementing", "repeating", "is_templating", "code_score", "is_code",
                                         "code_label", "huffman_length"))
    assert res["rows"] == 6 and res["texts"] == 5 and res["null_texts"] == 1


def test_missing_column_names_file_and_columns(tmp_path):
    src = tmp_path / "texts.csv"
    src.write_text("doc_id,content\nd0,hello\n")
    with pytest.raises(TextFeaturesError) as e:
        features_file(src, "text", tmp_path / "f.parquet", classifier=BraceClassifier())
    msg = str(e.value)
    assert str(src) in msg and "'text'" in msg and "doc_id, content" in msg
    assert isinstance(e.value, FingerprintLakeError)
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("content", ["", "text\n"])
def test_empty_file_is_a_clear_error(tmp_path, content):
    src = tmp_path / "texts.csv"
    src.write_text(content)
    with pytest.raises(TextFeaturesError, match="empty|no rows"):
        features_file(src, "text", tmp_path / "f.parquet", classifier=BraceClassifier())


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(TextFeaturesError, match="no such file"):
        features_file(tmp_path / "nope.parquet", "text", tmp_path / "f.parquet", classifier=BraceClassifier())
    (tmp_path / "texts.xlsx").write_text("x")
    with pytest.raises(TextFeaturesError, match="unknown file type"):
        features_file(tmp_path / "texts.xlsx", "text", tmp_path / "f.parquet", classifier=BraceClassifier())


def test_rerun_on_own_output_replaces_feature_columns(tmp_path):
    src = tmp_path / "texts.parquet"
    pl.DataFrame({"doc_id": [f"d{i}" for i in range(5)], "text": TEXTS}).write_parquet(src)
    features_file(src, "text", tmp_path / "f1.parquet", classifier=BraceClassifier())
    res = features_file(tmp_path / "f1.parquet", "text", tmp_path / "f2.parquet", classifier=BraceClassifier())
    assert "huffman_length" in res["replaced_columns"]
    assert pl.read_parquet(tmp_path / "f2.parquet").equals(pl.read_parquet(tmp_path / "f1.parquet"))


def test_shipped_classifier_runs(tmp_path):
    src = tmp_path / "texts.parquet"
    pl.DataFrame({"id": [1, 2], "text": ["for (i = 0; i < n; i++) { a[i] = b[i] * 2; }",
                                         "We walked along the river and talked about the weather."]}
                 ).write_parquet(src)
    features_file(src, "text", tmp_path / "f.parquet")
    out = pl.read_parquet(tmp_path / "f.parquet")
    assert out["is_code"].to_list() == [True, False]

"""Token files and id filtering, checked by hand."""

import pytest

from fingerprinting.tokens import TokenFileError, encode_lines, read_token_lines


class WordTokenizer:
    """A tokenizer with a fixed word -> ids table (stands in for any tokenizer's interface)."""

    table = {"a": [1], "bb": [5, 2], "ccc": [9]}

    def __call__(self, lines, add_special_tokens=False):
        assert add_special_tokens is False
        return {"input_ids": [[i for w in line.split() for i in self.table[w]] for line in lines]}


def test_dedupe_keeps_first_order_and_skips_blank(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("b\na\n\nb\n  \na\nc\n")
    assert read_token_lines(p) == ["b", "a", "c"]


def test_ids_outside_vocab_are_dropped():
    # vocab_size 6 keeps ids 0..5: "bb" -> [5, 2] stays, "ccc" -> [9] is dropped entirely
    assert encode_lines(WordTokenizer(), ["a bb", "ccc", "bb ccc a"], vocab_size=6) == [[1, 5, 2], [], [5, 2, 1]]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(TokenFileError, match="not found"):
        read_token_lines(tmp_path / "none.txt")
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(TokenFileError, match="no lines"):
        read_token_lines(tmp_path / "e.txt")

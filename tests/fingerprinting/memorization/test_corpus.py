"""Reading documents and cutting 64-token samples."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fingerprinting.memorization.corpus import (
    CorpusError,
    Document,
    make_samples,
    read_documents,
    sample_id,
    tokenizer_identity,
)


class WordTokenizer:
    """Whitespace tokenizer: id = position of the word in a growing vocabulary."""

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]}

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        return " ".join(inv[i] for i in ids)

    def get_vocab(self):
        return dict(self.vocab)


def test_read_formats(tmp_path):
    (tmp_path / "a.txt").write_text("hello world")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_text(json.dumps({"text": "one", "id": "x1"}) + "\n" +
                                              json.dumps({"text": "two"}) + "\n")
    pq.write_table(pa.table({"body": ["p1", "p2"]}), tmp_path / "c.parquet")
    docs = list(read_documents(tmp_path / "sub" / "b.jsonl"))
    assert [(d.doc_id, d.text) for d in docs] == [("x1", "one"), ("b.jsonl:2", "two")]
    docs = list(read_documents(tmp_path / "c.parquet", text_column="body"))
    assert [d.text for d in docs] == ["p1", "p2"]
    with pytest.raises(CorpusError, match="c.parquet.*missing column 'text'"):
        list(read_documents(tmp_path / "c.parquet"))


def test_errors_name_the_file_and_folder_continues(tmp_path):
    (tmp_path / "good.txt").write_text("fine text here")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match="empty.txt: file is empty"):
        list(read_documents(tmp_path / "empty.txt"))
    with pytest.raises(CorpusError, match="blob.bin: binary file"):
        list(read_documents(tmp_path / "blob.bin"))
    problems: list = []
    docs = list(read_documents(tmp_path, problems=problems))
    assert [d.doc_id for d in docs] == ["good.txt"]
    assert sorted(p[0].rsplit("/", 1)[1] for p in problems) == ["blob.bin", "empty.txt", "latin.txt"]
    with pytest.raises(CorpusError):
        list(read_documents(tmp_path))  # without problems the first bad file raises


def test_make_samples_windows_and_ids():
    tok = WordTokenizer()
    long_doc = " ".join(f"w{i}" for i in range(150))
    docs = [Document("d1", long_doc, "mem"), Document("short", "too short", "mem")]
    for d in docs:  # fix the vocabulary first, as a real tokenizer's is
        tok(d.text)
    s = make_samples(docs, tok, corpus="demo", stride=64)
    # 150 tokens: windows at 0 and 64 (128 + 64 > 150)
    assert s.offset.tolist() == [0, 64]
    assert s.token_ids.shape == (2, 64) and s.token_ids.dtype == np.int64
    assert s.token_ids[1, 0] == 64 and s.token_ids[1, -1] == 127
    assert s.skipped == [("short", "shorter than 64 tokens (2)")]
    assert len(s.corpus_tokens) == 152
    key = "\x1f".join(["demo", "d1", "64", tokenizer_identity(tok)])
    assert s.sample_id[1] == hashlib.sha1(key.encode()).hexdigest()[:16]
    assert s.sample_id[1] == sample_id("demo", "d1", 64, tokenizer_identity(tok))
    t = s.to_table()
    assert t.column_names == ["sample_id", "corpus", "doc_id", "offset", "token_ids", "text",
                              "prompt_text", "continuation_text"]
    assert t.column("token_ids").to_pylist()[0] == list(range(64))
    assert t.column("prompt_text")[0].as_py() == " ".join(f"w{i}" for i in range(32))
    assert t.schema.field("token_ids").type == pa.list_(pa.int64())


def test_random_mode_is_seeded():
    tok = WordTokenizer()
    docs = [Document("d", " ".join(f"w{i}" for i in range(400)), "m")]
    a = make_samples(docs, tok, corpus="c", stride=8, max_samples=5, mode="random", seed=3)
    b = make_samples(docs, tok, corpus="c", stride=8, max_samples=5, mode="random", seed=3)
    assert a.offset.tolist() == b.offset.tolist() and len(a) == 5
    assert all(o % 8 == 0 for o in a.offset)

"""Duplicate counting, frequency statistics, templating, Huffman length, matches."""

from __future__ import annotations

import numpy as np
import pytest

from fingerprinting.memorization import features as F


def _corpus_with_triple() -> tuple[np.ndarray, np.ndarray]:
    # a 70-token corpus with period 19: the 32-gram starting at 0 also starts at 19 and 38
    # (57 + 32 > 70 leaves no room for a fourth copy)
    base = np.array([5, 9, 2, 7, 7, 1, 3, 8, 4, 6, 0, 11, 12, 13, 14, 15, 16, 17, 18])
    corpus = np.resize(base, 70)
    return corpus, corpus[0:32].copy()


def test_duplicates_hand_corpus():
    corpus, gram = _corpus_with_triple()
    # by hand: starts 0, 19 and 38 hold the same window (period 19); 57 + 32 > 70
    other = corpus[1:33]  # starts 1 and 20; 39 + 32 = 71 > 70 -> 2
    absent = np.arange(200, 232)
    got = F.count_duplicates(corpus, np.stack([gram, other, absent]))
    assert got.tolist() == [3, 2, 0]


def test_duplicates_simple_reference():
    rng = np.random.default_rng(1)
    corpus = rng.integers(0, 4, size=500)  # small alphabet: many repeats of short grams
    queries = np.stack([corpus[i : i + 6] for i in (0, 10, 100, 300)] + [np.full(6, 7)])
    expected = [sum(np.array_equal(corpus[j : j + 6], q) for j in range(len(corpus) - 5))
                for q in queries]
    assert F.count_duplicates(corpus, queries).tolist() == expected


def test_collisions_are_verified():
    rng = np.random.default_rng(2)
    corpus = rng.integers(0, 50, size=3000)
    q = corpus[100:132].copy()
    corpus[2000:2032] = q
    queries = np.stack([q, corpus[500:532]])
    # modulus 3: almost every window shares a hash with some query
    hashes = F.window_hashes(corpus, 32, modulus=3)
    assert (hashes == F.row_hashes(queries[:1], modulus=3)[0]).sum() > 100
    assert F.count_duplicates(corpus, queries, modulus=3).tolist() == [2, 1]
    assert F.count_duplicates(corpus, queries).tolist() == [2, 1]


def test_out_of_core_equals_in_memory(tmp_path):
    rng = np.random.default_rng(3)
    corpus = rng.integers(0, 30, size=5000)
    q = corpus[10:42].copy()
    for s in (700, 1999, 2500, 4900 - 32):  # 1999 straddles a chunk boundary below
        corpus[s : s + 32] = q
    queries = np.stack([q, corpus[3000:3032], np.zeros(32, dtype=np.int64)])
    expected = F.count_duplicates(corpus, queries)
    assert expected[0] == 5
    chunks = np.split(corpus, [1000, 2013, 2020, 4000])
    assert F.count_duplicates_out_of_core(chunks, queries).tolist() == expected.tolist()
    got = F.count_duplicates_out_of_core(iter(chunks), queries, tmp_path, method="duckdb")
    assert got.tolist() == expected.tolist()
    got = F.count_duplicates_out_of_core(chunks, queries, modulus=5)
    assert got.tolist() == expected.tolist()
    # the in-memory path's internal blocks (views overlapping by width - 1) agree too
    assert F.count_duplicates(corpus, queries, block=777).tolist() == expected.tolist()


def test_token_frequency_stats_hand():
    corpus = np.array([1, 1, 1, 2, 2, 3])  # freq: 1->3, 2->2, 3->1, 4->0
    ids = np.array([[1, 2, 3, 4], [1, 1, 2, 2]])
    s = F.token_frequency_stats(corpus, ids)
    # row 0 frequencies [3, 2, 1, 0]; row 1 [3, 3, 2, 2]
    assert s["max_frequency"].tolist() == [3, 3]
    assert s["min_frequency"].tolist() == [0, 2]
    assert s["mean_frequency"].tolist() == [1.5, 2.5]
    assert s["median_frequency"].tolist() == [1.5, 2.5]
    # linear percentile of sorted [0,1,2,3]: p25 at rank 0.75 -> 0.75, p75 at rank 2.25 -> 2.25
    assert s["p25_frequency"].tolist() == pytest.approx([0.75, 2.0])
    assert s["p75_frequency"].tolist() == pytest.approx([2.25, 3.0])


def test_huffman_length():
    assert F.huffman_length("aab") == pytest.approx(4 / 3)
    assert F.huffman_length("aaaa") == 0.0
    assert F.huffman_length("abcd") == pytest.approx(2.0)
    assert F.huffman_length("") == 0.0


@pytest.mark.parametrize("text", [
    "item_1, item_2, item_3",
    "0x10 0x11 0x12",
    "a) b) c)",
    "row 5 row 7 row 9 row 11 row 13",
    "x 0x0a x 0x0b x 0x0c x 0x0d",
])
def test_incrementing_positive(text):
    assert F.is_incrementing(text)


@pytest.mark.parametrize("text", [
    "The quick brown fox jumps over the lazy dog.",
    "item_1, item_1, item_1",
    "1 2 4 8 16 32",
    "abcabcabc",
    "a) c) b) d)",
])
def test_incrementing_negative(text):
    assert not F.is_incrementing(text)


def test_letters_extension_can_be_turned_off():
    assert not F.is_incrementing("a) b) c)", letters=False)


@pytest.mark.parametrize("text,expected", [
    ("abcabcabc", True),
    ("abcabcab", True),  # cut mid-period is still periodic (p = 3 <= 4)
    ("ab ab ab ", True),
    ("=====", True),
    ("abcab", False),  # period 3 > 5 / 2
    ("The quick brown fox jumps over the lazy dog.", False),
    ("item_1, item_2, item_3", False),
])
def test_repeating(text, expected):
    assert F.is_repeating(text) is expected


def test_templating_and_token_versions():
    assert F.is_templating("abcabcabc") and F.is_templating("0x10 0x11 0x12")
    assert not F.is_templating("plain prose with nothing special in it")
    assert F.tokens_repeating([4, 5, 6, 4, 5, 6, 4])
    assert not F.tokens_repeating([4, 5, 6, 4, 5, 7, 4])
    assert F.tokens_incrementing([10, 11, 12, 13])
    assert not F.tokens_incrementing([10, 11, 13])
    vocab = {1: "item", 2: "_", 3: "7", 4: "8", 5: "9", 6: ","}
    seq = [1, 2, 3, 6, 1, 2, 4, 6, 1, 2, 5]
    assert F.tokens_incrementing(seq, decode=vocab.__getitem__)
    assert not F.tokens_incrementing(seq)


def test_levenshtein_matches_python_reference():
    rng = np.random.default_rng(4)
    for _ in range(20):
        a = "".join(rng.choice(list("abcd"), size=int(rng.integers(0, 40))))
        b = "".join(rng.choice(list("abcd"), size=int(rng.integers(0, 40))))
        assert F._levenshtein_numpy(a, b) == F._levenshtein_python(a, b)
        assert F._levenshtein_bitparallel(a, b) == F._levenshtein_python(a, b)
    assert F.levenshtein("kitten", "sitting") == 3


def test_semantic_textual_matches_hand():
    emb = np.array([
        [1.0, 0.0],
        [0.9, 0.1],  # cos with 0: 0.994
        [0.8, 0.6],  # cos with 0: 0.8 exactly (tie counts), with 1: ~0.86
        [0.0, 1.0],  # cos with 2: 0.6
    ])
    texts = ["the cat sat on the mat", "the cat sat on a mat", "something else entirely", "x"]
    sem, txt = F.semantic_textual_matches(emb, texts, threshold=0.8, max_edit=0.3, block=2)
    assert sem.tolist() == [2, 2, 2, 0]
    # only texts 0 and 1 are near-copies: edit distance 3 ('the' -> 'a') over 22 chars
    assert txt.tolist() == [1, 1, 0, 0]


def test_text_features_columns():
    t = F.text_features(["for (i = 0; i < n; i++) { a[i] = b[i] * 2; }",
                         "item_1, item_2, item_3, item_4, item_5",
                         "We walked along the river and talked about the weather for a while."])
    assert t.column_names == ["incrementing", "repeating", "is_templating", "code_score",
                              "is_code", "code_label", "huffman_length"]
    d = t.to_pydict()
    assert d["incrementing"] == [False, True, False]
    assert d["is_code"][0] and not d["is_code"][2]
    assert all(0 <= s <= 1 for s in d["code_score"])

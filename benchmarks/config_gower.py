"""Config Gower speed: blocked all-pairs and exact top-k vs per-pair Python and the `gower` package.

    python -m benchmarks.config_gower [--n 14557] [--topk-n 1000000] [--topk-rows 2048]
                                      [--topk-full] [--sample 20000] [--gower-pkg-n 3000]

Configs are synthesised from the real transformers catalogue: every feature is
sampled (with its missing values) from the feature rows of
``catalogue_configs()``. Then:

1. all pairs i < j over ``--n`` configs with :func:`all_pairs` (consumed, not kept);
2. the per-pair Python reference (:func:`drift.gower_pair`, the notebook's way)
   on ``--sample`` random pairs, extrapolated to all pairs;
3. the PyPI ``gower`` package (if installed) on ``--gower-pkg-n`` rows, extrapolated
   to its full n x n matrix for ``--n`` (it computes both triangles);
4. exact top-10 over ``--topk-n`` configs: ``--topk-rows`` query rows against all
   of them, projected to every row (``--topk-full`` runs them all).

Peak RSS: per phase from the kernel's high-water mark (reset between phases),
and the process maximum from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time

import numpy as np

from benchmarks._util import peak_rss_mb, reset_peak_rss
from fingerprinting.configs.drift import feature_ranges, gower_pair
from fingerprinting.configs.features import (
    FEATURE_KINDS,
    FEATURES,
    catalogue_configs,
    extract_features,
)
from fingerprinting.configs.gower import FeatureMatrix, all_pairs, encode_columns, gower_topk


def catalogue_rows() -> list[dict]:
    return [extract_features(cfg, mt)[0] for mt, cfg, err in catalogue_configs() if cfg is not None]


def synthesise(pool: list[dict], n: int, seed: int) -> dict[str, np.ndarray]:
    """n rows, each feature drawn independently from its catalogue distribution."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in FEATURES:
        values = [r[f] for r in pool]
        pick = rng.integers(0, len(values), n)
        if FEATURE_KINDS[f] == "numeric":
            arr = np.array([np.nan if v is None else float(v) for v in values])
            cols[f] = arr[pick]
        else:
            cols[f] = np.array(values, dtype=object)[pick]
    return cols


def rows_from_columns(cols: dict[str, np.ndarray], idx: list[int]) -> list[dict]:
    out = []
    for i in idx:
        row = {}
        for f in FEATURES:
            v = cols[f][i]
            if FEATURE_KINDS[f] == "numeric":
                v = None if np.isnan(v) else float(v)
            row[f] = v
        out.append(row)
    return out


def rss_now_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_all_pairs(A: FeatureMatrix, variant: str) -> tuple[float, int, float]:
    reset_peak_rss()
    t0 = time.perf_counter()
    n_pairs = 0
    checksum = 0.0
    for _i, _j, d in all_pairs(A, variant=variant):
        n_pairs += d.size
        checksum += float(np.nansum(d[:1]))  # touch the output
    return time.perf_counter() - t0, n_pairs, peak_rss_mb()


def bench_python(rows: list[dict], ranges: dict, n_pairs_total: int, sample: int) -> float:
    rnd = random.Random(0)
    pairs = [(rnd.randrange(len(rows)), rnd.randrange(len(rows))) for _ in range(sample)]
    t0 = time.perf_counter()
    for i, j in pairs:
        gower_pair(rows[i], rows[j], ranges)
    per_pair = (time.perf_counter() - t0) / sample
    return per_pair


def bench_gower_pkg(A: FeatureMatrix, m: int) -> float | None:
    try:
        import gower  # optional: pip install gower (needs pandas)
    except ImportError:
        return None
    m = min(m, A.n)
    X = np.concatenate([A.num[:m], A.cat[:m].astype(np.float64)], axis=1)
    cat = np.array([False] * A.num.shape[1] + [True] * A.cat.shape[1])
    t0 = time.perf_counter()
    gower.gower_matrix(X, cat_features=cat)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=14557, help="configs for all-pairs")
    ap.add_argument("--topk-n", type=int, default=1_000_000, help="configs for exact top-k")
    ap.add_argument("--topk-rows", type=int, default=2048, help="query rows timed (0 = all)")
    ap.add_argument("--topk-full", action="store_true", help="answer every row, no projection")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=20000, help="pairs timed with the Python loop")
    ap.add_argument("--gower-pkg-n", type=int, default=3000, help="rows given to the gower package")
    ap.add_argument("--variant", default="standard", choices=["standard", "max"])
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}")

    t0 = time.perf_counter()
    pool = catalogue_rows()
    print(f"catalogue: {len(pool)} default configs -> features in {time.perf_counter() - t0:.1f} s")

    # ---- all pairs
    cols = synthesise(pool, args.n, seed=0)
    A = encode_columns(cols, n=args.n)
    n_pairs = args.n * (args.n - 1) // 2
    print(f"RSS before all-pairs (interpreter, transformers, data): {rss_now_mb():.0f} MB")
    t_all, got, rss_all = bench_all_pairs(A, args.variant)
    assert got == n_pairs, (got, n_pairs)
    print(
        f"\nall-pairs Gower ({args.variant}), n={args.n:,}: {n_pairs:,} pairs in {t_all:.2f} s "
        f"({n_pairs / t_all / 1e6:.0f} M pairs/s), peak RSS {rss_all:.0f} MB"
    )
    rows = rows_from_columns(cols, list(range(args.n)))
    ranges = feature_ranges(rows)
    per_pair = bench_python(rows, ranges, n_pairs, args.sample)
    t_py = per_pair * n_pairs
    print(
        f"per-pair Python reference: {per_pair * 1e6:.1f} us/pair on {args.sample:,} pairs "
        f"-> {t_py:,.0f} s projected for all pairs; speed-up x{t_py / t_all:,.0f}"
    )
    t_nb = 90e-6 * n_pairs
    print(
        f"notebook's per-pair function (~90 us/pair): {t_nb:,.0f} s -> speed-up x{t_nb / t_all:,.0f}"
    )
    t_pkg = bench_gower_pkg(A, args.gower_pkg_n)
    if t_pkg is None:
        print("gower package: not installed (pip install gower pandas)")
    else:
        m = min(args.gower_pkg_n, args.n)
        proj = t_pkg * (args.n / m) ** 2
        print(
            f"gower package 0.1.x: {m:,} x {m:,} matrix in {t_pkg:.2f} s -> {proj:,.0f} s "
            f"projected for {args.n:,} x {args.n:,} (it fills both triangles); "
            f"speed-up x{proj / t_all:,.1f} (per computed pair x{proj / 2 / t_all:,.1f})"
        )

    # ---- top-k
    reset_peak_rss()
    t0 = time.perf_counter()
    cols = synthesise(pool, args.topk_n, seed=1)
    B = encode_columns(cols, n=args.topk_n)
    del cols
    t_enc = time.perf_counter() - t0
    print(f"\ntop-{args.k}, n={args.topk_n:,}: synthesise + encode {t_enc:.1f} s")
    rows_q = (
        args.topk_n if (args.topk_full or args.topk_rows <= 0) else min(args.topk_rows, args.topk_n)
    )
    reset_peak_rss()
    t0 = time.perf_counter()
    idx, dist = gower_topk(B, args.k, variant=args.variant, row_range=(0, rows_q))
    t_q = time.perf_counter() - t0
    rss_q = peak_rss_mb()
    proj = t_q * args.topk_n / rows_q
    pairs_s = rows_q * args.topk_n / t_q
    print(
        f"exact top-{args.k}: {rows_q:,} query rows x {args.topk_n:,} in {t_q:.1f} s "
        f"({pairs_s / 1e6:.0f} M pairs/s), peak RSS {rss_q:.0f} MB; "
        + (
            "all rows done"
            if rows_q == args.topk_n
            else f"projected for all {args.topk_n:,} rows: {proj:,.0f} s ({proj / 3600:.1f} h)"
        )
    )
    print(
        f"   sample row 0: neighbours {idx[0, :5].tolist()} distances {np.round(dist[0, :5], 4).tolist()}"
    )
    print(f"\nprocess peak RSS (getrusage ru_maxrss): {maxrss_mb():.0f} MB")


if __name__ == "__main__":
    main()

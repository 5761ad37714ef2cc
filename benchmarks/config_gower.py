"""Config Gower speed: blocked all-pairs and exact top-k vs per-pair Python and the `gower` package.

    python -m benchmarks.config_gower [--n 14557] [--topk-n 1000000] [--topk-rows 2048]
                                      [--topk-full] [--sample 20000] [--gower-pkg-n 3000]
                                      [--dup-share lineage|FLOAT]

Configs are synthesised from the real transformers catalogue: every feature is
sampled (with its missing values) from the feature rows of
``catalogue_configs()``. Then:

1. all pairs i < j over ``--n`` configs with :func:`all_pairs` (consumed, not kept);
2. the per-pair Python reference (:func:`drift.gower_pair`, the notebook's way)
   on ``--sample`` random pairs, extrapolated to all pairs;
3. the PyPI ``gower`` package (if installed) on ``--gower-pkg-n`` rows, extrapolated
   to its full n x n matrix for ``--n`` (it computes both triangles);
4. exact top-10 over ``--topk-n`` configs, a share ``--dup-share`` of which are exact
   copies of an earlier config (as fine-tunes keep their parent's config; default:
   the share of parent -> child edges of the real Hub lineage sample in
   ``helper_data/hf_lineage`` whose model_type and parameter count are both known
   and identical). The plain path (``dedup=False``) answers ``--topk-rows`` query
   rows against all configs, projected to every row; the deduplicated path
   (default of :func:`gower_topk`) answers the same rows (checked equal), and is
   projected from them to all rows by the number of unique vectors U, or run
   in full with ``--topk-full``.

Peak RSS: per phase from the kernel's high-water mark (reset between phases),
and the process maximum from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from pathlib import Path

import numpy as np

from benchmarks._util import peak_rss_mb, reset_peak_rss
from fingerprinting.configs.drift import feature_ranges, gower_pair
from fingerprinting.configs.features import (
    FEATURE_KINDS,
    FEATURES,
    catalogue_configs,
    extract_features,
)
from fingerprinting.configs.gower import (
    FeatureMatrix,
    all_pairs,
    duplicate_groups,
    encode_columns,
    gower_topk,
)

LINEAGE_DIR = Path(__file__).resolve().parents[1] / "helper_data" / "hf_lineage"


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


def lineage_dup_share() -> tuple[float, int]:
    """Share of lineage edges whose parent and child have the same model_type and parameter
    count, among edges where both are known (the crawl holds no other config field)."""
    import pandas as pd

    models = pd.read_parquet(LINEAGE_DIR / "hf_trees_models.parquet").set_index("model_id")
    edges = pd.read_csv(LINEAGE_DIR / "hf_trees_edges.csv")
    cols = ["model_type", "safetensors_total_params"]
    par = models.reindex(edges.parent_id)[cols].reset_index(drop=True)
    chi = models.reindex(edges.child_id)[cols].reset_index(drop=True)
    known = par.notna().all(axis=1) & chi.notna().all(axis=1)
    same = (par == chi).all(axis=1) & known
    return float(same.sum() / known.sum()), int(known.sum())


def add_duplicates(cols: dict[str, np.ndarray], share: float, seed: int) -> np.ndarray:
    """Make a share of rows exact copies of a uniformly random earlier row (a fine-tune
    keeping its parent's config); copies of copies chain. Returns the source row per row."""
    n = len(next(iter(cols.values())))
    rng = np.random.default_rng(seed)
    parent = (rng.random(n) * np.arange(n)).astype(np.int64)
    src = np.arange(n)
    dup = rng.random(n) < share
    dup[0] = False
    src[dup] = parent[dup]
    while True:  # pointer jumping to the original (parents are earlier rows)
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt
    for f in cols:
        cols[f] = cols[f][src]
    return src


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
    ap.add_argument(
        "--dup-share",
        default="lineage",
        help="share of top-k rows that copy an earlier row: a number, or 'lineage' (from the "
        "Hub lineage sample)",
    )
    ap.add_argument("--check-rows", type=int, default=256, help="rows compared in float64")
    ap.add_argument("--skip-all-pairs", action="store_true", help="only the top-k part")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}")

    t0 = time.perf_counter()
    pool = catalogue_rows()
    print(f"catalogue: {len(pool)} default configs -> features in {time.perf_counter() - t0:.1f} s")

    # ---- all pairs
    if not args.skip_all_pairs:
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
    if args.dup_share == "lineage":
        share, n_known = lineage_dup_share()
        print(
            f"\nHub lineage sample: {share:.1%} of {n_known:,} parent -> child edges with known "
            "model_type and parameter count keep both unchanged -> duplicate share"
        )
    else:
        share = float(args.dup_share)
    reset_peak_rss()
    t0 = time.perf_counter()
    cols = synthesise(pool, args.topk_n, seed=1)
    add_duplicates(cols, share, seed=2)
    B = encode_columns(cols, n=args.topk_n)
    del cols
    t_enc = time.perf_counter() - t0
    print(
        f"\ntop-{args.k}, n={args.topk_n:,}, {share:.0%} of rows copies of an earlier row: "
        f"synthesise + encode {t_enc:.1f} s"
    )
    t0 = time.perf_counter()
    groups = duplicate_groups(B)
    t_grp = time.perf_counter() - t0
    U = groups.n_unique
    print(
        f"duplicate groups: U = {U:,} unique vectors ({U / args.topk_n:.1%} of rows), largest group "
        f"{int(groups.counts.max()):,} rows, {int((groups.counts > 1).sum()):,} groups with copies; "
        f"grouping {t_grp:.1f} s"
    )
    rows_q = (
        args.topk_n if (args.topk_full or args.topk_rows <= 0) else min(args.topk_rows, args.topk_n)
    )
    # plain path on the sample rows (the whole population when --topk-full)
    reset_peak_rss()
    t0 = time.perf_counter()
    idx_p, dist_p = gower_topk(B, args.k, variant=args.variant, row_range=(0, rows_q), dedup=False)
    t_q = time.perf_counter() - t0
    rss_q = peak_rss_mb()
    proj_plain = t_q * args.topk_n / rows_q
    print(
        f"exact top-{args.k}, plain path: {rows_q:,} query rows x {args.topk_n:,} in {t_q:.1f} s "
        f"({rows_q * args.topk_n / t_q / 1e6:.0f} M pairs/s), peak RSS {rss_q:.0f} MB; "
        + (
            "all rows done"
            if rows_q == args.topk_n
            else f"projected for all {args.topk_n:,} rows: {proj_plain:,.0f} s "
            f"({proj_plain / 3600:.1f} h)"
        )
    )
    # deduplicated path: the same rows, then (optionally) every row
    reset_peak_rss()
    t0 = time.perf_counter()
    idx_d, dist_d = gower_topk(B, args.k, variant=args.variant, row_range=(0, rows_q))
    t_d = time.perf_counter() - t0
    rss_d = peak_rss_mb()
    n_q = int(np.unique(groups.inverse[:rows_q]).size)
    n_same = int((idx_d == idx_p).all(axis=1).sum())
    both = np.isfinite(dist_p) & np.isfinite(dist_d)
    max_dd = float(np.abs(dist_p - dist_d)[both].max(initial=0.0))
    print(
        f"exact top-{args.k}, dedup path: the same {rows_q:,} rows ({n_q:,} unique vectors x "
        f"{U:,}) in {t_d:.1f} s incl. grouping, peak RSS {rss_d:.0f} MB"
    )
    print(
        f"   float32 check vs plain path: identical neighbour lists on {n_same:,} of {rows_q:,} "
        f"rows; max |distance difference| {max_dd:.1e} (float32 rounding of a pair depends on "
        "its tile, so exact ties may swap, as between block sizes of the plain path)"
    )
    if args.check_rows > 0:
        m = min(args.check_rows, rows_q)
        p64 = gower_topk(B, args.k, variant=args.variant, row_range=(0, m), dedup=False,
                         dtype=np.float64)  # fmt: skip
        d64 = gower_topk(B, args.k, variant=args.variant, row_range=(0, m), dtype=np.float64)
        fin = np.isfinite(p64[1])
        print(
            f"   float64 check on {m:,} rows: identical neighbours {np.array_equal(p64[0], d64[0])}, "
            f"distances bit-identical {np.array_equal(p64[1], d64[1])}, max |difference| "
            f"{float(np.abs(p64[1] - d64[1])[fin].max(initial=0.0)):.1e}"
        )
    if rows_q == args.topk_n:
        t_dedup, how = t_d, "measured"
    else:
        # grouping once, then the unique rows' share of the U x U search
        t_dedup = t_grp + max(0.0, t_d - t_grp) * U / n_q
        how = "projected from the sample"
    print(
        f"exact top-{args.k} over all {args.topk_n:,} rows with dedup: {t_dedup:,.0f} s "
        f"({t_dedup / 60:.1f} min, {how}); plain path {proj_plain:,.0f} s "
        f"({proj_plain / 3600:.1f} h) -> speed-up x{proj_plain / t_dedup:.1f} "
        f"(pairs ratio (n / U)^2 = {(args.topk_n / U) ** 2:.1f})"
    )
    print(
        f"   sample row 0: neighbours {idx_d[0, :5].tolist()} "
        f"distances {np.round(dist_d[0, :5], 4).tolist()}"
    )
    print(f"\nprocess peak RSS (getrusage ru_maxrss): {maxrss_mb():.0f} MB")


if __name__ == "__main__":
    main()

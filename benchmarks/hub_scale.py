"""Hub-scale similarity stage: exact family statistics + top-k neighbours without N^2 storage.

    python -m benchmarks.hub_scale [--n 100000] [--families 500] [--dim 64] [--k 10]
                                   [--metric cosine] [--check 5000] [--device cpu|cuda] [--threads 2]

Data: synthetic fingerprints, ``--families`` families of equal size, each a
centre plus 10 branches plus per-model noise (absolute values, like spectra).

* sweep: ``fingerprinting.scale.aggregates.sweep`` over all N(N-1)/2 pairs:
  per family pair count / min / max / mean / variance / histogram sketch, exact
  top-k per model and the intrafamily pairs (what ``compute_similarities``
  keeps at scale); time and memory = peak RSS (VmHWM, reset before the phase)
  minus the RSS before it (the data and libraries);
* check: the same sweep on a random ``--check``-model subset against a
  brute-force pass (full matrix, numpy statistics per family pair, top-k by a
  lexicographic sort of every row): max differences, counts, neighbour equality;
* straightforward approach (store every pair, then group by): measured on the
  subset (pairs as int32/int32/float64 arrays, then a sort-based group by;
  memory = tracemalloc's peak of numpy's buffers) and extrapolated to N by the
  pair count; ratios vs the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from benchmarks._util import peak_rss_mb, reset_peak_rss, table
from fingerprinting.scale.aggregates import sweep


def rss_mb() -> float:
    """Current resident set size (VmRSS) in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def synthetic(n: int, families: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, family) with families of equal size: centre -> 10 branches -> models."""
    rng = np.random.default_rng(seed)
    fam = np.arange(n) % families
    br = rng.integers(0, 10, n)
    centre = rng.normal(size=(families, dim)) * 3
    branch = rng.normal(size=(families, 10, dim))
    X = np.abs(centre[fam] + branch[fam, br] + 0.3 * rng.normal(size=(n, dim)))
    return X, fam


def brute_force(X: np.ndarray, fam: np.ndarray, metric: str, k: int):
    """Full matrix, then numpy statistics per family pair and top-k by sorting rows (the reference)."""
    from fingerprinting.metrics import pairwise_pairs

    n = len(X)
    i, j, v = pairwise_pairs(X, metric)
    a, b = np.minimum(fam[i], fam[j]), np.maximum(fam[i], fam[j])
    key = a * (fam.max() + 1) + b
    order = np.argsort(key, kind="stable")
    key, v_sorted = key[order], v[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    stats = {}
    for s, e in zip(starts, np.r_[starts[1:], len(key)], strict=True):
        g = v_sorted[s:e]
        stats[int(key[s])] = (g.min(), g.max(), g.mean(), g.var(), e - s)
    S = np.full((n, n), -np.inf)
    S[i, j] = v
    S[j, i] = v
    cols = np.broadcast_to(np.arange(n), S.shape)
    top = np.lexsort((cols, -S), axis=1)[:, :k]
    return stats, top, len(v)


def straightforward(X: np.ndarray, fam: np.ndarray, metric: str) -> float:
    """Store every pair (int32, int32, float64), then group by family pair (sort + reduceat): seconds."""
    from fingerprinting.metrics import iter_pairwise_blocks

    t0 = time.perf_counter()
    rows, cols, vals = [], [], []
    for i0, j0, blk in iter_pairwise_blocks(X, metric):
        ii, jj = np.nonzero(np.triu(np.ones(blk.shape, bool), 1 if i0 == j0 else -blk.shape[0]))
        rows.append((ii + i0).astype(np.int32))
        cols.append((jj + j0).astype(np.int32))
        vals.append(blk[ii, jj])
    i, j, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    key = np.minimum(fam[i], fam[j]) * (fam.max() + 1) + np.maximum(fam[i], fam[j])
    order = np.argsort(key, kind="stable")
    key, v = key[order], v[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    np.add.reduceat(v, starts), np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
    np.add.reduceat(v * v, starts)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--families", type=int, default=500)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", default="cosine")
    ap.add_argument("--check", type=int, default=5000, help="subset checked against brute force")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-intra", action="store_true", help="do not keep the intrafamily pairs")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--progress", action="store_true", help="progress bar over the tiles")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    X, fam = synthetic(args.n, args.families, args.dim)
    n_pairs = args.n * (args.n - 1) // 2

    start = rss_mb()
    reset_peak_rss()
    t0 = time.perf_counter()
    res = sweep(X, args.metric, groups=fam, n_groups=args.families, k=args.k,
                pairs="none" if args.no_intra else "intra", tile=args.tile, device=args.device,
                progress=args.progress)
    sweep_s = time.perf_counter() - t0
    sweep_rss = peak_rss_mb()
    sweep_growth = sweep_rss - start
    agg = res.aggregates
    assert int(agg.n.sum()) == n_pairs
    print(f"sweep N={args.n:,}: {sweep_s:.1f} s, {res.tiles} tiles, peak RSS {sweep_rss:.0f} MB, "
          f"{sweep_growth:.0f} MB above the {start:.0f} MB before (data + libraries)", flush=True)

    # exactness on a subset against brute force
    rng = np.random.default_rng(1)
    sub = np.sort(rng.choice(args.n, min(args.check, args.n), replace=False))
    Xs, fs = X[sub], fam[sub]
    intra_kept = 0 if res.pairs is None else len(res.pairs[2])
    res.pairs = None
    t0 = time.perf_counter()
    rs = sweep(Xs, args.metric, groups=fs, n_groups=args.families, k=args.k, tile=args.tile, device=args.device)
    sub_sweep_s = time.perf_counter() - t0
    ref, ref_top, sub_pairs = brute_force(Xs, fs, args.metric, args.k)
    got = rs.aggregates
    keys = got.group_a * args.families + got.group_b
    assert set(keys.tolist()) == set(ref)
    diffs = np.array([[abs(got.min[r] - ref[kk][0]), abs(got.max[r] - ref[kk][1]), abs(got.mean[r] - ref[kk][2]),
                       abs(got.variance[r] - ref[kk][3])] for r, kk in enumerate(keys.tolist())])
    counts_ok = all(int(got.n[r]) == ref[kk][4] for r, kk in enumerate(keys.tolist()))
    nn_equal = float((rs.neighbors.idx == ref_top).all(1).mean())
    print(f"check on {len(sub):,} models: max |diff| min {diffs[:, 0].max():.1e} max {diffs[:, 1].max():.1e} "
          f"mean {diffs[:, 2].max():.1e} variance {diffs[:, 3].max():.1e}; counts equal {counts_ok}; "
          f"top-{args.k} rows equal {nn_equal:.4f}", flush=True)

    import tracemalloc  # numpy reports its buffers to tracemalloc; RSS would include memory freed earlier

    tracemalloc.start()
    sf_s = straightforward(Xs, fs, args.metric)
    sf_rss = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    scale = n_pairs / sub_pairs
    sf_extrap_s = sf_s * scale
    out = {
        "N": args.n, "families": args.families, "dim": args.dim, "metric": args.metric, "k": args.k,
        "device": args.device, "threads": torch.get_num_threads(), "pairs": n_pairs, "tiles": res.tiles,
        "sweep_s": round(sweep_s, 1), "sweep_peak_rss_mb": round(sweep_rss),
        "sweep_rss_growth_mb": round(sweep_growth), "pairs_per_s": round(n_pairs / sweep_s),
        "intra_pairs_kept": intra_kept,
        "check_models": len(sub), "check_max_abs_diff": float(diffs.max()), "check_counts_equal": counts_ok,
        "check_topk_rows_equal": nn_equal, "check_sweep_s": round(sub_sweep_s, 2),
        "straightforward_check_s": round(sf_s, 2), "straightforward_check_peak_mb": round(sf_rss),
        "straightforward_extrapolated_s": round(sf_extrap_s), "straightforward_extrapolated_mb": round(sf_rss * scale),
    }
    rows = [
        {"approach": f"sweep (this), N={args.n:,}", "time_s": f"{sweep_s:.1f}", "memory_MB": f"{sweep_growth:.0f}",
         "keeps": "aggregates + top-k" + ("" if args.no_intra else f" + {intra_kept:,} intrafamily pairs")},
        {"approach": f"sweep, N={len(sub):,}", "time_s": f"{sub_sweep_s:.2f}", "memory_MB": "-",
         "keeps": "aggregates + top-k"},
        {"approach": f"all pairs + group by, N={len(sub):,}", "time_s": f"{sf_s:.2f}", "memory_MB": f"{sf_rss:.0f}",
         "keeps": f"{sub_pairs:,} pairs (no top-k)"},
        {"approach": f"all pairs + group by, N={args.n:,} (extrap. N^2)", "time_s": f"{sf_extrap_s:,.0f}",
         "memory_MB": f"{sf_rss * scale:,.0f}", "keeps": f"{n_pairs:,} pairs (no top-k)"},
    ]
    print(f"\nN={args.n:,} in {args.families} families, dim {args.dim}, metric {args.metric}, k {args.k}, "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(table(rows, list(rows[0])))
    print(f"ratios at N={args.n:,}: time {sf_extrap_s / sweep_s:.1f}x, memory {sf_rss * scale / max(sweep_growth, 1):,.0f}x "
          "(straightforward / sweep; straightforward extrapolated)")
    print(f"load average at end: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()

"""All-pairs js_divergence: new CPU kernel vs the previous torch kernel vs a per-pair loop.

    python -m benchmarks.js_divergence_speed [--sizes 2000 20000] [--dim 40] [--sample 3000]
                                             [--old-max-full 5000] [--threads 2]

Data as in ``similarity_speed``: sorted |normal| rows (fingerprints are stored
sorted, so pairs are close and JS is small, the hard case for cancellation).

* per-pair loop: ``similarity(a, b, "js_divergence")`` on ``--sample`` random
  pairs, extrapolated to N(N-1)/2 pairs;
* previous kernel: a copy of the torch kernel and tile size that
  ``fingerprinting.metrics`` used before (below), run over the upper triangle;
  above ``--old-max-full`` rows it runs over the first tile rows only and is
  extrapolated by the number of pairs;
* new kernel: ``iter_pairwise_blocks(X, "js_divergence")``, the full upper
  triangle, tiles reduced to a checksum.

Values: the new kernel is compared with scipy's ``jensenshannon`` on sampled
pairs and with the previous kernel on every pair it computed.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from benchmarks._util import peak_rss_mb, table
from fingerprinting.metrics import iter_pairwise_blocks, similarity


# ---------------------------------------------------- previous kernel (copy)
def _old_dist_prepare(x):
    x = x.abs()
    s = x.sum(1, keepdim=True)
    return torch.where(s > 0, x / s.clamp_min(1e-12), torch.full_like(x, 1.0 / x.shape[1]))


def _old_xlogx_over(p, m):
    return torch.where(p > 0, p * torch.log(p / m.clamp_min(1e-300)), torch.zeros_like(p))


def _old_js_block(P, Q):
    p = P.unsqueeze(1)
    q = Q.unsqueeze(0)
    m = 0.5 * (p + q)
    js = 0.5 * (_old_xlogx_over(p, m).sum(-1) + _old_xlogx_over(q, m).sum(-1))
    return 1.0 - js.clamp_min(0).sqrt()


def old_iter_blocks(X, max_rows=None):
    """The previous tiled walk for js_divergence (upper triangle, float64, CPU)."""
    Xt = _old_dist_prepare(torch.as_tensor(X, dtype=torch.float64))
    n, d = Xt.shape
    t = max(16, int(math.sqrt(8_000_000 / max(d, 1))))
    for i0 in range(0, n if max_rows is None else min(n, max_rows), t):
        A = Xt[i0 : i0 + t]
        for j0 in range(i0, n, t):
            yield i0, j0, _old_js_block(A, Xt[j0 : j0 + t]).clamp(0.0, 1.0).numpy()


def _upper_pairs(i0, j0, a, b):
    """Number of pairs i < j in the tile at (i0, j0) of size a x b."""
    if i0 != j0:
        return a * b
    return a * (a - 1) // 2


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--dim", type=int, default=40)
    ap.add_argument("--sample", type=int, default=3000, help="pairs timed with the per-pair loop")
    ap.add_argument("--old-max-full", type=int, default=5000,
                    help="run the previous kernel in full up to this N, else on its first tile row(s)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from scipy.spatial.distance import jensenshannon

    print(f"load average at start: {os.getloadavg()}", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        X = np.sort(np.abs(rng.normal(size=(n, args.dim))), axis=1)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        n_pairs = n * (n - 1) // 2

        idx = rng.integers(0, n, size=(args.sample, 2))
        t0 = time.perf_counter()
        loop_vals = [similarity(X[i], X[j], "js_divergence") for i, j in idx]
        loop_s = (time.perf_counter() - t0) / args.sample * n_pairs
        print(f"  N={n} per-pair loop: {args.sample} pairs, {loop_s:.1f} s extrapolated", flush=True)

        new = np.empty((n, n)) if n <= args.old_max_full else None
        t0 = time.perf_counter()
        checksum = 0.0
        for i0, j0, blk in iter_pairwise_blocks(X, "js_divergence"):
            checksum += float(blk.sum())
            if new is not None:
                a, b = blk.shape
                new[i0 : i0 + a, j0 : j0 + b] = blk
                new[j0 : j0 + b, i0 : i0 + a] = blk.T
        new_s = time.perf_counter() - t0
        print(f"  N={n} new kernel: {new_s:.2f} s", flush=True)

        # values: new vs scipy (sampled pairs) and vs the per-pair loop
        D = X / X.sum(1, keepdims=True)
        check = idx[:500]
        if new is None:  # recompute the sampled pairs' rows with the new kernel
            sub = np.unique(check)
            pos = {r: k for k, r in enumerate(sub)}
            from fingerprinting.metrics import pairwise_matrix

            S = pairwise_matrix(X[sub], "js_divergence")
            got = np.array([S[pos[i], pos[j]] for i, j in check])
        else:
            got = np.array([new[i, j] for i, j in check])
        with np.errstate(invalid="ignore"):
            sc = np.array([1.0 - jensenshannon(D[i], D[j]) for i, j in check])
        sc = np.where(np.isnan(sc), 1.0, sc)  # identical rows: scipy's sqrt of -1e-17
        err_scipy = float(np.abs(got - sc).max())
        err_loop = float(np.abs(got - np.array(loop_vals[:500])).max())

        t0 = time.perf_counter()
        old_pairs = 0
        err_old = 0.0
        full = n <= args.old_max_full
        for i0, j0, blk in old_iter_blocks(X, None if full else 1):
            a, b = blk.shape
            old_pairs += _upper_pairs(i0, j0, a, b)
            if new is not None:
                err_old = max(err_old, float(np.abs(new[i0 : i0 + a, j0 : j0 + b] - blk).max()))
        old_run = time.perf_counter() - t0
        old_s = old_run if full else old_run / old_pairs * n_pairs
        print(f"  N={n} previous kernel: {old_run:.2f} s on {old_pairs:,} pairs"
              f"{'' if full else f', {old_s:.1f} s extrapolated'}", flush=True)

        rows.append({
            "N": n, "pairs": f"{n_pairs:,}",
            "per_pair_loop_s": f"{loop_s:,.0f} (extrap.)",
            "previous_kernel_s": f"{old_s:,.1f}" + ("" if full else " (extrap.)"),
            "new_kernel_s": f"{new_s:.2f}",
            "new_vs_loop": f"{loop_s / new_s:,.0f}x",
            "new_vs_previous": f"{old_s / new_s:,.1f}x",
            "previous_vs_loop": f"{loop_s / old_s:,.0f}x",
            "max|new-scipy|": f"{err_scipy:.1e}",
            "max|new-loop|": f"{err_loop:.1e}",
            "max|new-previous|": f"{err_old:.1e}" if new is not None else "-",
        })
    print(f"\ndim {args.dim}, torch threads {torch.get_num_threads()}, sample {args.sample} pairs, "
          f"peak RSS {peak_rss_mb():.0f} MB")
    print(table(rows, list(rows[0])))
    print(f"load average at end: {os.getloadavg()}")
    print("target: N = 20,000 under 30 s on 2 cores, values within 1e-12 of the per-pair definition")


if __name__ == "__main__":
    main()

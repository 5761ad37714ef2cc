"""Approximate top-k neighbours (faiss HNSW) at 1M fingerprints: time, peak RSS and recall@k.

    python -m benchmarks.ann_recall [--n 1000000] [--families 500] [--dim 64] [--k 10]
                                    [--metric cosine] [--queries 1000] [--M 32] [--ef-construction 80]
                                    [--ef-search 64] [--threads 2] [--device cpu|cuda]

Data as in ``hub_scale`` (families -> 10 branches -> models, absolute values).

* approximate: ``fingerprinting.scale.ann.approximate_topk`` for every model
  (index build + search + exact re-ranking of the candidates), time and peak
  RSS (VmHWM, reset before the phase; memory = peak minus the RSS before);
* exact reference on ``--queries`` random models: ``exact_topk_rows`` (each
  query against all N, tiled), recall@k of the approximate lists (a neighbour
  tied with the exact k-th similarity counts as found);
* ratio vs the exact search for all N models, extrapolated from the query
  timing (the blocked all-pairs search walks half the matrix: N^2 / 2 pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from benchmarks._util import peak_rss_mb, reset_peak_rss, table
from benchmarks.hub_scale import rss_mb, synthetic
from fingerprinting.scale.ann import approximate_topk, recall_at_k
from fingerprinting.scale.neighbors import exact_topk_rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--families", type=int, default=500)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", default="cosine")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--M", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="device of the exact reference search")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    X, _ = synthetic(args.n, args.families, args.dim)

    start = rss_mb()
    reset_peak_rss()
    t0 = time.perf_counter()
    nb = approximate_topk(X, args.metric, args.k, threshold=0, M=args.M, ef_construction=args.ef_construction,
                          ef_search=args.ef_search, threads=args.threads)
    ann_s = time.perf_counter() - t0
    ann_mem = peak_rss_mb() - start
    info = nb.info
    print(f"approximate top-{args.k} of {args.n:,} models: {ann_s:.1f} s (build {info['build_s']:.1f} s, "
          f"search + re-rank {info['search_s']:.1f} s), memory {ann_mem:.0f} MB", flush=True)

    rng = np.random.default_rng(1)
    q = np.sort(rng.choice(args.n, min(args.queries, args.n), replace=False))
    t0 = time.perf_counter()
    ref = exact_topk_rows(X, q, args.metric, args.k, device=args.device)
    exact_q_s = time.perf_counter() - t0
    recall = recall_at_k(nb.idx[q], ref.idx, ref.sim, nb.sim[q])
    strict = recall_at_k(nb.idx[q], ref.idx)
    exact_all_s = exact_q_s / len(q) * args.n / 2
    out = {
        "N": args.n, "families": args.families, "dim": args.dim, "metric": args.metric, "k": args.k,
        "threads": args.threads, "M": args.M, "ef_construction": args.ef_construction,
        "ef_search": info["ef_search"], "candidates": info["candidates"], "ann_s": round(ann_s, 1),
        "build_s": round(info["build_s"], 1), "search_rerank_s": round(info["search_s"], 1),
        "ann_memory_mb": round(ann_mem), "queries": len(q), f"recall_at_{args.k}": recall,
        f"recall_at_{args.k}_strict_ids": strict, "exact_queries_s": round(exact_q_s, 2),
        "exact_device": args.device, "exact_all_extrapolated_s": round(exact_all_s),
    }
    rows = [{"search": f"HNSW M={args.M} efC={args.ef_construction} efS={info['ef_search']}, all {args.n:,}",
             "time_s": f"{ann_s:.1f}", "memory_MB": f"{ann_mem:.0f}", f"recall@{args.k}": f"{recall:.4f}"},
            {"search": f"exact, {len(q):,} queries ({args.device})", "time_s": f"{exact_q_s:.2f}",
             "memory_MB": "-", f"recall@{args.k}": "1"},
            {"search": f"exact, all {args.n:,} (extrap., blocked N^2/2)", "time_s": f"{exact_all_s:,.0f}",
             "memory_MB": "-", f"recall@{args.k}": "1"}]
    print(f"\nN={args.n:,} in {args.families} families, dim {args.dim}, metric {args.metric}, "
          f"threads {args.threads}")
    print(table(rows, list(rows[0])))
    print(f"recall@{args.k} on {len(q):,} queries: {recall:.4f} (ids only, ties not credited: {strict:.4f}); "
          f"target >= 0.95. Exact / approximate time: {exact_all_s / ann_s:.1f}x")
    print(f"load average at end: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()

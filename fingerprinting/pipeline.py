"""The steps of the fingerprint job, free of Prefect so they are testable directly.

``flows/fingerprint_flow.py`` wires them into tasks; everything here takes
plain values and a :class:`~fingerprinting.lake.Lake`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fingerprinting.lake import TABLES, Lake
from fingerprinting.loading import load_model
from fingerprinting.methods import Fingerprint, FingerprintMethod
from fingerprinting.metrics import (
    METRICS,
    pairwise_matrix,
    stack_fingerprints,
)
from fingerprinting.registry import ModelRecord


def fingerprint_model(record: ModelRecord, methods: list[FingerprintMethod], *, device: str = "auto",
                      dtype: str = "float32", trust_remote_code: bool = False) -> list[Fingerprint]:
    """Load one model once and compute every requested method on it."""
    need_tok = any(m.needs_tokenizer for m in methods)
    loaded = load_model(record.model_id, record.source, device=device, dtype=dtype,
                        trust_remote_code=trust_remote_code, need_tokenizer=need_tok)
    try:
        return [m.fingerprint(loaded) for m in methods]
    finally:
        del loaded


def fingerprint_table(fps: list[Fingerprint], run_id: str) -> pa.Table:
    now = datetime.now(UTC)
    rows = []
    for fp in fps:
        prov = dict(fp.provenance)
        rows.append({
            "model_id": fp.model_id, "method": fp.method, "config_hash": fp.config_hash,
            "config_json": fp.config_json, "vector": [float(x) for x in np.real(fp.vector)],
            "dim": fp.dim, "device": prov.pop("device", ""), "dtype": prov.pop("dtype", ""),
            "seconds": float(prov.pop("seconds", 0.0)),
            "library_versions": json.dumps(prov.pop("library_versions", {}), sort_keys=True),
            "provenance_json": json.dumps(prov, sort_keys=True, default=str), "run_id": run_id,
            "created_at": now,
        })
    return pa.Table.from_pylist(rows, schema=TABLES["fingerprints"].schema)


def write_fingerprints(lake: Lake, table: pa.Table) -> int:
    """Merge by (model_id, method, config_hash) in one commit: reruns replace, never duplicate."""
    lake.merge("fingerprints", table)
    return table.num_rows


def existing_fingerprints(lake: Lake, method: str, config_hash: str) -> dict[str, dict]:
    """Stored fingerprints for one method config, keyed by model id."""
    t = lake.read("fingerprints", filters={"method": method, "config_hash": config_hash})
    return {r["model_id"]: r for r in t.to_pylist()}


def compute_similarities(lake: Lake, method: str, config_hash: str, metrics: list[str],
                         device: str = "cpu", *, scale_threshold: int | None = None, neighbors_k: int = 10,
                         ann_threshold: int | None = None, run_id: str | None = None,
                         progress: bool = False) -> dict[str, int]:
    """Similarities among every fingerprint stored for (method, config_hash), per metric.

    Up to ``scale_threshold`` models (default: env ``FPLAKE_SCALE_THRESHOLD``, else
    5,000) every pair lands in ``similarities`` as before. Above it only the
    intrafamily pairs do; the exact family-pair and type-pair statistics (count,
    min, max, mean, variance, quantile sketch) are accumulated inside the tiled
    kernel and land in ``similarity_aggregates`` (``fingerprinting.scale``), so
    nothing of size N^2 is stored or held. Both ways the top-``neighbors_k``
    neighbours of every model land in ``similarity_neighbors``: exact, from the
    same tiles, or from an approximate faiss index from ``ann_threshold`` models
    on (default: env ``FPLAKE_ANN_THRESHOLD``, else 100,000). Family and type come
    from the lake's ``models`` table. Each table's rows of the experiment key are
    replaced in one commit, so a rerun (or a run that adds models) never
    duplicates, and an experiment back below the threshold loses its aggregates.
    Returns the number of pairs stored per metric.
    """
    import os
    import uuid

    import pyarrow as pa

    from fingerprinting.scale import tables as st
    from fingerprinting.scale.aggregates import DEFAULT_BINS, sweep
    from fingerprinting.scale.ann import ANN_THRESHOLD, approximate_topk

    if scale_threshold is None:
        scale_threshold = int(os.environ.get("FPLAKE_SCALE_THRESHOLD") or 5000)
    if ann_threshold is None:
        ann_threshold = int(os.environ.get("FPLAKE_ANN_THRESHOLD") or ANN_THRESHOLD)
    run_id = run_id or uuid.uuid4().hex
    ids, X = st.load_fingerprint_matrix(lake, method, config_hash)
    n = len(ids)
    at_scale = n > scale_threshold
    use_ann = neighbors_k > 0 and n >= ann_threshold
    if at_scale:
        info = lake.read("models", columns=["model_id", "family", "model_type"]).to_pylist()
        fam, fam_names = st.group_codes(ids, {r["model_id"]: r["family"] for r in info})
        typ, type_names = st.group_codes(ids, {r["model_id"]: r["model_type"] for r in info})
    counts = {}
    for metric in metrics:
        key = {"method": method, "metric": metric, "config_hash": config_hash}
        k = 0 if use_ann else neighbors_k
        if at_scale:
            res = sweep(X, metric, groups=fam, n_groups=len(fam_names), k=k, pairs="intra", device=device,
                        progress=progress)
        else:
            res = sweep(X, metric, k=k, pairs="all", device=device, progress=progress)
        i, j, v = res.pairs
        lake.replace("similarities", st.pairs_table(i, j, v, ids, **key), key)
        nb = res.neighbors
        if use_ann:
            nb = approximate_topk(X, metric, neighbors_k, threshold=ann_threshold, device=device, progress=progress)
        nb_rows = st.neighbors_table(nb, ids, **key, run_id=run_id) if nb is not None else None
        agg_rows = None
        if at_scale:
            m = METRICS.get(metric)
            common = {**key, "population_size": n, "run_id": run_id}
            tp, n_fams = st.type_pair_aggregates(i, j, v, typ, fam, len(type_names), m.lower, m.upper, DEFAULT_BINS)
            agg_rows = pa.concat_tables([
                st.aggregates_table(res.aggregates, fam_names, grouping="family", **common),
                st.aggregates_table(tp, type_names, grouping="type", n_families=n_fams, **common),
            ])
        st.write_experiment(lake, key, agg_rows, nb_rows)
        counts[metric] = len(v)
    return counts


def export_fingerprints_json(lake: Lake, model_ids: list[str], hashes: dict[str, str]) -> dict:
    """``{model_id: {method: {"data": [...], ...provenance}}}`` for the given models."""
    out: dict[str, dict] = {}
    for method, h in hashes.items():
        stored = existing_fingerprints(lake, method, h)
        for mid in model_ids:
            if mid not in stored:
                continue
            r = stored[mid]
            out.setdefault(mid, {})[method] = {
                "data": list(r["vector"]), "config_hash": h, "config": json.loads(r["config_json"]),
                "dim": r["dim"], "device": r["device"], "dtype": r["dtype"], "seconds": r["seconds"],
                "library_versions": json.loads(r["library_versions"]),
                "provenance": json.loads(r["provenance_json"]),
                "created_at": r["created_at"].isoformat() if r["created_at"] else None,
            }
    return out


def export_similarity_json(lake: Lake, model_ids: list[str], hashes: dict[str, str], metrics: list[str]) -> dict:
    """``{"similarity_matrices": {method: {metric: {"matrix": [[...]], "models": [...]}}}}``."""
    res: dict[str, dict] = {}
    for method, h in hashes.items():
        stored = existing_fingerprints(lake, method, h)
        present = [m for m in model_ids if m in stored]
        X = stack_fingerprints([np.asarray(stored[m]["vector"]) for m in present]) if present else None
        res[method] = {}
        for metric in metrics:
            M = pairwise_matrix(X, metric) if X is not None else np.zeros((0, 0))
            res[method][metric] = {"matrix": M.round(12).tolist(), "models": present,
                                   "config_hash": h, "higher_is_better": True,
                                   "range": [METRICS.get(metric).lower, METRICS.get(metric).upper]}
    return {"similarity_matrices": res}

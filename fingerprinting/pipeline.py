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
    iter_pairwise_blocks,
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
                         device: str = "cpu") -> dict[str, int]:
    """All pairs among every fingerprint stored for (method, config_hash), one file per metric.

    Each metric's complete pair set replaces the rows of its experiment key in
    one commit, so a rerun (or a run that adds models) never duplicates rows.
    """
    fps = existing_fingerprints(lake, method, config_hash)
    ids = sorted(fps)
    counts = {}
    X = stack_fingerprints([np.asarray(fps[i]["vector"]) for i in ids]) if ids else np.zeros((0, 1))
    id_arr = np.array(ids, dtype=object)
    for metric in metrics:
        a_parts, b_parts, s_parts = [], [], []
        for i0, j0, blk in iter_pairwise_blocks(X, metric, device=device):
            ii, jj = np.indices(blk.shape)
            ii, jj = ii + i0, jj + j0
            keep = jj > ii
            # ids are sorted, so index order is string order: model_a < model_b
            a_parts.append(id_arr[ii[keep]])
            b_parts.append(id_arr[jj[keep]])
            s_parts.append(blk[keep])
        n = int(sum(len(s) for s in s_parts))
        table = pa.table({
            "model_a": pa.array(np.concatenate(a_parts) if n else [], pa.string()),
            "model_b": pa.array(np.concatenate(b_parts) if n else [], pa.string()),
            "method": pa.array([method] * n, pa.string()),
            "metric": pa.array([metric] * n, pa.string()),
            "config_hash": pa.array([config_hash] * n, pa.string()),
            "similarity": pa.array(np.concatenate(s_parts) if n else [], pa.float64()),
        })
        lake.replace("similarities", table, {"method": method, "metric": metric, "config_hash": config_hash})
        counts[metric] = n
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

"""Suspect-model lookup: fingerprint an unregistered model and rank its likely relatives.

    lookup_model(lake, "path/to/suspect") -> {"suspect", "methods", "candidates", "timings", ...}

Steps (nothing is written unless ``register=True``):

1. :func:`fingerprinting.queries.check_model_source` validates the folder / ``*.gguf``;
2. :func:`stored_method_configs` picks, per method, the config hash with the most
   stored fingerprints; its ``config_json`` gives the method's args (falling back to
   ``flows.demo_flow.DEMO_METHODS`` when those args do not rebuild the same hash);
3. the model is loaded once and fingerprinted with those configs;
4. :func:`score_against` compares the one query vector with every stored vector of
   the same (method, config_hash), vectorised with the metric's block kernel;
5. candidates are ranked by the combined score: the mean, over the methods where a
   candidate has a fingerprint, of its similarity rescaled to [0, 1] by the metric's
   bounds, ``(s - lower) / (upper - lower)`` (raw similarity, not rank-normalised);
6. config similarity ``1 - Gower distance`` (standard variant, ranges over the
   registered configs plus the suspect) when ``model_configs`` rows exist.

Times for fingerprinting and for ranking are reported separately.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import Lake
from fingerprinting.metrics import METRICS
from fingerprinting.queries import (
    _models,
    _rows,
    _tables,
    check_model_source,
    connect,
    validate_method,
)

DEFAULT_METRIC = "cosine"
COMBINED_NOTE = ("combined = mean over the methods a candidate has of its similarity rescaled to [0, 1] by the "
                 "metric's bounds, (s - lower) / (upper - lower); raw similarities, not rank-normalised")


class ModelLookupError(FingerprintLakeError, ValueError):
    """A lookup cannot run (no fingerprints stored, unsupported architecture, ...)."""


# ------------------------------------------------------------------ method configs
def _args_from_config_json(config_json: str) -> dict:
    cfg = json.loads(config_json or "{}")
    return {k: v for k, v in cfg.items() if k not in ("method", "version")}


def _demo_args(method: str) -> dict | None:
    try:
        from flows.demo_flow import DEMO_METHODS
    except Exception:  # pragma: no cover - flows not importable
        return None
    return DEMO_METHODS.get(method)


def stored_method_configs(lake: Lake, methods: list[str] | None = None) -> dict[str, dict]:
    """Per method, the stored config with the most fingerprints.

    Returns ``{method: {"config_hash", "config_json", "n_stored", "method": FingerprintMethod or None,
    "args", "note"}}``. ``method`` is None (with a note) when no args rebuild the stored hash.
    Raises :class:`ModelLookupError` when nothing is stored for any (requested) method.
    """
    from fingerprinting.methods import MethodConfigError, make_method

    for m in methods or []:
        validate_method(m)
    con = connect(lake)
    rows: list[dict] = []
    if "fingerprints" in _tables(con):
        rows = _rows(con, "select method, config_hash, min(config_json) as config_json, count(*) as n "
                          "from fingerprints group by method, config_hash order by method, n desc, config_hash")
    con.close()
    best: dict[str, dict] = {}
    for r in rows:
        if methods and r["method"] not in methods:
            continue
        best.setdefault(r["method"], r)  # ordered by n desc, then config_hash: first is the pick
    if not best:
        what = f" for method(s) {', '.join(methods)}" if methods else ""
        raise ModelLookupError(f"no fingerprints stored yet{what} in lake {lake.root!r}; fingerprint registered "
                               "models first (`fplake demo` or run_experiment)")
    out: dict[str, dict] = {}
    for name, r in sorted(best.items()):
        entry = {"config_hash": r["config_hash"], "config_json": r["config_json"], "n_stored": int(r["n"]),
                 "method": None, "args": None, "note": ""}
        tried = []
        for source, args in (("stored config", lambda cj=r["config_json"]: _args_from_config_json(cj)),
                             ("DEMO_METHODS", lambda n=name: _demo_args(n))):
            try:
                a = args()
                if a is None:
                    continue
                meth = make_method(name, a)
            except (MethodConfigError, json.JSONDecodeError, KeyError, OSError, ValueError) as exc:
                tried.append(f"{source}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                continue
            if meth.config_hash == r["config_hash"]:
                entry.update(method=meth, args=a, note="" if source == "stored config" else f"args from {source}")
                break
            tried.append(f"{source}: rebuilds hash {meth.config_hash}, not {r['config_hash']}")
        if entry["method"] is None:
            entry["note"] = "skipped: cannot rebuild the stored config (" + "; ".join(tried) + ")"
        out[name] = entry
    return out


# ------------------------------------------------------------------ scoring
def stored_vectors(lake: Lake, method: str, config_hash: str) -> tuple[list[str], np.ndarray]:
    """Model ids and the left-padded (N, d) matrix of stored vectors for one method config (no Python row loop)."""
    t = lake.read("fingerprints", columns=["model_id", "vector"],
                  filters={"method": method, "config_hash": config_hash})
    if t.num_rows == 0:
        return [], np.zeros((0, 0))
    t = t.sort_by("model_id")
    ids = t.column("model_id").to_pylist()
    col = t.column("vector").combine_chunks()
    if isinstance(col, pa.ChunkedArray):  # pragma: no cover - older pyarrow
        col = col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks)
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)
    d = int(lengths.max()) if len(lengths) else 0
    X = np.zeros((len(ids), d), dtype=np.float64)
    rows = np.repeat(np.arange(len(ids)), lengths)
    # left padding: a row of length L fills columns d-L .. d-1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    within = np.arange(len(values)) - np.repeat(starts, lengths)
    X[rows, within + np.repeat(d - lengths, lengths)] = values
    return ids, X


def score_against(query: np.ndarray, X: np.ndarray, metric: str, *, tile: int = 8192,
                  device: str = "cpu") -> np.ndarray:
    """Similarity of one vector to every row of X under ``metric`` (the metric's block kernel, tiled).

    Same definition as :func:`fingerprinting.metrics.similarity` on real vectors: shorter
    vectors are left-padded with zeros, results are clamped to the metric's bounds.
    """
    m = METRICS.get(metric)
    q = np.real(np.asarray(query, dtype=np.complex128 if np.iscomplexobj(query) else np.float64))
    n, d = X.shape if X.ndim == 2 else (0, 0)
    if n == 0:
        return np.zeros(0)
    width = max(d, q.shape[0])
    qp = np.zeros(width)
    qp[width - q.shape[0]:] = q
    Q = m.prepare(torch.as_tensor(qp[None, :], dtype=torch.float64, device=device))
    out = np.empty(n, dtype=np.float64)
    for r0 in range(0, n, tile):
        blk = X[r0:r0 + tile]
        if blk.shape[1] < width:
            blk = np.concatenate([np.zeros((blk.shape[0], width - blk.shape[1])), blk], axis=1)
        B = m.prepare(torch.as_tensor(blk, dtype=torch.float64, device=device))
        out[r0:r0 + len(blk)] = m.block(Q, B).clamp(m.lower, m.upper).cpu().numpy()[0]
    return out


def _normalised(s: np.ndarray, metric: str) -> np.ndarray:
    m = METRICS.get(metric)
    return (s - m.lower) / (m.upper - m.lower) if m.upper > m.lower else s


# ------------------------------------------------------------------ configs
def suspect_config(checked: dict) -> dict | None:
    """The suspect's raw config: config.json of a folder, GGUF metadata mapped to a config, else None."""
    if checked["kind"] == "folder":
        p = Path(checked["source"]) / "config.json"
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
    if checked["kind"] == "gguf":
        try:
            from fingerprinting.configs.features import gguf_metadata_to_config
            from fingerprinting.configs.ingest import read_gguf_metadata

            return gguf_metadata_to_config(read_gguf_metadata(checked["source"]))
        except Exception:  # gguf package missing or unusual file: no config similarity
            return None
    return None


def config_similarities(lake: Lake, config: dict | None) -> dict[str, float]:
    """``{model_id: 1 - Gower distance}`` of every ``model_configs`` row to the suspect's config."""
    if config is None:
        return {}
    from fingerprinting.configs.features import FEATURES, extract_features
    from fingerprinting.configs.gower import encode, gower_matrix

    con = connect(lake)
    if "model_configs" not in _tables(con):
        con.close()
        return {}
    cols = {c[0] for c in con.execute("describe model_configs").fetchall()}
    feats = [f for f in FEATURES if f in cols]
    rows = _rows(con, f"select model_id, {', '.join(feats)} from model_configs order by model_id") if feats else []
    con.close()
    if not rows:
        return {}
    feat_row, _ = extract_features(config, "suspect")
    A = encode(rows, feats)
    B = encode([feat_row], feats, reference=A)
    dist = gower_matrix(A, B)[:, 0]
    return {r["model_id"]: (None if np.isnan(dv) else float(1.0 - dv)) for r, dv in zip(rows, dist, strict=True)}


# ------------------------------------------------------------------ lookup
def fingerprint_suspect(model_id: str, source: str, methods: dict[str, Any], *, device: str = "cpu",
                        arch: str = "") -> tuple[list, dict[str, str]]:
    """Load the suspect once and compute each method; per-method failures are returned, not raised.

    Raises :class:`ModelLookupError` when the model cannot be loaded or no method supports it.
    """
    from fingerprinting.loading import ModelLoadError, load_model
    from fingerprinting.methods import FingerprintError

    need_tok = any(m.needs_tokenizer for m in methods.values())
    try:
        loaded = load_model(model_id, source, device=device, need_tokenizer=need_tok)
    except ModelLoadError as exc:
        raise ModelLookupError(f"architecture {arch or '?'!r} of {source!r} is not supported by any fingerprint "
                               f"method: {str(exc).splitlines()[0]}") from exc
    fps, failed = [], {}
    try:
        for name, meth in methods.items():
            try:
                fps.append(meth.fingerprint(loaded))
            except FingerprintError as exc:
                failed[name] = str(exc).splitlines()[0]
    finally:
        del loaded
    if not fps:
        detail = "; ".join(f"{k}: {v}" for k, v in failed.items())
        raise ModelLookupError(f"no fingerprint method supports architecture {arch or '?'!r} of {source!r} ({detail})")
    return fps, failed


def lookup_model(lake: Lake, path_or_id: str, *, methods: list[str] | None = None, metric: str = DEFAULT_METRIC,
                 limit: int | None = 10, device: str = "cpu", register: bool = False, family: str | None = None,
                 model_type: str | None = None, model_id: str | None = None,
                 display_name: str | None = None) -> dict:
    """Fingerprint ``path_or_id`` and rank registered models by similarity to it (see module doc)."""
    METRICS.get(metric)
    checked = check_model_source(path_or_id)
    mid = model_id or checked["model_id"]
    name = display_name or mid
    con = connect(lake)
    models = _models(con)
    con.close()
    if register:
        from fingerprinting.queries import RegistrationError

        for what, value in (("--family", family), ("--type", model_type)):
            if not value or not str(value).strip():
                raise RegistrationError(f"{what} is required with --register")
        clash = [m["model_id"] for m in models if mid == m["model_id"] or name == m["display_name"]]
        if clash:
            raise RegistrationError(f"model id / display name {name!r} is already registered (as {clash[0]!r}); "
                                    "pass --model-id / --display-name")
    configs = stored_method_configs(lake, methods)
    usable = {k: v["method"] for k, v in configs.items() if v["method"] is not None}
    if not usable:
        raise ModelLookupError("no stored method config can be rebuilt here: "
                               + "; ".join(f"{k}: {v['note']}" for k, v in configs.items()))

    t0 = time.perf_counter()
    fps, failed = fingerprint_suspect(mid, checked["source"], usable, device=device, arch=checked["arch"])
    t_fp = time.perf_counter() - t0

    t1 = time.perf_counter()
    per_method: dict[str, dict[str, float]] = {}
    for fp in fps:
        ids, X = stored_vectors(lake, fp.method, fp.config_hash)
        sims = score_against(fp.vector, X, metric)
        per_method[fp.method] = dict(zip(ids, sims.tolist(), strict=True))
    info = {m["model_id"]: m for m in models}
    cand_ids = sorted(set().union(*[set(d) for d in per_method.values()]) if per_method else set())
    method_names = sorted(per_method)
    if cand_ids:
        S = np.full((len(cand_ids), len(method_names)), np.nan)
        index = {c: i for i, c in enumerate(cand_ids)}
        for j, meth in enumerate(method_names):
            d = per_method[meth]
            S[[index[c] for c in d], j] = list(d.values())
        N = _normalised(S, metric)
        combined = np.nanmean(N, axis=1)
        order = sorted(range(len(cand_ids)), key=lambda i: (-combined[i], cand_ids[i]))
    else:
        S, combined, order = np.zeros((0, 0)), np.zeros(0), []
    t_rank = time.perf_counter() - t1

    t2 = time.perf_counter()
    cfg_sims = config_similarities(lake, suspect_config(checked))
    t_cfg = time.perf_counter() - t2

    shown = order[:limit] if limit is not None else order
    candidates = []
    for rank, i in enumerate(shown, 1):
        c = cand_ids[i]
        m = info.get(c, {})
        candidates.append({
            "rank": rank, "model_id": c, "display_name": m.get("display_name", c), "family": m.get("family"),
            "model_type": m.get("model_type"),
            "similarities": {meth: (None if np.isnan(S[i, j]) else float(S[i, j]))
                             for j, meth in enumerate(method_names)},
            "combined": float(combined[i]), "config_similarity": cfg_sims.get(c),
        })

    result = {
        "suspect": {"source": checked["source"], "kind": checked["kind"], "arch": checked["arch"],
                    "model_id": mid, "display_name": name},
        "metric": metric, "combined_note": COMBINED_NOTE,
        "methods": [{"method": k, "config_hash": v["config_hash"], "args": v["args"], "n_stored": v["n_stored"],
                     "used": k in per_method, "note": failed.get(k) or v["note"]} for k, v in configs.items()],
        "n_candidates": len(cand_ids), "candidates": candidates,
        "timings": {"fingerprint_s": round(t_fp, 4), "rank_s": round(t_rank, 4), "config_s": round(t_cfg, 4)},
        "registered": False, "fingerprints_written": 0,
    }
    if register:
        from fingerprinting.pipeline import fingerprint_table, write_fingerprints
        from fingerprinting.registry import ModelRecord, register_models

        register_models(lake.init(), [ModelRecord(mid, checked["source"], family, model_type, name, checked["arch"])])
        result["fingerprints_written"] = write_fingerprints(lake, fingerprint_table(fps, f"lookup-{int(time.time())}"))
        result["registered"] = True
    return result


# ------------------------------------------------------------------ page
def lookup_page(result: dict) -> str:
    """An offline HTML page: the ranked table and a bar chart of the combined score."""
    import html

    import plotly.graph_objects as go

    from fingerprinting.reports.page import Section, figure_section, page_html, table_html

    methods = [m["method"] for m in result["methods"] if m["used"]]
    rows = []
    for c in result["candidates"]:
        r = {k: c[k] for k in ("rank", "model_id", "display_name", "family", "model_type", "combined",
                               "config_similarity")}
        r.update({f"sim:{m}": c["similarities"].get(m) for m in methods})
        rows.append(r)
    cols = [("rank", "rank"), ("model_id", "model id"), ("display_name", "display name"), ("family", "family"),
            ("model_type", "type")] + [(f"sim:{m}", m) for m in methods] + [
        ("combined", "combined"), ("config_similarity", "config similarity (Gower)")]
    cands = result["candidates"]
    fig = go.Figure(go.Bar(x=[c["combined"] for c in cands][::-1], y=[c["display_name"] for c in cands][::-1],
                           orientation="h"))
    fig.update_layout(height=120 + 24 * len(cands), margin={"l": 10, "r": 10, "t": 30, "b": 30},
                      xaxis={"title": "combined score", "range": [0, 1]})
    s = result["suspect"]
    t = result["timings"]
    header = (f"<h1>Lookup: {html.escape(s['display_name'])}</h1><div>{html.escape(s['source'])} "
              f"({html.escape(s['kind'])}, {html.escape(s['arch'] or '?')}); metric {html.escape(result['metric'])}; "
              f"fingerprint {t['fingerprint_s']:.2f} s, ranking {t['rank_s']:.3f} s</div>")
    sections = [
        Section("table", table_html(rows, cols, "lookup-table"),
                f"{len(cands)} of {result['n_candidates']} candidates, most likely relative first. "
                + result["combined_note"], "Ranked likely relatives"),
        figure_section("chart", fig, "Combined score per candidate (higher = more similar).", "Combined score"),
    ]
    return page_html(f"Lookup {s['display_name']}", header, sections)

"""Model queries and command-line registration over the lake (no model is ever loaded).

Every query reads the lake's Delta tables through DuckDB (:meth:`Lake.duckdb`),
so it works without a dbt build: ``models``, ``model_edges``, ``fingerprints``,
``similarities`` and, when the configs system has landed them, ``model_configs``.
Functions return plain dicts and lists (JSON-ready); the command line
(:mod:`flows.model_cli`) only formats them.

* :func:`check_model_source` / :func:`register_model`: validate a local folder,
  a ``*.gguf`` file or an ``hf://`` id before anything is written;
* :func:`list_registered`, :func:`view_model`, :func:`compare_models`,
  :func:`similarity_pairs` / :func:`similarity_matrices`, :func:`find_similar`.

Ids resolve by model id, else by unique display name, with "did you mean" for
unknown ones (:class:`fingerprinting.registry.UnknownModelError`). Method and
metric names are checked against the plugin registries up front.
"""

from __future__ import annotations

import difflib
import json
import struct
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import Lake, load_system_tables
from fingerprinting.registry import (
    RELATIONS,
    ModelRecord,
    match_ids,
    register_models,
)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
COMBINED_SCORE_NOTE = ("combined verdict: no fit in this lake yet; run `fplake provenance fit` "
                       "(needs fingerprints of at least 3 families)")


class RegistrationError(FingerprintLakeError, ValueError):
    """A model cannot be registered (bad path, unreadable checkpoint, unknown parent...)."""


class QueryError(FingerprintLakeError, ValueError):
    """A model query got an argument it cannot use."""


# ------------------------------------------------------------------ helpers
def _close(name: str, known: list[str]) -> str:
    hint = difflib.get_close_matches(str(name), known, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [_jsonable(dict(zip(cols, r, strict=True))) for r in cur.fetchall()]


def connect(lake: Lake):
    """A DuckDB connection with every existing lake table as a view (system tables included)."""
    load_system_tables()
    return lake.duckdb()


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def validate_method(name: str | None) -> str | None:
    """Check a fingerprint method name against the plugin registry (did-you-mean error)."""
    if name is None:
        return None
    from fingerprinting.methods import METHODS

    METHODS.get(name)
    return name


def validate_metric(name: str | None) -> str | None:
    """Check a similarity metric name against the plugin registry (did-you-mean error)."""
    if name is None:
        return None
    from fingerprinting.metrics import METRICS

    METRICS.get(name)
    return name


def metric_bounds(name: str) -> tuple[float, float]:
    """(lower, upper) of a metric's similarity; (0, 1) for a name the registry does not know."""
    from fingerprinting.metrics import METRICS

    if name in METRICS:
        meta = METRICS.meta(name)
        return float(meta["lower"]), float(meta["upper"])
    return 0.0, 1.0


# ------------------------------------------------------------------ registry reads
def _models(con) -> list[dict]:
    if "models" not in _tables(con):
        return []
    return _rows(con, "select model_id, source, family, model_type, display_name, arch, registered_at "
                      "from models order by model_id")


def _edges(con) -> list[dict]:
    if "model_edges" not in _tables(con):
        return []
    return _rows(con, "select parent_id, child_id, relation from model_edges order by parent_id, child_id")


def resolve_ids(con, idents: list[str], models: list[dict] | None = None) -> list[dict]:
    """Model rows for ``idents`` (model id, else unique display name), in order."""
    models = _models(con) if models is None else models
    return match_ids(idents, models, model_id=lambda m: m["model_id"], display_name=lambda m: m["display_name"])


def list_registered(lake: Lake, family: str | None = None, model_type: str | None = None,
                    search: str | None = None) -> list[dict]:
    """Registered models (with parents and fingerprint count), filtered by family / type / substring."""
    con = connect(lake)
    models = _models(con)
    edges = _edges(con)
    fp_counts: dict[str, int] = {}
    if "fingerprints" in _tables(con):
        fp_counts = {r["model_id"]: r["n"] for r in _rows(con, "select model_id, count(*) as n from fingerprints "
                                                                "group by model_id")}
    out = []
    for m in models:
        if family is not None and m["family"] != family:
            continue
        if model_type is not None and m["model_type"] != model_type:
            continue
        if search and search.lower() not in (m["model_id"] + " " + m["display_name"]).lower():
            continue
        parents = [{"model_id": e["parent_id"], "relation": e["relation"]} for e in edges if e["child_id"] == m["model_id"]]
        out.append(dict(m, parents=parents, fingerprints=fp_counts.get(m["model_id"], 0)))
    return out


# ------------------------------------------------------------------ registration
def _check_safetensors(path: Path) -> None:
    """Header of a safetensors file: 8-byte little-endian length, then a JSON header that fits the file."""
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise RegistrationError(f"{str(path)!r} is not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n <= 0 or 8 + n > size:
                raise RegistrationError(f"{str(path)!r} is not a readable safetensors file (header length {n} "
                                        f"does not fit its {size} bytes)")
            header = json.loads(fh.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistrationError(f"{str(path)!r} is not a readable safetensors file ({exc})") from exc
    if not isinstance(header, dict):
        raise RegistrationError(f"{str(path)!r} is not a readable safetensors file (header is not an object)")
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(t["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise RegistrationError(f"{str(path)!r}: tensor {name!r} has no valid data_offsets") from exc
    if 8 + n + end > size:
        raise RegistrationError(f"{str(path)!r} is truncated: tensors need {8 + n + end} bytes, file has {size}")


def _check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise RegistrationError(f"cannot read {str(path)!r}: {exc}") from exc
    if head[:4] != b"GGUF":
        raise RegistrationError(f"{str(path)!r} is not a GGUF file (no 'GGUF' magic bytes at offset 0)")
    if len(head) < 8:
        raise RegistrationError(f"{str(path)!r} is a truncated GGUF file")


def check_model_source(path_or_id: str) -> dict:
    """Check that ``path_or_id`` holds a loadable model, without loading it.

    Returns ``{"source", "kind" ("folder", "gguf" or "hub"), "arch", "model_id", "note"}``;
    raises :class:`RegistrationError` (one line) otherwise.
    """
    if path_or_id.startswith("hf://"):
        ident = path_or_id[len("hf://"):]
        name = ident.split("@", 1)[0]
        if not name or name.count("/") > 1 or name.startswith("/") or name.endswith("/"):
            raise RegistrationError(f"{path_or_id!r} is not a Hub id; use hf://org/name[@revision]")
        return {"source": path_or_id, "kind": "hub", "arch": "", "model_id": name,
                "note": "Hub model accepted as-is: its files are checked at fingerprint time (no network here)"}
    p = Path(path_or_id).expanduser()
    if not p.exists():
        hint = (" (for a Hugging Face Hub model write hf://" + path_or_id + ")"
                if path_or_id.count("/") == 1 and not path_or_id.startswith((".", "/", "~")) else "")
        raise RegistrationError(f"path {path_or_id!r} does not exist{hint}")
    p = p.resolve()
    if p.is_file():
        if p.suffix.lower() == ".gguf":
            _check_gguf(p)
            return {"source": str(p), "kind": "gguf", "arch": "", "model_id": p.stem, "note": ""}
        if p.suffix.lower() in PICKLE_SUFFIXES:
            raise RegistrationError(f"{str(p)!r} is a pickle checkpoint: pickle can execute code when loaded; "
                                    "convert it to safetensors first")
        raise RegistrationError(f"{str(p)!r} is a file but not a *.gguf; give a model folder "
                                "(config.json + *.safetensors) or a GGUF file")
    files = [f for f in p.iterdir() if f.is_file()]
    st = sorted(f for f in files if f.name.endswith(".safetensors"))
    ggufs = sorted(f for f in files if f.suffix.lower() == ".gguf")
    pickles = sorted(f.name for f in files if f.suffix.lower() in PICKLE_SUFFIXES)
    if not st and ggufs:
        if len(ggufs) > 1:
            raise RegistrationError(f"{str(p)!r} holds {len(ggufs)} GGUF files and no safetensors; "
                                    "register one of the *.gguf files by its path")
        _check_gguf(ggufs[0])
        return {"source": str(ggufs[0]), "kind": "gguf", "arch": "", "model_id": p.name, "note": ""}
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise RegistrationError(f"{str(p)!r} has no config.json (a model folder needs config.json and *.safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistrationError(f"{str(cfg_path)!r} is not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise RegistrationError(f"{str(cfg_path)!r} is not a JSON object")
    if not cfg.get("model_type") and not cfg.get("architectures"):
        raise RegistrationError(f"{str(cfg_path)!r} names neither model_type nor architectures; "
                                "transformers cannot tell which model it is")
    if not st:
        if pickles:
            raise RegistrationError(f"{str(p)!r} holds only pickle weights ({', '.join(pickles)}): pickle can "
                                    "execute code when loaded; convert to safetensors first")
        raise RegistrationError(f"{str(p)!r} has no weights (model.safetensors or *.safetensors shards)")
    index = p / "model.safetensors.index.json"
    if index.is_file():
        try:
            wanted = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise RegistrationError(f"{str(index)!r} is not a valid shard index ({exc})") from exc
        missing = sorted(w for w in wanted if not (p / w).is_file())
        if missing:
            raise RegistrationError(f"{str(p)!r}: shard(s) listed in the index are missing: {', '.join(missing)}")
    for f in st:
        _check_safetensors(f)
    archs = cfg.get("architectures") or []
    arch = archs[0] if isinstance(archs, list) and archs else str(cfg.get("model_type", ""))
    return {"source": str(p), "kind": "folder", "arch": arch, "model_id": p.name, "note": ""}


def parse_parent(spec: str) -> tuple[str, str]:
    """``ID:RELATION`` -> (id, relation); the relation must be one of :data:`RELATIONS`."""
    if ":" not in spec:
        raise RegistrationError(f"--parent {spec!r}: expected ID:RELATION, relation one of {', '.join(sorted(RELATIONS))}")
    ident, rel = spec.rsplit(":", 1)
    if not ident:
        raise RegistrationError(f"--parent {spec!r}: the parent id is empty")
    if rel not in RELATIONS:
        raise RegistrationError(f"--parent {spec!r}: unknown relation {rel!r}{_close(rel, sorted(RELATIONS))}; "
                                f"known: {', '.join(sorted(RELATIONS))}")
    return ident, rel


def register_model(lake: Lake, path_or_id: str, family: str, model_type: str, parents: list[str] | None = None,
                   display_name: str | None = None, model_id: str | None = None) -> dict:
    """Validate everything, then register one model (and its parent edges). Nothing is written on error."""
    for what, value in (("--family", family), ("--type", model_type)):
        if not value or not str(value).strip():
            raise RegistrationError(f"{what} is required and must not be empty")
    parsed = [parse_parent(p) for p in parents or []]
    checked = check_model_source(path_or_id)
    mid = model_id or checked["model_id"]
    name = display_name or mid
    con = connect(lake)
    models = _models(con)
    resolved = resolve_ids(con, [p for p, _ in parsed], models) if parsed else []
    parent_edges = [(m["model_id"], rel) for m, (_, rel) in zip(resolved, parsed, strict=True)]
    if any(p == mid for p, _ in parent_edges):
        raise RegistrationError(f"model {mid!r} cannot be its own parent")
    clash = [m["model_id"] for m in models if m["model_id"] != mid and name in (m["display_name"], m["model_id"])]
    if clash:
        raise RegistrationError(f"display name {name!r} is already used by model {clash[0]!r}; "
                                "pass another --display-name")
    existing = {m["model_id"]: m for m in models}.get(mid)
    if existing is not None and existing["source"] != checked["source"]:
        raise RegistrationError(f"model id {mid!r} is already registered for {existing['source']!r}; "
                                "pass --model-id to register this one under another id")
    con.close()
    rec = ModelRecord(mid, checked["source"], family, model_type, name, checked["arch"], parent_edges)
    register_models(lake, [rec])
    return {"model_id": mid, "display_name": name, "source": checked["source"], "kind": checked["kind"],
            "family": family, "model_type": model_type, "arch": checked["arch"],
            "parents": [{"model_id": p, "relation": r} for p, r in parent_edges],
            "updated": existing is not None, "note": checked["note"]}


# ------------------------------------------------------------------ lineage
def _graph(edges: list[dict]) -> tuple[dict, dict]:
    up: dict[str, list[tuple[str, str]]] = {}
    down: dict[str, list[tuple[str, str]]] = {}
    for e in edges:
        up.setdefault(e["child_id"], []).append((e["parent_id"], e["relation"]))
        down.setdefault(e["parent_id"], []).append((e["child_id"], e["relation"]))
    return up, down


def _ancestors(up: dict, start: str) -> dict[str, tuple[int, list[str]]]:
    """Ancestor -> (depth, relations along the path from start upwards), breadth first."""
    seen: dict[str, tuple[int, list[str]]] = {}
    queue = deque([(start, 0, [])])
    while queue:
        node, depth, rels = queue.popleft()
        for parent, rel in up.get(node, []):
            if parent not in seen and parent != start:
                seen[parent] = (depth + 1, rels + [rel])
                queue.append((parent, depth + 1, rels + [rel]))
    return seen


def lineage_relation(edges: list[dict], a: str, b: str, up_down: tuple[dict, dict] | None = None) -> dict | None:
    """How ``b`` relates to ``a`` in the recorded lineage, or None.

    ``{"relation": "parent"|"child"|"ancestor"|"descendant"|"sibling"|"cousin", "depth", "via", "derivation"}``
    """
    up, _ = up_down or _graph(edges)
    anc_a, anc_b = _ancestors(up, a), _ancestors(up, b)
    if b in anc_a:
        depth, rels = anc_a[b]
        return {"relation": "parent" if depth == 1 else "ancestor", "depth": depth, "via": None,
                "derivation": "/".join(reversed(rels))}
    if a in anc_b:
        depth, rels = anc_b[a]
        return {"relation": "child" if depth == 1 else "descendant", "depth": depth, "via": None,
                "derivation": "/".join(reversed(rels))}
    common = set(anc_a) & set(anc_b)
    if common:
        nearest = min(common, key=lambda c: (anc_a[c][0] + anc_b[c][0], c))
        da, db = anc_a[nearest][0], anc_b[nearest][0]
        return {"relation": "sibling" if da == db == 1 else "cousin", "depth": da + db, "via": nearest,
                "derivation": None}
    return None


# ------------------------------------------------------------------ queries
def view_model(lake: Lake, ident: str) -> dict:
    """Registry record, parents, children, fingerprints held and config features of one model."""
    con = connect(lake)
    m = resolve_ids(con, [ident])[0]
    mid = m["model_id"]
    edges = _edges(con)
    names = {x["model_id"]: x["display_name"] for x in _models(con)}
    tables = _tables(con)
    parents = [{"model_id": e["parent_id"], "display_name": names.get(e["parent_id"]), "relation": e["relation"]}
               for e in edges if e["child_id"] == mid]
    children = [{"model_id": e["child_id"], "display_name": names.get(e["child_id"]), "relation": e["relation"]}
                for e in edges if e["parent_id"] == mid]
    fingerprints = []
    if "fingerprints" in tables:
        fingerprints = _rows(con, "select method, config_hash, config_json, dim, device, dtype, seconds, created_at "
                                  "from fingerprints where model_id = ? order by method, created_at", [mid])
        for f in fingerprints:
            try:
                f["config"] = json.loads(f.pop("config_json") or "{}")
            except json.JSONDecodeError:
                f["config"] = f.pop("config_json", None)
    similarities = 0
    if "similarities" in tables:
        similarities = con.execute("select count(*) from similarities where model_a = ? or model_b = ?",
                                   [mid, mid]).fetchone()[0]
    config_features = None
    if "model_configs" in tables:
        from fingerprinting.configs.features import FEATURES

        cols = [c[0] for c in con.execute("describe model_configs").fetchall()]
        keep = [c for c in ["config_hash", *FEATURES, "quant_method", "notes", "n_features"] if c in cols]
        rows = _rows(con, f"select {', '.join(keep)} from model_configs where model_id = ?", [mid])
        config_features = rows[0] if rows else None
    con.close()
    return {"model": m, "parents": parents, "children": children, "fingerprints": fingerprints,
            "similarity_rows": int(similarities), "config_features": config_features}


def _pair_rows(con, method: str | None, metric: str | None, ids: list[str] | None = None) -> list[dict]:
    if "similarities" not in _tables(con):
        return []
    where, params = [], []
    if method:
        where.append("method = ?")
        params.append(method)
    if metric:
        where.append("metric = ?")
        params.append(metric)
    if ids is not None:
        marks = ", ".join("?" * len(ids))
        where.append(f"model_a in ({marks}) and model_b in ({marks})")
        params += ids + ids
    sql = "select model_a, model_b, method, metric, config_hash, similarity from similarities"
    if where:
        sql += " where " + " and ".join(where)
    return _rows(con, sql + " order by method, metric, config_hash, model_a, model_b", params)


def compare_models(lake: Lake, a: str, b: str, method: str | None = None, metric: str | None = None) -> dict:
    """Similarity of two models per method x metric x config, and their shared lineage."""
    validate_method(method)
    validate_metric(metric)
    con = connect(lake)
    ma, mb = resolve_ids(con, [a, b])
    if ma["model_id"] == mb["model_id"]:
        raise QueryError(f"{a!r} and {b!r} are the same model ({ma['model_id']!r})")
    ids = sorted([ma["model_id"], mb["model_id"]])
    rows = [r for r in _pair_rows(con, method, metric, ids) if r["model_a"] != r["model_b"]]
    edges = _edges(con)
    con.close()
    sims = [{"method": r["method"], "metric": r["metric"], "config_hash": r["config_hash"],
             "similarity": r["similarity"]} for r in rows]
    combined, note = None, COMBINED_SCORE_NOTE
    from fingerprinting.provenance.verdict import NoVerdictModelError, ProvenanceError, verdict

    try:
        v = verdict(lake, ma["model_id"], mb["model_id"])
        combined = {k: v[k] for k in ("related", "score", "threshold", "logit", "evidence") if k in v}
        note = (f"combined verdict: {'RELATED' if v['related'] else 'unrelated'} (score {v['score']:.4f}, "
                f"threshold {v['threshold']:.4f} for {v.get('target_fpr', 0.01):.0%} FPR; "
                "`fplake verdict` shows the per-method evidence)")
    except NoVerdictModelError:
        pass
    except ProvenanceError as exc:  # e.g. no fingerprints of the verdict's features for this pair
        note = f"combined verdict: not available for this pair ({exc})"
    return {"a": ma, "b": mb, "similarities": sims,
            "same_family": ma["family"] == mb["family"],
            "lineage": lineage_relation(edges, ma["model_id"], mb["model_id"]),
            "combined": combined, "combined_note": note}


def similarity_pairs(lake: Lake, models: list[str] | None = None, method: str | None = None,
                     metric: str | None = None, threshold: float | None = None,
                     limit: int | None = None) -> list[dict]:
    """Pairs with display names, families and similarity, most similar first."""
    validate_method(method)
    validate_metric(metric)
    con = connect(lake)
    all_models = _models(con)
    ids = [m["model_id"] for m in resolve_ids(con, models, all_models)] if models else None
    rows = _pair_rows(con, method, metric, ids)
    con.close()
    info = {m["model_id"]: m for m in all_models}
    out = []
    for r in rows:
        if threshold is not None and r["similarity"] < threshold:
            continue
        ia, ib = info.get(r["model_a"], {}), info.get(r["model_b"], {})
        out.append({**r, "display_name_a": ia.get("display_name", r["model_a"]),
                    "display_name_b": ib.get("display_name", r["model_b"]),
                    "family_a": ia.get("family"), "family_b": ib.get("family")})
    out.sort(key=lambda r: (-r["similarity"], r["method"], r["metric"], r["model_a"], r["model_b"]))
    return out[:limit] if limit is not None else out


def similarity_matrices(pairs: list[dict], models: list[str] | None = None) -> list[dict]:
    """Group pairs into one square matrix per method x metric x config (None where no pair)."""
    groups: dict[tuple, list[dict]] = {}
    for p in pairs:
        groups.setdefault((p["method"], p["metric"], p["config_hash"]), []).append(p)
    out = []
    for (method, metric, cfg), rows in sorted(groups.items()):
        names: dict[str, str] = {}
        for r in rows:
            names[r["model_a"]] = r["display_name_a"]
            names[r["model_b"]] = r["display_name_b"]
        ids = [m for m in models if m in names] if models else sorted(names)
        index = {m: i for i, m in enumerate(ids)}
        mat: list[list[float | None]] = [[None] * len(ids) for _ in ids]
        for r in rows:
            if r["model_a"] in index and r["model_b"] in index:
                i, j = index[r["model_a"]], index[r["model_b"]]
                mat[i][j] = mat[j][i] = r["similarity"]
        lo, hi = metric_bounds(metric)
        out.append({"method": method, "metric": metric, "config_hash": cfg, "models": ids,
                    "display_names": [names[m] for m in ids], "matrix": mat, "lower": lo, "upper": hi})
    return out


def find_similar(lake: Lake, ident: str, method: str | None = None, metric: str | None = None,
                 threshold: float | None = None, limit: int | None = 10) -> dict:
    """Ranked neighbours of one model per method x metric x config, with lineage relation to it."""
    validate_method(method)
    validate_metric(metric)
    con = connect(lake)
    models = _models(con)
    ref = resolve_ids(con, [ident], models)[0]
    rid = ref["model_id"]
    edges = _edges(con)
    rows = [r for r in _pair_rows(con, method, metric) if rid in (r["model_a"], r["model_b"])
            and r["model_a"] != r["model_b"]]
    con.close()
    info = {m["model_id"]: m for m in models}
    graph = _graph(edges)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if threshold is not None and r["similarity"] < threshold:
            continue
        other = r["model_b"] if r["model_a"] == rid else r["model_a"]
        o = info.get(other, {})
        lin = lineage_relation(edges, rid, other, graph)
        relation = lin["relation"] if lin else ("same_family" if o.get("family") == ref["family"] else None)
        groups.setdefault((r["method"], r["metric"], r["config_hash"]), []).append({
            "model_id": other, "display_name": o.get("display_name", other), "family": o.get("family"),
            "model_type": o.get("model_type"), "relation": relation, "lineage": lin,
            "similarity": r["similarity"]})
    out = []
    for (m, mt, cfg), ns in sorted(groups.items()):
        ns.sort(key=lambda n: (-n["similarity"], n["model_id"]))
        ns = ns[:limit] if limit is not None else ns
        for rank, n in enumerate(ns, 1):
            n["rank"] = rank
        out.append({"method": m, "metric": mt, "config_hash": cfg, "neighbors": ns})
    return {"model": ref, "groups": out}


# ------------------------------------------------------------------ registry browser (read-only helpers)
BROWSE_TABLES = ("models", "model_edges", "fingerprints", "similarities", "model_configs")
_SNAPSHOT_TABLES = ("models", "model_edges")  # small: copied once into memory, so every open is cheap


def connect_tables(lake: Lake, tables: tuple[str, ...] = BROWSE_TABLES):
    """A read-only view of just ``tables`` (those that exist): cheaper to open than :func:`connect`.

    ``models`` and ``model_edges`` are copied into memory once (a snapshot for a browsing
    session); the others stay views over the lake (``delta_scan``).
    """
    from fingerprinting.lake import duckdb_connect

    load_system_tables()
    con = duckdb_connect(None if lake.is_local else lake.storage_options)
    for name in tables:
        if lake.exists(name):
            kind = "table" if name in _SNAPSHOT_TABLES else "view"
            con.execute(f"create or replace {kind} {name} as select * from delta_scan('{lake.uri(name)}')")
    return con


def browse_index(con) -> list[dict]:
    """One light row per registered model (counts of fingerprints, parents, children), in one query.

    ``source_kind`` is ``hub`` (hf://), ``gguf``, ``s3`` or ``folder``.
    """
    tables = _tables(con)
    if "models" not in tables:
        return []
    fp = ("left join (select model_id, count(*) as n from fingerprints group by 1) f using (model_id)"
          if "fingerprints" in tables else "left join (select null::varchar as model_id, 0 as n) f using (model_id)")
    if "model_edges" in tables:
        edges = ("left join (select child_id as model_id, count(*) as n from model_edges group by 1) p using (model_id) "
                 "left join (select parent_id as model_id, count(*) as n from model_edges group by 1) c using (model_id)")
    else:
        edges = ("left join (select null::varchar as model_id, 0 as n) p using (model_id) "
                 "left join (select null::varchar as model_id, 0 as n) c using (model_id)")
    return _rows(con, f"""
        select m.model_id, m.display_name, m.family, m.model_type, m.source, coalesce(m.arch, '') as arch,
               case when m.source like 'hf://%' then 'hub' when lower(m.source) like '%.gguf' then 'gguf'
                    when m.source like 's3://%' then 's3' else 'folder' end as source_kind,
               coalesce(f.n, 0) as fingerprints, coalesce(p.n, 0) as parents, coalesce(c.n, 0) as children
        from models m {fp} {edges}
        order by m.family, m.model_id""")


def model_neighbors(con, model_id: str, k: int = 5) -> list[dict]:
    """The ``k`` most similar models to ``model_id`` per method x metric x config_hash (one query)."""
    if "similarities" not in _tables(con):
        return []
    return _rows(con, """
        with p as (
            select method, metric, config_hash, similarity,
                   case when model_a = $1 then model_b else model_a end as model_id
            from similarities where (model_a = $1 or model_b = $1) and model_a <> model_b
        )
        select method, metric, config_hash, model_id, similarity,
               row_number() over (partition by method, metric, config_hash
                                  order by similarity desc, model_id) as rank
        from p qualify rank <= $2
        order by method, metric, config_hash, rank""", [model_id, int(k)])


def model_detail(con, model_id: str, k: int = 5, max_children: int = 50) -> dict:
    """Everything the browser shows for one registered model, read over ``con`` (no model is loaded).

    ``{"model", "parents", "children", "n_children", "ancestors", "fingerprints", "neighbors", "config"}``;
    ``ancestors`` are breadth-first with depth and the relations on the way down; each neighbour
    carries family, display name and its lineage relation to the model.
    """
    models = {m["model_id"]: m for m in _models(con)}
    if model_id not in models:
        resolve_ids(con, [model_id], list(models.values()))  # raises with "did you mean"
    m = models[model_id]
    edges = _edges(con)
    graph = _graph(edges)
    up, down = graph

    def named(mid: str, **extra) -> dict:
        o = models.get(mid, {})
        return {"model_id": mid, "display_name": o.get("display_name", mid), "family": o.get("family"), **extra}

    parents = [named(p, relation=r) for p, r in sorted(up.get(model_id, []))]
    kids = sorted(down.get(model_id, []))
    ancestors = [named(a, depth=d, derivation="/".join(reversed(rels)))
                 for a, (d, rels) in sorted(_ancestors(up, model_id).items(), key=lambda t: (t[1][0], t[0]))]
    tables = _tables(con)
    fingerprints = []
    if "fingerprints" in tables:
        fingerprints = _rows(con, "select method, config_hash, dim, device, dtype, seconds, created_at "
                                  "from fingerprints where model_id = ? order by method, config_hash", [model_id])
    neighbors = []
    for r in model_neighbors(con, model_id, k):
        lin = lineage_relation(edges, model_id, r["model_id"], graph)
        o = models.get(r["model_id"], {})
        relation = lin["relation"] if lin else ("same_family" if o.get("family") == m["family"] else None)
        neighbors.append({**r, **named(r["model_id"]), "model_type": o.get("model_type"), "relation": relation})
    config = None
    if "model_configs" in tables:
        from fingerprinting.configs.features import FEATURES

        cols = [c[0] for c in con.execute("describe model_configs").fetchall()]
        keep = [c for c in [*FEATURES, "quant_method"] if c in cols]
        rows = _rows(con, f"select {', '.join(keep)} from model_configs where model_id = ?", [model_id]) if keep else []
        config = {c: v for c, v in rows[0].items() if v is not None} if rows else None
    return {"model": m, "parents": parents, "children": [named(c, relation=r) for c, r in kids[:max_children]],
            "n_children": len(kids), "ancestors": ancestors, "fingerprints": fingerprints,
            "neighbors": neighbors, "config": config}

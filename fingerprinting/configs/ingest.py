"""Turn config sources into lake rows (``model_configs``, ``config_validation_issues``, ``model_traits``).

Sources, each yielding ``(model_id, config | None, error | None)``:

* :func:`registry_items` — every registered model: a local folder's
  ``config.json``, a ``.gguf`` file's metadata, or ``hf://`` ids through
  ``huggingface_hub`` (needs a network);
* :func:`fingerprinting.configs.features.read_config_source` — a user's folder,
  JSONL or Parquet file;
* :func:`catalogue_items` — the default config of every architecture the
  installed transformers knows (model ids ``catalogue/<model_type>``);
* :func:`lineage_batch` — the real Hub lineage sample shipped in
  ``helper_data/hf_lineage`` (partial configs, traits, models and edges).

Nothing here touches Prefect or the lake; :mod:`flows.config_flow` writes the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from fingerprinting.configs.features import (
    EXTRA_KEYS,
    FEATURES,
    catalogue_configs,
    config_hash,
    default_trait_sets,
    extract_features,
    gguf_metadata_to_config,
    lineage_partial_config,
    load_hf_lineage,
)
from fingerprinting.configs.tables import CONFIG_ISSUES, MODEL_CONFIGS, MODEL_TRAITS

Item = tuple[str | None, dict | None, str | None]


@dataclass
class ConfigBatch:
    """Rows for the lake from one source, plus one line per problem (model or line named)."""

    source: str
    configs: list[dict] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)
    traits: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pa.Table]:
        return {
            "model_configs": pa.Table.from_pylist(self.configs, schema=MODEL_CONFIGS.schema),
            "config_validation_issues": pa.Table.from_pylist(self.issues, schema=CONFIG_ISSUES.schema),
            "model_traits": pa.Table.from_pylist(self.traits, schema=MODEL_TRAITS.schema),
        }


def build_batch(items: Iterable[Item], source: str) -> ConfigBatch:
    """Extract features from each config; errors and rejected fields become issues, never exceptions."""
    now = datetime.now(UTC)
    batch = ConfigBatch(source)
    seen: set[str] = set()
    for model_id, config, error in items:
        if error is not None or config is None:
            name = model_id or "(no model id)"
            error = (error or "no config").strip().splitlines()[0][:200]  # one line per problem
            batch.problems.append(f"{source}: {name}: {error}")
            if model_id:
                batch.issues.append(_issue(model_id, source, "*", "", error, "error", now))
            continue
        if not model_id:
            batch.problems.append(f"{source}: a config without a model id was skipped")
            continue
        if model_id in seen:
            batch.problems.append(f"{source}: {model_id}: duplicate model id; the last config wins")
            batch.configs = [c for c in batch.configs if c["model_id"] != model_id]
        seen.add(model_id)
        if not isinstance(config, dict):
            batch.problems.append(f"{source}: {model_id}: config is a {type(config).__name__}, not an object")
            batch.issues.append(_issue(model_id, source, "*", str(config)[:200], "config is not a JSON object",
                                       "error", now))
            continue
        feats, issues = extract_features(config, model_id)
        for i in issues:
            batch.issues.append(_issue(model_id, source, i.field, i.raw_value, i.message,
                                       getattr(i, "level", "error"), now))
        if any(i.field == "*" for i in issues):
            batch.problems.append(f"{source}: {model_id}: {issues[0].message}")
            continue
        n = sum(feats.get(f) is not None for f in FEATURES)
        row = {"model_id": model_id, "source": source, "config_hash": config_hash(config),
               "raw_json": json.dumps(config, sort_keys=True, default=str), "n_features": n,
               "ingested_at": now}
        row.update({f: feats.get(f) for f in FEATURES})
        row.update({k: _text(feats.get(k)) for k in EXTRA_KEYS})
        batch.configs.append(row)
    return batch


def _text(v) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v, default=str)


def _issue(model_id, source, fld, raw, message, level, now) -> dict:
    return {"model_id": model_id, "source": source, "field": fld, "raw_value": str(raw)[:500],
            "message": message, "level": level, "ingested_at": now}


# ------------------------------------------------------------------ sources
def read_gguf_metadata(path: str | Path) -> dict:
    """Scalar metadata of a GGUF file plus the token count (needs the optional ``gguf`` package)."""
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise RuntimeError("reading GGUF metadata needs the gguf package: pip install -e '.[gguf]'") from exc
    reader = GGUFReader(str(path))
    meta: dict = {}
    for name, fld in reader.fields.items():
        if name == "tokenizer.ggml.tokens":
            meta[name] = len(fld.data)
            continue
        if name.startswith("tokenizer.") and len(fld.data) > 1:
            continue  # merges, scores, token types: large and not needed
        try:
            value = fld.contents()
        except Exception:  # an unusual field type: skip rather than fail the model
            continue
        meta[name] = value
    return meta


def registry_items(records: Iterable, *, network: bool = False) -> Iterator[Item]:
    """Configs of registered models (``ModelRecord``): folder, GGUF file or ``hf://`` id."""
    from fingerprinting.configs.features import read_config_source
    from fingerprinting.loading import ModelSource

    for rec in records:
        src = ModelSource.parse(rec.source)
        try:
            if src.gguf_file:
                meta = read_gguf_metadata(Path(src.path) / src.gguf_file)
                yield rec.model_id, gguf_metadata_to_config(meta), None
            elif src.hub_id:
                if not network:
                    yield rec.model_id, None, f"hf://{src.hub_id}: fetching config.json needs a network (--network)"
                    continue
                from huggingface_hub import hf_hub_download

                path = hf_hub_download(src.hub_id, "config.json", revision=src.revision)
                yield rec.model_id, json.loads(Path(path).read_text()), None
            else:
                cfg_path = Path(src.path) / "config.json"
                if not cfg_path.exists():
                    yield rec.model_id, None, f"no config.json in {src.path}"
                    continue
                for _, cfg, err in read_config_source(cfg_path):
                    yield rec.model_id, cfg, err
        except Exception as exc:  # one model's failure must not sink the batch
            yield rec.model_id, None, f"{type(exc).__name__}: {exc}"


def catalogue_items() -> Iterator[Item]:
    """Default configs of every architecture in the installed transformers (``catalogue/<type>``)."""
    for model_type, cfg, err in catalogue_configs():
        yield f"catalogue/{model_type}", cfg, err


@dataclass
class LineageData:
    batch: ConfigBatch
    models: list[dict]
    edges: list[dict]


def lineage_batch(folder: str | Path | None = None) -> LineageData:
    """The Hub lineage sample: partial configs, traits, registry rows and edges."""
    models, edges = load_hf_lineage(folder)
    items = []
    for m in models:
        cfg = lineage_partial_config(m)
        if cfg:
            items.append((m["model_id"], cfg, None))
    batch = build_batch(items, "hf_lineage")
    for m in models:
        sets = default_trait_sets(m)
        batch.traits.append({"model_id": m["model_id"], "source": "hf_lineage",
                             "license": sorted(sets.get("license", ())),
                             "languages": sorted(sets.get("languages", ())),
                             "pipeline_tag": sorted(sets.get("pipeline_tag", ())),
                             "library": sorted(sets.get("library", ())),
                             "created_at": m.get("created_at")})
    return LineageData(batch, models, edges)

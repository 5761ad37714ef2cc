"""Shared by the provenance tests: a small real lake (the tiny zoo fingerprinted with weight_spectrum)."""

from __future__ import annotations

SIBLINGS = [("llama-distilled", "gpt2-distilled"), ("neox-code", "mistral-code")]


def build_tiny_lake(root: str, manifest: dict, metrics=("l1", "correlation", "cosine"), siblings=SIBLINGS):
    """Register the tiny zoo in a lake at ``root``, fingerprint it with weight_spectrum, store all pairs.

    ``siblings`` (display-name pairs from different families) go into ``model_siblings`` when the lake
    declares that table. Returns (lake, config_hash, sibling id pairs).
    """
    from fingerprinting import pipeline
    from fingerprinting.lake import TABLES, Lake
    from fingerprinting.methods import make_method
    from fingerprinting.registry import list_models, register_models, zoo_records

    lake = Lake(root).init()
    register_models(lake, zoo_records(manifest))
    method = make_method("weight_spectrum")
    fps = []
    for rec in list_models(lake):
        fps += pipeline.fingerprint_model(rec, [method], device="cpu")
    pipeline.write_fingerprints(lake, pipeline.fingerprint_table(fps, "test"))
    pipeline.compute_similarities(lake, "weight_spectrum", method.config_hash, list(metrics))
    by_name = {m["display_name"]: m["model_id"] for m in manifest["models"]}
    pairs = [tuple(sorted((by_name[a], by_name[b]))) for a, b in siblings]
    if pairs and "model_siblings" in TABLES:
        import pyarrow as pa

        lake.merge("model_siblings", pa.table({"model_a": [a for a, _ in pairs], "model_b": [b for _, b in pairs],
                                               "note": ["test"] * len(pairs)}))
    else:
        pairs = []
    return lake, method.config_hash, pairs

"""Hub-scale similarity analytics without N^2 rows.

* :mod:`~fingerprinting.scale.aggregates`: one tiled pass over all pairs (:func:`sweep`) that
  accumulates exact per family-pair statistics and quantile sketches, exact top-k
  neighbours and, optionally, the intrafamily pairs;
* :mod:`~fingerprinting.scale.neighbors`: exact blocked top-k (CPU or CUDA);
* :mod:`~fingerprinting.scale.ann`: faiss HNSW top-k above a threshold, exact below;
* :mod:`~fingerprinting.scale.tables`: the lake tables ``similarity_aggregates`` and
  ``similarity_neighbors`` and their row builders.

``fingerprinting.pipeline.compute_similarities`` switches to this path above
``FPLAKE_SCALE_THRESHOLD`` models; the dbt marts read the aggregates for those experiments.
"""

# Submodules load on first use: the lake imports ``fingerprinting.scale.tables`` (table declarations)
# on every start, and that must not pull in torch.
_EXPORTS = {
    "GroupPairAggregates": "aggregates", "PairAggregator": "aggregates", "SweepResult": "aggregates",
    "iter_tiles": "aggregates", "sweep": "aggregates",
    "STRATEGIES": "ann", "approximate_topk": "ann", "recall_at_k": "ann",
    "Neighbors": "neighbors", "exact_topk": "neighbors", "exact_topk_rows": "neighbors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"fingerprinting.scale.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Architecture similarity and drift from ``config.json``: pure-Python kernels.

* :mod:`.features` — feature extraction with alias resolution and validation,
  config sources (folders, JSONL, Parquet, the transformers catalogue, GGUF
  metadata) and the real Hub lineage sample.
* :mod:`.gower` — vectorised, blocked Gower distances and exact top-k.
* :mod:`.drift` — per-edge config drift, trait mutation rates, lineage graph checks.
* :mod:`.phylogeny` — clustering, 2-D embeddings and neighbour recovery.

Nothing here imports Prefect, dbt or the lake; flows wire these kernels in.
"""

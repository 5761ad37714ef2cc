"""Fingerprint Lake: fingerprint language models and analyse their lineage.

The package is importable without Prefect or dbt; flows in ``flows/`` wrap it.
"""

__version__ = "0.1.0"

"""The calibrated provenance verdict: one score per model pair that combines every method's similarity.

:mod:`fingerprinting.provenance.verdict` holds the kernels (pair features, leave-one-family-out
logistic regression, threshold at a target false-positive rate, the verdict for a pair);
:mod:`fingerprinting.provenance.tables` declares the lake tables ``provenance_scores`` and
``provenance_model``. The Prefect flow is ``flows/provenance_flow.py``. (Nothing is re-exported
here, so importing the table declarations does not pull in scikit-learn.)
"""

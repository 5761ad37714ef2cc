"""Demo zoo with ground-truth lineage (see :mod:`fingerprinting.zoo.build`)."""

from fingerprinting.zoo.build import PROFILES, build_zoo, model_info

__all__ = ["PROFILES", "build_zoo", "model_info"]

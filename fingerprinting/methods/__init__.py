"""Fingerprint methods; importing this package registers all of them."""

from fingerprinting.methods import input_output, output, representation, weight  # noqa: F401  (registration)
from fingerprinting.methods.base import (
    METHODS,
    Fingerprint,
    FingerprintError,
    FingerprintMethod,
    MethodConfigError,
    make_method,
)

__all__ = ["METHODS", "Fingerprint", "FingerprintError", "FingerprintMethod", "MethodConfigError", "make_method"]

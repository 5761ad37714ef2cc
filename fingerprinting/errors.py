"""The product's base error: command lines catch this one class and print one line."""

from __future__ import annotations


class FingerprintLakeError(Exception):
    """Base of every error the product raises on purpose (bad input, lake, registry, ...)."""

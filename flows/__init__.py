"""Prefect flows and command-line entry points of Fingerprint Lake."""

from fingerprinting.settings import apply_quiet_env

apply_quiet_env()

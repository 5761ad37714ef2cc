"""``fplake registry sync``: copy the global registry's models (and fingerprints) into the local lake.

Wired into :mod:`flows.cli` with :func:`add_sync_parser` (on the ``registry``
sub-parsers) and :func:`cmd_sync` (for ``reg_cmd == "sync"``).
"""

from __future__ import annotations

import argparse
import sys


def add_sync_parser(registry_subparsers, common: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``sync`` under ``fplake registry``."""
    s = registry_subparsers.add_parser(
        "sync", parents=[common] if common is not None else [],
        help="copy models and lineage (and optionally fingerprints) from the global registry into the local lake",
    )
    s.add_argument("--location", help="global registry location (default: FPLAKE_GLOBAL_REGISTRY)")
    s.add_argument("--fingerprints", action="store_true", help="also copy the global registry's fingerprints")
    return s


def format_report(report: dict[str, dict[str, int]]) -> list[str]:
    return [f"{table}: {c['new']} new, {c['updated']} updated, {c['unchanged']} unchanged"
            for table, c in report.items()]


def cmd_sync(args) -> int:
    from fingerprinting.errors import FingerprintLakeError
    from fingerprinting.lake import Lake
    from fingerprinting.registry import sync_registry
    from flows.cli import _settings

    settings = _settings(args)
    location = getattr(args, "location", None) or settings.global_registry
    try:
        report = sync_registry(location, Lake(settings.lake_root).init(),
                               fingerprints=bool(getattr(args, "fingerprints", False)))
    except FingerprintLakeError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"fplake: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    for line in format_report(report):
        print(line)
    return 0

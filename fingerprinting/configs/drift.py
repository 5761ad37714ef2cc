"""Drift along lineage edges: config Gower distance, trait mutation rate, graph checks.

These are the plain-Python reference versions (dbt computes the same drift in
SQL over the lake); they work on feature dicts as
:func:`~fingerprinting.configs.features.extract_features` returns them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from fingerprinting.configs.features import FEATURE_KINDS, FEATURES


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def gower_pair(
    a: dict,
    b: dict,
    ranges: dict[str, float] | None = None,
    *,
    variant: str = "standard",
    features: Sequence[str] = FEATURES,
    weights: dict[str, float] | None = None,
) -> tuple[float, int]:
    """(Gower distance, number of features compared) of two feature dicts, one pair at a time.

    The straightforward per-pair definition (the notebook's way); the
    vectorised :mod:`~fingerprinting.configs.gower` must agree with it.
    ``ranges`` (feature -> population range) is needed for ``variant="standard"``;
    a numeric feature without a range there is skipped. NaN when nothing compared.
    """
    if variant not in ("standard", "max"):
        raise ValueError(f"unknown Gower variant {variant!r}; known: standard, max")
    total = weight_sum = 0.0
    compared = 0
    for f in features:
        x, y = a.get(f), b.get(f)
        if not (_present(x) and _present(y)):
            continue
        w = 1.0 if weights is None else float(weights.get(f, 1.0))
        if FEATURE_KINDS.get(f, "categorical") == "numeric":
            if not (_is_num(x) and _is_num(y)):
                continue
            if variant == "standard":
                rng = (ranges or {}).get(f)
                if rng is None or not math.isfinite(rng):
                    continue
                d = abs(x - y) / rng if rng > 0 else 0.0
            else:
                m = max(abs(x), abs(y))
                d = abs(x - y) / m if m > 0 else 0.0
        else:
            d = 0.0 if x == y else 1.0
        if w == 0:
            continue
        total += w * d
        weight_sum += w
        compared += 1
    return (total / weight_sum if weight_sum > 0 else math.nan), compared


def feature_ranges(rows: Iterable[dict], features: Sequence[str] = FEATURES) -> dict[str, float]:
    """max - min of every numeric feature over the rows (features with no value left out)."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for r in rows:
        for f in features:
            v = r.get(f)
            if FEATURE_KINDS.get(f) == "numeric" and _is_num(v) and _present(v):
                lo[f] = min(lo.get(f, v), v)
                hi[f] = max(hi.get(f, v), v)
    return {f: float(hi[f] - lo[f]) for f in lo}


def edge_drift(parent: dict, child: dict, ranges: dict[str, float]) -> dict:
    """Config drift of one parent -> child edge.

    ``gower_standard`` (range-normalised), ``gower_max`` (notebook variant),
    ``changed_fields`` (sorted features present on both sides whose values
    differ) and ``n_compared`` (features present on both sides).
    """
    standard, _ = gower_pair(parent, child, ranges, variant="standard")
    maxv, _ = gower_pair(parent, child, ranges, variant="max")
    both = [f for f in FEATURES if _present(parent.get(f)) and _present(child.get(f))]
    changed = sorted(f for f in both if parent[f] != child[f])
    return {
        "gower_standard": standard,
        "gower_max": maxv,
        "changed_fields": changed,
        "n_compared": len(both),
    }


def trait_mutation_rate(
    parent_set: Iterable[str] | None, child_set: Iterable[str] | None
) -> float | None:
    """(|union| - |intersection|) / |union| of two trait sets; None when either is empty/unknown."""
    if parent_set is None or child_set is None:
        return None
    p, c = set(parent_set), set(child_set)
    if not p or not c:
        return None
    union = p | c
    return (len(union) - len(p & c)) / len(union)


def _edge_pairs(edges: Iterable[Any]) -> list[tuple[str, str]]:
    pairs = []
    for e in edges:
        if isinstance(e, dict):
            pairs.append((e["parent_id"], e["child_id"]))
        else:
            parent, child = e[0], e[1]
            pairs.append((parent, child))
    return pairs


def detect_cycles(edges: Iterable[Any]) -> list[list[str]]:
    """Groups of models that lie on a directed cycle (parent -> child).

    Each group is a strongly connected component with more than one node, or a
    single node with an edge to itself; nodes sorted within a group, groups
    sorted by their first node. Iterative Tarjan, so deep trees are fine.
    ``edges``: (parent, child) pairs or dicts with parent_id / child_id.
    """
    pairs = _edge_pairs(edges)
    succ: dict[str, list[str]] = {}
    self_loops = set()
    for p, c in pairs:
        succ.setdefault(p, []).append(c)
        succ.setdefault(c, [])
        if p == c:
            self_loops.add(p)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(succ):
        if start in index:
            continue
        work = [(start, iter(succ[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == node:
                        break
                if len(comp) > 1 or node in self_loops:
                    groups.append(sorted(comp))
    return sorted(groups)


def edge_depths(edges: Iterable[Any]) -> dict[str, int]:
    """Depth of every child from a root (a node that is nobody's child): BFS, shortest path.

    Roots themselves are not children and so are not in the result. Children
    reachable only through a cycle have no root and are left out too (see
    :func:`detect_cycles`); nothing loops forever.
    """
    pairs = _edge_pairs(edges)
    succ: dict[str, list[str]] = {}
    children = set()
    for p, c in pairs:
        succ.setdefault(p, []).append(c)
        children.add(c)
    roots = sorted(set(succ) - children)
    depth: dict[str, int] = {r: 0 for r in roots}
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        for c in succ.get(node, []):
            if c not in depth:
                depth[c] = depth[node] + 1
                queue.append(c)
    return {c: depth[c] for c in children if c in depth}

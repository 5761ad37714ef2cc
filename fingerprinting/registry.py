"""Model registry: the lake's ``models`` / ``model_edges`` tables, plus a guarded global registry.

The *local* registry is the lake itself. The *global* (shared) registry lives
at ``Settings.global_registry``: a lake of its own with a
``registry_config.json`` that holds the SHA-256 of the admin token. Writes to
it need that token (``FPLAKE_ADMIN_TOKEN`` or ``--admin-token``) and are
refused otherwise.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import fsspec
import pyarrow as pa

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.lake import Lake

RELATIONS = {"finetune", "quantized", "distilled", "merge", "pruned", "adapter"}


class UnknownModelError(FingerprintLakeError, KeyError):
    def __init__(self, unknown: list[str], known: list[str], names: list[str] | None = None):
        self.unknown = unknown
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, known, n=1)
            hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        msg = f"unknown model id(s): {', '.join(hints)}."
        msg += f" {len(known)} model(s) registered" + (": " + ", ".join(known[:20]) if known else "; run `fplake register-demo` first")
        # no close id, but a close display name: say so
        by_name = [(u, difflib.get_close_matches(u, names or [], n=1)) for u in unknown
                   if not difflib.get_close_matches(u, known, n=1)]
        name_hints = [f"{u!r}: did you mean display name {c[0]!r}?" for u, c in by_name if c]
        if name_hints:
            msg += f" ({'; '.join(name_hints)})"
        super().__init__(msg)

    def __str__(self) -> str:
        return self.args[0]


def match_ids(idents: list[str], items: list, model_id=lambda r: r.model_id,
              display_name=lambda r: r.display_name) -> list:
    """``items`` for ``idents`` (by model id, else by unique display name), in order.

    Raises :class:`UnknownModelError` (with "did you mean" on ids and display names).
    """
    by_id = {model_id(r): r for r in items}
    by_name: dict[str, list] = {}
    for r in items:
        by_name.setdefault(display_name(r), []).append(r)
    out, unknown = [], []
    for i in idents:
        if i in by_id:
            out.append(by_id[i])
        elif len(by_name.get(i, [])) == 1:
            out.append(by_name[i][0])
        else:
            unknown.append(i)
    if unknown:
        names = sorted(n for n, rs in by_name.items() if len(rs) == 1 and n not in by_id)
        raise UnknownModelError(unknown, sorted(by_id, key=lambda s: (len(s), s)), names)
    return out


class RegistryPermissionError(FingerprintLakeError, PermissionError):
    pass


@dataclass
class ModelRecord:
    model_id: str
    source: str
    family: str
    model_type: str
    display_name: str
    arch: str = ""
    parents: list[tuple[str, str]] = field(default_factory=list)


def register_models(lake: Lake, records: list[ModelRecord]) -> int:
    """Upsert models and their parent edges into the lake; returns the number of models."""
    if not records:
        return 0
    now = datetime.now(UTC)
    ids = [r.model_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate model_id in registration batch")
    for r in records:
        for _, rel in r.parents:
            if rel not in RELATIONS:
                raise ValueError(f"model {r.model_id!r}: unknown relation {rel!r}; known: {sorted(RELATIONS)}")
    lake.merge("models", pa.table({
        "model_id": ids,
        "source": [r.source for r in records],
        "family": [r.family for r in records],
        "model_type": [r.model_type for r in records],
        "display_name": [r.display_name for r in records],
        "arch": [r.arch for r in records],
        "registered_at": pa.array([now] * len(records), pa.timestamp("us", tz="UTC")),
    }))
    edges = [(p, r.model_id, rel) for r in records for p, rel in r.parents]
    if edges:
        lake.merge("model_edges", pa.table({
            "parent_id": [e[0] for e in edges], "child_id": [e[1] for e in edges],
            "relation": [e[2] for e in edges],
        }))
    return len(records)


def register_siblings(lake: Lake, pairs: list[tuple[str, str]], note: str = "") -> int:
    """Record same-recipe pairs that are NOT derived from each other (hardest negatives).

    Siblings are not lineage: they never enter ``model_edges``; marts report them as
    ``relation = 'sibling'`` among the unrelated pairs. Idempotent (merge on the ordered pair).
    """
    rows = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    if not rows:
        return 0
    lake.merge("model_siblings", pa.table({"model_a": [a for a, _ in rows], "model_b": [b for _, b in rows],
                                           "note": [note] * len(rows)}))
    return len(rows)


def list_models(lake: Lake) -> list[ModelRecord]:
    models = lake.read("models").to_pylist()
    edges = lake.read("model_edges").to_pylist()
    parents: dict[str, list] = {}
    for e in edges:
        parents.setdefault(e["child_id"], []).append((e["parent_id"], e["relation"]))
    return [ModelRecord(m["model_id"], m["source"], m["family"], m["model_type"], m["display_name"],
                        m.get("arch") or "", parents.get(m["model_id"], [])) for m in models]


def resolve_models(lake: Lake, ids: list[str]) -> list[ModelRecord]:
    """Registry records for ``ids`` (by model_id, else by unique display name), in order."""
    return match_ids(ids, list_models(lake))


def zoo_records(manifest: dict) -> list[ModelRecord]:
    return [ModelRecord(m["model_id"], m["path"], m["family"], m["model_type"], m["display_name"],
                        m.get("arch", ""), [tuple(p) for p in m["parents"]]) for m in manifest["models"]]


# ------------------------------------------------------------------ global
def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class GlobalRegistry:
    """The shared registry. Reading is open; writing needs the admin token."""

    CONFIG = "registry_config.json"

    def __init__(self, location: str):
        self.location = location.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.location)
        self.lake = Lake(self.location)

    def _config(self) -> dict | None:
        p = f"{self._base}/{self.CONFIG}"
        if not self.fs.exists(p):
            return None
        with self.fs.open(p, "r") as fh:
            return json.load(fh)

    @classmethod
    def initialise(cls, location: str, token: str | None = None) -> tuple[GlobalRegistry, str]:
        """Create the registry with a new admin token (returned once; only its hash is stored)."""
        reg = cls(location)
        if reg._config() is not None:
            raise RegistryPermissionError(f"global registry at {location!r} is already initialised")
        token = token or secrets.token_urlsafe(24)
        reg.fs.makedirs(reg._base, exist_ok=True)
        with reg.fs.open(f"{reg._base}/{cls.CONFIG}", "w") as fh:
            json.dump({"admin_token_sha256": _hash_token(token), "created_at": datetime.now(UTC).isoformat()}, fh)
        reg.lake.init()
        return reg, token

    def check_write(self, token: str | None) -> None:
        """Raise :class:`RegistryPermissionError` unless ``token`` is the admin token."""
        cfg = self._config()
        if cfg is None:
            raise RegistryPermissionError(
                f"global registry at {self.location!r} is not initialised; an admin runs "
                "`fplake registry init-global` first"
            )
        token = token if token is not None else os.environ.get("FPLAKE_ADMIN_TOKEN")
        if not token:
            raise RegistryPermissionError(
                "writing to the global registry needs the admin token: set FPLAKE_ADMIN_TOKEN "
                "or pass --admin-token"
            )
        if not hmac.compare_digest(_hash_token(token), cfg.get("admin_token_sha256", "")):
            raise RegistryPermissionError("admin token rejected by the global registry")

    def publish(self, token: str | None, records: list[ModelRecord], fingerprints: pa.Table | None = None) -> int:
        """Write models (and fingerprints) to the global registry after checking the token."""
        self.check_write(token)
        n = register_models(self.lake, records)
        if fingerprints is not None and fingerprints.num_rows:
            self.lake.merge("fingerprints", fingerprints)
        return n

    def sync_into(self, local_lake: Lake, fingerprints: bool = False) -> dict[str, dict[str, int]]:
        """Copy models and edges (and fingerprints) into ``local_lake``; see :func:`sync_registry`."""
        if self._config() is None:
            raise RegistryNotFoundError(
                f"no global registry at {self.location!r} (missing or not initialised); an admin runs "
                "`fplake registry init-global`, or pass --location / set FPLAKE_GLOBAL_REGISTRY"
            )
        same = (os.path.realpath(local_lake.root) == os.path.realpath(self.lake.root)
                if local_lake.is_local and self.lake.is_local else local_lake.root == self.lake.root)
        if same:
            raise FingerprintLakeError(f"the local lake and the global registry are the same place ({self.location!r})")
        tables = SYNC_TABLES + (("fingerprints",) if fingerprints else ())
        # read and diff everything first, so a read error leaves the local lake untouched
        plan = {}
        for table in tables:
            plan[table] = diff_rows(table, self.lake.read(table), local_lake.read(table))
        report = {}
        for table, (rows, counts) in plan.items():
            if rows.num_rows:
                local_lake.merge(table, rows)
            report[table] = counts
        return report


# ------------------------------------------------------------------ sync (global -> local)
class RegistryNotFoundError(FingerprintLakeError, FileNotFoundError):
    """The global registry is missing or was never initialised."""

    def __str__(self) -> str:
        return self.args[0]


# columns that record *when* a row was written locally, not what it says: not part of "changed"
_SYNC_IGNORED = {"models": frozenset({"registered_at"})}
SYNC_TABLES = ("models", "model_edges")


def _same(a, b) -> bool:
    """Value equality for lake cells (NaN equals NaN; lists compared element-wise)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def diff_rows(table: str, incoming: pa.Table, current: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Rows of ``incoming`` that are new or changed relative to ``current`` (by the table's key), and counts.

    Returns ``(rows_to_merge, {"new": n, "updated": n, "unchanged": n})``. A row is *updated* when
    some column value differs (columns in ``_SYNC_IGNORED`` excepted); duplicated keys in
    ``incoming`` count once (the last one wins, as in :meth:`Lake.merge`).
    """
    from fingerprinting.lake import TABLES

    key = TABLES[table].key
    ignored = _SYNC_IGNORED.get(table, frozenset())
    have = {tuple(r[k] for k in key): r for r in current.to_pylist()}
    last: dict[tuple, int] = {}
    rows = incoming.to_pylist()
    for i, r in enumerate(rows):
        last[tuple(r[k] for k in key)] = i
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    take = []
    for k, i in last.items():
        r = rows[i]
        old = have.get(k)
        if old is None:
            counts["new"] += 1
            take.append(i)
        elif any(not _same(v, old.get(c)) for c, v in r.items() if c not in ignored):
            counts["updated"] += 1
            take.append(i)
        else:
            counts["unchanged"] += 1
    return incoming.take(pa.array(sorted(take), pa.int64())), counts


def sync_registry(global_location: str, local_lake: Lake, fingerprints: bool = False) -> dict[str, dict[str, int]]:
    """Copy the global registry's models and edges (and fingerprints) into ``local_lake``.

    Reading the global registry needs no token. Only new or changed rows are
    merged (by key), so a rerun writes nothing and never duplicates. Returns
    ``{table: {"new": n, "updated": n, "unchanged": n}}`` in sync order.
    """
    return GlobalRegistry(global_location).sync_into(local_lake, fingerprints=fingerprints)

"""Lake I/O: Parquet tables under one root (local folder or fsspec URL).

Layout (one folder per table; every file is a complete, self-describing part)::

    <root>/models/models.parquet
    <root>/model_edges/model_edges.parquet
    <root>/fingerprints/<method>/<config_hash>/<model_key>.parquet
    <root>/similarities/<method>/<config_hash>/<metric>.parquet
    <root>/<table>/_schema.parquet            (zero rows; lets globs match on an empty lake)

Writes are atomic (temporary name without the ``.parquet`` suffix, then a
rename; object stores put whole objects) and idempotent (the same work maps
to the same file name, so a rerun replaces it). Readers glob ``**/*.parquet``
and never see a partial file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


class LakeSchemaError(ValueError):
    """A table is missing required columns or has incompatible types."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]


_STR = pa.string()
TABLES: dict[str, TableSpec] = {
    "models": TableSpec(
        "models",
        pa.schema([
            ("model_id", _STR), ("source", _STR), ("family", _STR), ("model_type", _STR),
            ("display_name", _STR), ("arch", _STR), ("registered_at", pa.timestamp("us", tz="UTC")),
        ]),
        ("model_id",),
    ),
    "model_edges": TableSpec(
        "model_edges",
        pa.schema([("parent_id", _STR), ("child_id", _STR), ("relation", _STR)]),
        ("parent_id", "child_id", "relation"),
    ),
    "fingerprints": TableSpec(
        "fingerprints",
        pa.schema([
            ("model_id", _STR), ("method", _STR), ("config_hash", _STR), ("config_json", _STR),
            ("vector", pa.list_(pa.float64())), ("dim", pa.int32()), ("device", _STR), ("dtype", _STR),
            ("seconds", pa.float64()), ("library_versions", _STR), ("provenance_json", _STR),
            ("run_id", _STR), ("created_at", pa.timestamp("us", tz="UTC")),
        ]),
        ("model_id", "method", "config_hash"),
    ),
    "similarities": TableSpec(
        "similarities",
        pa.schema([
            ("model_a", _STR), ("model_b", _STR), ("method", _STR), ("metric", _STR),
            ("config_hash", _STR), ("similarity", pa.float64()),
        ]),
        ("model_a", "model_b", "method", "metric", "config_hash"),
    ),
}


def safe_key(text: str) -> str:
    """A file-name-safe, collision-free rendering of an id (readable prefix + hash)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]
    return f"{clean}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def conform(table: pa.Table, spec: TableSpec) -> pa.Table:
    """Check required columns, cast to the contract's types, keep extra columns."""
    missing = [f.name for f in spec.schema if f.name not in table.column_names]
    if missing:
        raise LakeSchemaError(f"table {spec.name!r}: missing column(s) {missing}")
    cols, fields = [], []
    for f in spec.schema:
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise LakeSchemaError(
                    f"table {spec.name!r}: column {f.name!r} has type {col.type}, expected {f.type}"
                ) from exc
        cols.append(col)
        fields.append(f)
    for name in table.column_names:
        if name not in spec.schema.names:
            cols.append(table.column(name))
            fields.append(table.schema.field(name))
    for key in spec.key:
        if table.column(key).null_count:
            raise LakeSchemaError(f"table {spec.name!r}: key column {key!r} has nulls")
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


class Lake:
    """Parquet tables under ``root`` (a local path or an fsspec URL such as ``s3://bucket/lake``)."""

    def __init__(self, root: str, storage_options: dict | None = None):
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self.is_local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol

    # ------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return "/".join([self._base.rstrip("/"), *parts])

    def url(self, *parts: str) -> str:
        """Location for external readers (DuckDB): a plain path locally, a URL remotely."""
        return "/".join([self.root, *parts])

    def table_glob(self, table: str) -> str:
        return self.url(table, "**", "*.parquet")

    # ------------------------------------------------------------ init
    def init(self) -> Lake:
        """Create every table folder with a zero-row schema file (idempotent)."""
        for name, spec in TABLES.items():
            target = self.path(name, "_schema.parquet")
            if not self.fs.exists(target):
                self.write_file(spec.schema.empty_table(), name, "_schema.parquet", validate=False)
        return self

    # ------------------------------------------------------------ write
    def write_file(self, table: pa.Table, table_name: str, *relpath: str, validate: bool = True) -> str:
        """Write one part atomically; replacing an existing part with the same name."""
        spec = TABLES.get(table_name)
        if validate and spec is not None:
            table = conform(table, spec)
        final = self.path(table_name, *relpath)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        data = buf.getvalue()
        if self.is_local:
            tmp = f"{parent}/.{relpath[-1]}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        else:  # an object-store PUT is atomic: readers see the old or the new object
            with self.fs.open(final, "wb") as fh:
                fh.write(data)
        return final

    def delete_file(self, table_name: str, *relpath: str) -> None:
        p = self.path(table_name, *relpath)
        if self.fs.exists(p):
            self.fs.rm(p)

    # ------------------------------------------------------------ read
    def files(self, table_name: str, under: tuple[str, ...] = ()) -> list[str]:
        """Parquet parts of a table, optionally only those below ``<table>/<under...>/``."""
        found = sorted(self.fs.glob(self.path(table_name, *under, "**", "*.parquet")))
        top = sorted(self.fs.glob(self.path(table_name, *under, "*.parquet")))
        return sorted(set(found) | set(top))

    def read(self, table_name: str, columns: list[str] | None = None,
             filters: Iterable | None = None, under: tuple[str, ...] = ()) -> pa.Table:
        """Read a table (all parts, or those below ``under``), schema-checked against the contract."""
        spec = TABLES[table_name]
        parts = []
        for f in self.files(table_name, under):
            with self.fs.open(f, "rb") as fh:
                try:
                    t = pq.read_table(fh)
                except Exception as exc:
                    raise LakeSchemaError(f"table {table_name!r}: unreadable part {f!r}: {exc}") from exc
            if t.num_rows == 0:
                continue
            parts.append(conform(t, spec).select(spec.schema.names))
        table = pa.concat_tables(parts) if parts else spec.schema.empty_table()
        if filters:
            import pyarrow.compute as pc

            mask = None
            for col, value in filters:
                cond = pc.equal(table.column(col), value)
                mask = cond if mask is None else pc.and_(mask, cond)
            table = table.filter(mask)
        if columns:
            table = table.select(columns)
        return table

    def read_file(self, table_name: str, *relpath: str) -> pa.Table | None:
        p = self.path(table_name, *relpath)
        if not self.fs.exists(p):
            return None
        with self.fs.open(p, "rb") as fh:
            return conform(pq.read_table(fh), TABLES[table_name])

    # ------------------------------------------------------------ helpers
    def upsert_small(self, table_name: str, rows: pa.Table) -> pa.Table:
        """Merge ``rows`` into a single-file table by key (new rows win); returns the result."""
        spec = TABLES[table_name]
        rows = conform(rows, spec).select(spec.schema.names)
        current = self.read_file(table_name, f"{table_name}.parquet")
        if current is not None and current.num_rows:
            current = current.select(spec.schema.names)
            new_keys = {tuple(r[k] for k in spec.key) for r in rows.select(list(spec.key)).to_pylist()}
            keep = [i for i, r in enumerate(current.select(list(spec.key)).to_pylist())
                    if tuple(r[k] for k in spec.key) not in new_keys]
            rows = pa.concat_tables([current.take(pa.array(keep, pa.int64())), rows])
        self.write_file(rows, table_name, f"{table_name}.parquet")
        return rows

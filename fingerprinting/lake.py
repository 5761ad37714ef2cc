"""The lake: Delta Lake tables under one root (a local folder or an object-store URL).

Every table is a Delta table at ``<root>/<table>`` written through delta-rs
(``deltalake``): appends and merges are ACID commits, concurrent writers never
lose a row (merges that lose a commit race are retried), the schema is checked
on every write and may grow (new columns merge in), every commit is a version
that can be read back (time travel), and small files are compacted by
:meth:`Lake.optimize`.

Nobody outside this module knows the layout: callers use the table-level
operations below (``append``, ``merge``, ``replace``, ``read``, ``history``,
``optimize``); SQL readers use ``delta_scan(<uri>)`` (DuckDB's ``delta``
extension, see :func:`duckdb_connect`); dbt declares each table once as a source.

Reads go through polars (``scan_delta``), not ``DeltaTable.to_pyarrow_table``,
which aborts the process at exit about half the time with the current
pyarrow.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from fingerprinting.errors import FingerprintLakeError


class LakeSchemaError(FingerprintLakeError, ValueError):
    """A table is missing required columns or has incompatible types."""


class LakeError(FingerprintLakeError):
    """A lake operation failed (unreadable table, lost commit race, legacy layout, ...)."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    description: str = ""
    # columns whose values are stored but not part of equality when merging (none today)
    extra: dict = field(default_factory=dict)


_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")
_F = pa.float64()
_I = pa.int64()
_B = pa.bool_()


def _spec(name: str, cols: list[tuple[str, pa.DataType]], key: tuple[str, ...],
          partition_by: tuple[str, ...] = (), description: str = "") -> TableSpec:
    return TableSpec(name, pa.schema(cols), key, partition_by, description)


TABLES: dict[str, TableSpec] = {t.name: t for t in [
    _spec("models", [
        ("model_id", _STR), ("source", _STR), ("family", _STR), ("model_type", _STR),
        ("display_name", _STR), ("arch", _STR), ("registered_at", _TS),
    ], ("model_id",), description="one row per registered model"),
    _spec("model_edges", [("parent_id", _STR), ("child_id", _STR), ("relation", _STR)],
          ("parent_id", "child_id", "relation"), description="one row per parent -> child edge"),
    _spec("model_siblings", [("model_a", _STR), ("model_b", _STR), ("note", _STR)], ("model_a", "model_b"),
          description="one row per unordered pair of same-recipe models that are NOT derived from each other "
                      "(model_a < model_b): the hardest negatives, reported apart from other unrelated pairs"),
    _spec("fingerprints", [
        ("model_id", _STR), ("method", _STR), ("config_hash", _STR), ("config_json", _STR),
        ("vector", pa.list_(_F)), ("dim", pa.int32()), ("device", _STR), ("dtype", _STR),
        ("seconds", _F), ("library_versions", _STR), ("provenance_json", _STR),
        ("run_id", _STR), ("created_at", _TS),
    ], ("model_id", "method", "config_hash"), description="one row per model x method x config"),
    _spec("similarities", [
        ("model_a", _STR), ("model_b", _STR), ("method", _STR), ("metric", _STR),
        ("config_hash", _STR), ("similarity", _F),
    ], ("model_a", "model_b", "method", "metric", "config_hash"), partition_by=("method", "metric"),
        description="one row per unordered model pair x method x metric x config"),
]}


SYSTEM_TABLE_MODULES = ("fingerprinting.configs.tables", "fingerprinting.memorization.tables",
                        "fingerprinting.provenance.tables", "fingerprinting.provenance.lineage_tables",
                        "fingerprinting.scale.tables")


def load_system_tables() -> dict[str, TableSpec]:
    """Import every system's table declarations (so ``TABLES`` is the whole contract)."""
    import importlib

    for mod in SYSTEM_TABLE_MODULES:
        importlib.import_module(mod)
    return TABLES


def register_table(spec: TableSpec) -> TableSpec:
    """Add a table to the lake contract (systems declare their tables at import time)."""
    existing = TABLES.get(spec.name)
    if existing is not None and existing != spec:
        raise LakeSchemaError(f"table {spec.name!r} is already declared with another schema")
    TABLES[spec.name] = spec
    return spec


def conform(table: pa.Table, spec: TableSpec) -> pa.Table:
    """Check required columns, cast to the contract's types, keep extra columns after them."""
    missing = [f.name for f in spec.schema if f.name not in table.column_names]
    if missing:
        raise LakeSchemaError(f"table {spec.name!r}: missing column(s) {missing}")
    cols, fields = [], []
    for f in spec.schema:
        col = table.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise LakeSchemaError(
                    f"table {spec.name!r}: column {f.name!r} has type {col.type}, expected {f.type}"
                ) from exc
        cols.append(col)
        fields.append(f)
    for name in table.column_names:
        if name not in spec.schema.names:
            col = table.column(name)
            typ = col.type
            # large variants come back from polars; store the plain ones like the contract
            if pa.types.is_large_string(typ):
                col, typ = col.cast(_STR), _STR
            cols.append(col)
            fields.append(pa.field(name, typ))
    for key in spec.key:
        if table.column(key).null_count:
            raise LakeSchemaError(f"table {spec.name!r}: key column {key!r} has nulls")
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def _is_url(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def storage_options_from_env(root: str) -> dict[str, str]:
    """Object-store options for delta-rs / polars from the usual ``AWS_*`` variables."""
    if not root.startswith(("s3://", "s3a://")):
        return {}
    opts = {}
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ALLOW_HTTP"):
        if os.environ.get(key):
            opts[key] = os.environ[key]
    if "AWS_REGION" not in opts:
        opts["AWS_REGION"] = opts.pop("AWS_DEFAULT_REGION", "us-east-1")
    else:
        opts.pop("AWS_DEFAULT_REGION", None)
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts.setdefault("AWS_ALLOW_HTTP", "true")
    return opts


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def where_clause(where: Mapping[str, Any]) -> str:
    """``{"method": "x", "metric": "l1"}`` -> ``method = 'x' AND metric = 'l1'`` (quoted safely)."""
    if not where:
        raise LakeError("a predicate needs at least one column")
    return " AND ".join(f"{col} = {_sql_literal(v)}" for col, v in where.items())


def _retry(op: Callable[[], Any], what: str, attempts: int = 40) -> Any:
    """Run a commit, retrying when another writer won the race (delta-rs ``CommitFailedError``)."""
    from deltalake.exceptions import CommitFailedError

    for attempt in range(1, attempts + 1):
        try:
            return op()
        except CommitFailedError as exc:
            if attempt == attempts:
                raise LakeError(f"{what}: gave up after {attempts} commit conflicts: {exc}") from exc
            # back off with jitter so racing writers spread out
            time.sleep(0.05 * attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


class Lake:
    """Delta tables under ``root`` (a local path or a URL such as ``s3://bucket/lake``)."""

    def __init__(self, root: str, storage_options: dict | None = None):
        root = root.rstrip("/")
        if root.startswith("file://"):
            root = root[len("file://"):]
        self.root = root
        self.is_local = not _is_url(root)
        load_system_tables()
        self.storage_options = dict(storage_options or storage_options_from_env(root))

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # ------------------------------------------------------------ paths
    def uri(self, table: str) -> str:
        """Where a table lives; DuckDB reads it as ``delta_scan('<uri>')``."""
        self._spec(table)
        return f"{self.root}/{table}"

    def _spec(self, table: str) -> TableSpec:
        try:
            return TABLES[table]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(table, list(TABLES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise LakeError(f"unknown lake table {table!r}{hint}; known: {', '.join(sorted(TABLES))}") from None

    def _opts(self) -> dict | None:
        return self.storage_options or None

    # ------------------------------------------------------------ init
    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(table), storage_options=self._opts())

    def _legacy_parts(self, table: str) -> list[str]:
        """Parquet files of the pre-Delta layout (no ``_delta_log``) in a table folder."""
        import fsspec

        fs, base = fsspec.core.url_to_fs(self.uri(table), **_fsspec_options(self.storage_options))
        if not fs.exists(base) or fs.exists(f"{base}/_delta_log"):
            return []
        return sorted(p for p in fs.glob(f"{base}/**/*.parquet") + fs.glob(f"{base}/*.parquet"))

    def init(self, tables: Iterable[str] | None = None) -> Lake:
        """Create every (or the named) table empty if absent; idempotent and safe to race."""
        from deltalake import DeltaTable

        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
        for name in tables or list(TABLES):
            if self.exists(name):
                continue
            if self._legacy_parts(name):
                raise LakeError(f"{self.root}: table {name!r} is in the old Parquet layout; "
                                "run `fplake lake migrate` once to convert the lake to Delta")
            spec = self._spec(name)
            try:
                DeltaTable.create(self.uri(name), spec.schema, mode="ignore",
                                  partition_by=list(spec.partition_by) or None, name=name,
                                  description=spec.description, storage_options=self._opts())
            except Exception as exc:  # a concurrent creator won: fine if the table now exists
                if not self.exists(name):
                    raise LakeError(f"cannot create table {name!r} at {self.uri(name)}: {exc}") from exc
        return self

    def _table(self, name: str):
        from deltalake import DeltaTable

        if not self.exists(name):
            self.init([name])
        return DeltaTable(self.uri(name), storage_options=self._opts())

    # ------------------------------------------------------------ write
    def _prepare(self, table: str, rows: pa.Table) -> pa.Table:
        spec = self._spec(table)
        return conform(rows, spec)

    def append(self, table: str, rows: pa.Table) -> int:
        """Append rows in one commit (concurrent appends all land)."""
        from deltalake import write_deltalake

        rows = self._prepare(table, rows)
        if rows.num_rows == 0:
            return 0
        self._table(table)
        _retry(lambda: write_deltalake(self.uri(table), rows, mode="append", schema_mode="merge",
                                       storage_options=self._opts()), f"append to {table!r}")
        return rows.num_rows

    def append_stream(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        """Append a stream of record batches (already in the contract's schema) in one commit.

        Memory stays at one batch: for bulk loads far larger than RAM.
        """
        from deltalake import write_deltalake

        spec = self._spec(table)
        count = [0]

        def gen():
            for b in batches:
                b = conform(pa.Table.from_batches([b]), spec).to_batches()
                for x in b:
                    count[0] += x.num_rows
                    yield x

        reader = pa.RecordBatchReader.from_batches(spec.schema, gen())
        self._table(table)
        write_deltalake(self.uri(table), reader, mode="append", storage_options=self._opts())
        return count[0]

    def merge(self, table: str, rows: pa.Table) -> dict:
        """Upsert by the table's key in one commit: matching rows are replaced, new rows inserted.

        Rows with a duplicated key inside ``rows`` keep the last occurrence.
        Returns delta-rs's merge metrics (rows inserted / updated).
        """
        spec = self._spec(table)
        rows = _dedupe_last(self._prepare(table, rows), spec.key)
        if rows.num_rows == 0:
            return {"num_target_rows_inserted": 0, "num_target_rows_updated": 0}
        pred = " AND ".join(f"t.{k} = s.{k}" for k in spec.key)

        def op():
            dt = self._table(table)
            return (dt.merge(rows, pred, source_alias="s", target_alias="t", merge_schema=True)
                    .when_matched_update_all().when_not_matched_insert_all().execute())

        return _retry(op, f"merge into {table!r}")

    def replace(self, table: str, rows: pa.Table, where: Mapping[str, Any]) -> int:
        """Atomically replace every row matching ``where`` (column = value, ANDed) by ``rows``.

        The commit is one overwrite with a predicate, so readers see the old or
        the new rows, and a rerun of the same work replaces instead of duplicating.
        Every row of ``rows`` must match ``where``.
        """
        from deltalake import write_deltalake

        rows = self._prepare(table, rows)
        for col, value in where.items():
            if rows.num_rows and set(rows.column(col).to_pylist()) != {value}:
                raise LakeSchemaError(f"replace into {table!r}: rows outside the predicate {col} = {value!r}")
        self._table(table)
        pred = where_clause(where)
        if rows.num_rows == 0:
            self.delete(table, where)
            return 0
        _retry(lambda: write_deltalake(self.uri(table), rows, mode="overwrite", predicate=pred,
                                       schema_mode="merge", storage_options=self._opts()),
               f"replace in {table!r} where {pred}")
        return rows.num_rows

    def overwrite(self, table: str, rows: pa.Table) -> int:
        """Replace the whole table by ``rows`` in one commit (for derived tables recomputed whole)."""
        from deltalake import write_deltalake

        rows = self._prepare(table, rows)
        self._table(table)
        _retry(lambda: write_deltalake(self.uri(table), rows, mode="overwrite", schema_mode="merge",
                                       storage_options=self._opts()), f"overwrite {table!r}")
        return rows.num_rows

    def delete(self, table: str, where: Mapping[str, Any] | None = None) -> int:
        """Delete rows matching ``where`` (all rows when None); returns the number deleted."""
        pred = where_clause(where) if where else None
        metrics = _retry(lambda: self._table(table).delete(pred), f"delete from {table!r}")
        return int((metrics or {}).get("num_deleted_rows", 0) or 0)

    # ------------------------------------------------------------ read
    def scan(self, table: str, version: int | None = None):
        """A polars ``LazyFrame`` over the table (optionally as of ``version``)."""
        import polars as pl

        self._spec(table)
        if not self.exists(table):
            if self._legacy_parts(table):
                raise LakeError(f"{self.root}: table {table!r} is in the old Parquet layout; "
                                "run `fplake lake migrate`")
            return pl.from_arrow(self._spec(table).schema.empty_table()).lazy()
        try:
            return pl.scan_delta(self.uri(table), version=version, storage_options=self._opts())
        except Exception as exc:
            raise LakeError(f"cannot read table {table!r} at {self.uri(table)}"
                            + (f" version {version}" if version is not None else "") + f": {exc}") from exc

    def read(self, table: str, columns: list[str] | None = None,
             filters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
             version: int | None = None) -> pa.Table:
        """Read a table (optionally filtered by column equality and as of a version), schema-checked."""
        import polars as pl

        spec = self._spec(table)
        lf = self.scan(table, version)
        if filters:
            items = filters.items() if isinstance(filters, Mapping) else filters
            for col, value in items:
                lf = lf.filter(pl.col(col) == value)
        try:
            df = lf.collect()
        except BaseException as exc:  # a corrupt file makes polars' Rust core panic (not an Exception)
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise LakeError(f"cannot read table {table!r} at {self.uri(table)}: {exc}") from exc
        out = conform(df.to_arrow(), spec)
        if columns:
            out = out.select(columns)
        return out

    def count(self, table: str) -> int:
        import polars as pl

        try:
            return int(self.scan(table).select(pl.len()).collect().item())
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise LakeError(f"cannot count table {table!r} at {self.uri(table)}: {exc}") from exc

    def version(self, table: str) -> int:
        return int(self._table(table).version()) if self.exists(table) else -1

    def history(self, table: str, limit: int | None = None) -> list[dict]:
        """Commits of a table, newest first: version, timestamp, operation, metrics."""
        if not self.exists(table):
            return []
        out = []
        for h in self._table(table).history(limit):
            ts = h.get("timestamp")
            out.append({
                "version": h.get("version"),
                "timestamp": datetime.fromtimestamp(ts / 1000, UTC).isoformat() if ts else None,
                "operation": h.get("operation"),
                "parameters": h.get("operationParameters", {}),
                "metrics": h.get("operationMetrics", {}),
            })
        return out

    def file_count(self, table: str) -> int:
        """Data files in the table's current version."""
        if not self.exists(table):
            return 0
        return len(self._table(table).file_uris())

    # ------------------------------------------------------------ maintenance
    def optimize(self, table: str, vacuum: bool = True, retention_hours: int = 168) -> dict:
        """Compact small files into large ones, then (optionally) vacuum unreferenced files.

        Vacuum keeps files younger than ``retention_hours`` so readers of recent
        versions (time travel, running queries) are not broken; pass 0 to drop
        every unreferenced file now.
        """
        before = self.file_count(table)
        metrics = _retry(lambda: self._table(table).optimize.compact(), f"optimize {table!r}")
        removed: list[str] = []
        if vacuum:
            removed = self._table(table).vacuum(retention_hours=retention_hours, dry_run=False,
                                                enforce_retention_duration=False)
        return {"table": table, "files_before": before, "files_after": self.file_count(table),
                "files_added": metrics.get("numFilesAdded", 0), "files_removed": metrics.get("numFilesRemoved", 0),
                "vacuumed": len(removed)}

    def migrate_legacy(self, progress: Callable[[str], None] | None = None) -> dict[str, int]:
        """Convert tables of the pre-Delta Parquet layout to Delta tables in place.

        Each legacy table folder is read whole, moved aside to
        ``<root>/_legacy/<table>`` (kept so nothing is lost; delete it once
        satisfied) and written as a Delta table; row counts are checked.
        Returns rows migrated per table. Already-migrated tables are skipped.
        """
        import fsspec
        import pyarrow.parquet as pq

        fs, _ = fsspec.core.url_to_fs(self.root, **_fsspec_options(self.storage_options))
        done: dict[str, int] = {}
        for name, spec in TABLES.items():
            parts = self._legacy_parts(name)
            if not parts:
                continue
            tables = []
            for p in parts:
                with fs.open(p, "rb") as fh:
                    try:
                        t = pq.read_table(fh)
                    except Exception as exc:
                        raise LakeError(f"migrate {name!r}: unreadable part {p!r}: {exc}") from exc
                if t.num_rows:
                    tables.append(conform(t, spec).select(spec.schema.names))
            rows = pa.concat_tables(tables) if tables else spec.schema.empty_table()
            rows = _dedupe_last(rows, spec.key)
            _, base = fsspec.core.url_to_fs(self.uri(name), **_fsspec_options(self.storage_options))
            _, backup = fsspec.core.url_to_fs(f"{self.root}/_legacy/{name}",
                                              **_fsspec_options(self.storage_options))
            if fs.exists(backup):
                raise LakeError(f"migrate {name!r}: {backup} already exists; move it away first")
            fs.makedirs(backup.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(base, backup, recursive=True)
            self.init([name])
            self.append(name, rows)
            n = self.count(name)
            if n != rows.num_rows:
                raise LakeError(f"migrate {name!r}: wrote {n} rows, expected {rows.num_rows}")
            done[name] = n
            if progress:
                progress(f"{name}: {n} rows migrated (old files kept in {self.root}/_legacy/{name})")
        self.init()
        return done

    # ------------------------------------------------------------ SQL
    def duckdb(self):
        """A DuckDB connection with every table as a view (``select * from fingerprints``)."""
        con = duckdb_connect(self.storage_options if not self.is_local else None)
        for name in TABLES:
            if self.exists(name):
                con.execute(f"create or replace view {name} as select * from delta_scan('{self.uri(name)}')")
        return con


def _dedupe_last(rows: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Keep the last row of each key (so a merge source has unique keys)."""
    if rows.num_rows < 2:
        return rows
    import polars as pl

    idx = pl.DataFrame({k: rows.column(k).to_pylist() for k in key}).with_row_index("_i")
    keep = idx.group_by(list(key), maintain_order=True).agg(pl.col("_i").last())["_i"].sort()
    if len(keep) == rows.num_rows:
        return rows
    return rows.take(pa.array(keep.to_list(), pa.int64()))


def _fsspec_options(storage_options: Mapping[str, str]) -> dict:
    """Translate delta-rs style ``AWS_*`` options into s3fs arguments."""
    if not storage_options:
        return {}
    out: dict[str, Any] = {}
    if storage_options.get("AWS_ENDPOINT_URL"):
        out["endpoint_url"] = storage_options["AWS_ENDPOINT_URL"]
    if storage_options.get("AWS_ACCESS_KEY_ID"):
        out["key"] = storage_options["AWS_ACCESS_KEY_ID"]
        out["secret"] = storage_options.get("AWS_SECRET_ACCESS_KEY")
    if storage_options.get("AWS_REGION"):
        out["client_kwargs"] = {"region_name": storage_options["AWS_REGION"]}
    return out


def duckdb_extension_dir() -> str | None:
    """The folder of DuckDB extensions shipped as PyPI packages (``duckdb-ext-*``), if installed."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "extensions")


def duckdb_connect(storage_options: Mapping[str, str] | None = None, database: str = ":memory:",
                   read_only: bool = False):
    """DuckDB with the ``delta`` (and, for object stores, ``httpfs``) extensions loaded offline."""
    import duckdb

    config = {}
    ext = duckdb_extension_dir()
    if ext:
        config["extension_directory"] = ext
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("LOAD delta")
    if storage_options:
        con.execute("LOAD httpfs")
        con.execute(s3_secret_sql(storage_options))
    return con


def s3_secret_sql(opts: Mapping[str, str]) -> str:
    """``CREATE SECRET`` for DuckDB's S3 access from delta-rs style options."""
    endpoint = opts.get("AWS_ENDPOINT_URL", "")
    use_ssl = not endpoint.startswith("http://")
    host = endpoint.split("://", 1)[-1].rstrip("/")
    parts = ["TYPE S3", f"KEY_ID {_sql_literal(opts.get('AWS_ACCESS_KEY_ID', ''))}",
             f"SECRET {_sql_literal(opts.get('AWS_SECRET_ACCESS_KEY', ''))}",
             f"REGION {_sql_literal(opts.get('AWS_REGION', 'us-east-1'))}"]
    if host:
        parts += [f"ENDPOINT {_sql_literal(host)}", "URL_STYLE 'path'"]
    parts.append(f"USE_SSL {'true' if use_ssl else 'false'}")
    return "CREATE OR REPLACE SECRET fplake_s3 (" + ", ".join(parts) + ")"

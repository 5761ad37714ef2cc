"""``fplake mcp``: a Model Context Protocol server over the lake, for agents.

    fplake mcp [--transport stdio|http] [--host 127.0.0.1] [--port 8765]
    python -m flows.mcp_server [--lake-root DIR] [--warehouse FILE] [--transport ...]

Built on the official ``mcp`` Python SDK (:class:`mcp.server.mcpserver.MCPServer`).
stdio is the default transport; ``http`` serves streamable HTTP on the loopback
interface (127.0.0.1) unless ``--host`` says otherwise.

The read tools only read the lake (no model is loaded, nothing is written).
Three tools load checkpoints or write, and only into the lake (or the guarded
global registry):

* ``add_model``: check a local folder / ``*.gguf`` with
  :func:`fingerprinting.queries.check_model_source` (headers only, no model is
  loaded), then register it in the local lake; ``registry="global"`` writes the
  global registry and needs ``admin_token`` (checked first, constant time; the
  server's own ``FPLAKE_ADMIN_TOKEN`` is deliberately not used, so starting a
  server never hands global write rights to every client);
* ``generate_fingerprint``: fingerprint a registered model with a method, store
  it, and recompute that method config's similarities (by default for every
  metric already stored for it, so all its metrics stay on one model set);
* ``lookup_model``: :func:`fingerprinting.lookup.lookup_model` on an unregistered
  path; nothing is written unless ``register=true``.

The two that load a model run one at a time in a worker thread with a deadline
(``timeout_s``); ``trust_remote_code`` stays off and pickle checkpoints are
refused (:mod:`fingerprinting.loading`). A job past its deadline is abandoned:
the call returns a tool error at once and the lake refuses that job's writes
from then on (a Delta commit already under way completes atomically); until the
abandoned thread ends, other model-loading calls are answered "busy".

Arguments are typed and validated by the SDK (pydantic): a wrong type or a
negative limit comes back as an MCP tool error (``is_error``) and the server
keeps serving; so does any failure inside a tool (unknown model, unknown
method, refused query, a path that holds no model), with one clear message.

``query`` runs one read-only DuckDB ``SELECT`` / ``WITH`` over the warehouse
(when its file exists) or the lake's tables as views. It is guarded in layers:

1. comments are stripped; the text must be a single statement starting with
   SELECT or WITH and must not name a write / admin keyword (COPY, ATTACH,
   INSTALL, LOAD, PRAGMA, SET, CREATE, INSERT, ...) or a file-reading function
   (read_csv, read_parquet, read_json, read_text, read_blob, delta_scan, glob...);
2. DuckDB's own parser must see exactly one statement of type SELECT;
3. the parse tree (``json_serialize_sql``) may reference only the connection's
   tables / views and the query's CTEs: no table functions other than
   ``range`` / ``generate_series`` / ``unnest``, and no quoted file paths or URLs as tables;
4. the connection itself is locked down before the query runs:
   ``allowed_directories`` = the lake root only, ``enable_external_access =
   false`` and ``lock_configuration = true`` (so even a statement that slipped
   through cannot read or write files outside the lake, or undo the settings);
   the warehouse is opened read-only.

"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import platform
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from fingerprinting.errors import FingerprintLakeError

MAX_QUERY_ROWS = 10_000
RECITATION_THRESHOLD = 6
DEFAULT_HTTP_PORT = 8765
DEFAULT_JOB_TIMEOUT_S = 600.0
MAX_JOB_TIMEOUT_S = 3600.0

# ------------------------------------------------------------------ the read-only query guard
FORBIDDEN_KEYWORDS = ("COPY", "ATTACH", "DETACH", "INSTALL", "LOAD", "PRAGMA", "SET", "RESET", "EXPORT", "IMPORT",
                      "CALL", "CREATE", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "TRUNCATE", "MERGE",
                      "REPLACE", "VACUUM", "CHECKPOINT", "USE", "BEGIN", "COMMIT", "ROLLBACK", "GRANT", "UPSERT")
FILE_FUNCTIONS = ("read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema",
                  "parquet_file_metadata", "parquet_kv_metadata", "read_json", "read_json_auto",
                  "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
                  "read_ndjson_objects", "read_text", "read_blob", "delta_scan", "iceberg_scan",
                  "iceberg_metadata", "iceberg_snapshots", "glob", "sniff_csv", "csv_scan", "read_xlsx",
                  "st_read", "sqlite_scan", "sqlite_attach", "postgres_scan", "postgres_attach", "mysql_scan",
                  "query_table", "query", "getenv", "duckdb_secrets", "duckdb_settings", "which_secret")
ALLOWED_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}

_KEYWORD_RE = re.compile(r"\b(" + "|".join(FORBIDDEN_KEYWORDS) + r")\b", re.IGNORECASE)
_FUNC_RE = re.compile(r"\b(" + "|".join(re.escape(f) for f in sorted(FILE_FUNCTIONS, key=len, reverse=True))
                      + r")\s*\(", re.IGNORECASE)
_STRING_RE = re.compile(r"'(?:[^']|'')*'")
_QUOTED_IDENT_RE = re.compile(r'"(?:[^"]|"")*"')


class QueryRefused(FingerprintLakeError, ValueError):
    """A query the read-only guard will not run."""


def strip_sql_comments(sql: str) -> str:
    """``sql`` without ``-- ...`` and ``/* ... */`` comments (string literals kept intact)."""
    out, i, n = [], 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise QueryRefused("query refused: unterminated /* comment")
            i = j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_query_text(sql: str) -> str:
    """Textual layer of the guard: the cleaned single statement, or :class:`QueryRefused`."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("query refused: the SQL is empty")
    text = strip_sql_comments(sql).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    bare = _STRING_RE.sub("''", text)  # keywords inside string literals do not count...
    if ";" in bare:
        raise QueryRefused("query refused: only a single statement is allowed (found ';' before the end)")
    if not re.match(r"^\(*\s*(select|with)\b", bare, re.IGNORECASE):
        raise QueryRefused("query refused: only a read-only SELECT (or WITH ... SELECT) statement is allowed")
    idents = _QUOTED_IDENT_RE.sub('""', bare)
    m = _KEYWORD_RE.search(idents)
    if m:
        raise QueryRefused(f"query refused: {m.group(1).upper()} is not allowed (read-only SELECT over the "
                           "warehouse only)")
    m = _FUNC_RE.search(idents)
    if m:
        raise QueryRefused(f"query refused: {m.group(1).lower()}() reads files; only the warehouse's tables "
                           "can be queried")
    for lit in _STRING_RE.findall(text):  # ...but a path or URL in FROM '...' would be read as a file
        if re.search(r"\bfrom\s*" + re.escape(lit), text, re.IGNORECASE) or \
                re.search(r"\bjoin\s*" + re.escape(lit), text, re.IGNORECASE):
            raise QueryRefused(f"query refused: {lit} used as a table would read a file or URL")
    return text


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def check_query_tree(con, text: str) -> None:
    """Parser layers of the guard: one SELECT statement, only known tables / CTEs, no file functions."""
    import duckdb

    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryRefused(f"query refused: it does not parse ({str(exc).splitlines()[0]})") from exc
    if len(statements) != 1:
        raise QueryRefused(f"query refused: expected exactly one statement, found {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryRefused(f"query refused: a {statements[0].type.name} statement is not allowed (SELECT only)")
    tree = json.loads(con.execute("select json_serialize_sql(?)", [text]).fetchone()[0])
    if tree.get("error"):
        raise QueryRefused(f"query refused: {tree.get('error_message', 'it does not parse')}")
    known = set()
    for schema, name, catalog in con.execute(
            "select table_schema, table_name, table_catalog from information_schema.tables").fetchall():
        known |= {name.lower(), f"{schema}.{name}".lower(), f"{catalog}.{schema}.{name}".lower()}
    ctes = set()
    for node in _walk(tree):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes |= {str(e.get("key", "")).lower() for e in cte_map.get("map", []) if isinstance(e, dict)}
    for node in _walk(tree):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            fn = str((node.get("function") or {}).get("function_name", "")).lower()
            if fn not in ALLOWED_TABLE_FUNCTIONS:
                raise QueryRefused(f"query refused: table function {fn}() is not allowed (only the warehouse's "
                                   "tables and range/generate_series/unnest)")
        elif kind == "BASE_TABLE":
            parts = [node.get("catalog_name") or "", node.get("schema_name") or "", node.get("table_name") or ""]
            name = ".".join(p for p in parts if p).lower()
            if name not in known and not (name in ctes and not parts[0] and not parts[1]):
                hint = (" (a path or URL as a table would read a file)" if re.search(r"[/\\:]|\.\w+$", parts[2])
                        else "")
                raise QueryRefused(f"query refused: unknown table {name!r}{hint}; see "
                                   "information_schema.tables for what can be queried")
        elif node.get("class") == "FUNCTION":
            fn = str(node.get("function_name", "")).lower()
            if fn in FILE_FUNCTIONS:
                raise QueryRefused(f"query refused: {fn}() is not allowed")


def lock_down(con, lake_root: str | None) -> None:
    """No file access outside the lake, and no way to change that on this connection (idempotent)."""
    if con.execute("select current_setting('lock_configuration')").fetchone()[0]:
        return
    if lake_root:
        root = lake_root.rstrip("/") + "/"
        con.execute("set allowed_directories = [?]", [root])
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")


def guarded_query(con, sql: str, limit: int, lake_root: str | None = None) -> dict:
    """Run one read-only SELECT through every guard layer; at most ``limit`` rows come back."""
    text = check_query_text(sql)
    check_query_tree(con, text)
    lock_down(con, lake_root)
    import duckdb

    try:
        cur = con.execute(text)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchmany(limit + 1)
    except duckdb.Error as exc:
        raise QueryRefused(f"query failed: {str(exc).splitlines()[0]}") from exc
    from fingerprinting.queries import _jsonable

    truncated = len(rows) > limit
    rows = rows[:limit]
    return {"columns": cols, "rows": [[_jsonable(_plain(v)) for v in r] for r in rows], "row_count": len(rows),
            "truncated": truncated, "limit": limit}


def _plain(v: Any) -> Any:
    """DuckDB values JSON can carry (decimals, dates, bytes, UUIDs -> float / str)."""
    import datetime as _dt
    import decimal
    import uuid

    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (_dt.date, _dt.time, _dt.timedelta, uuid.UUID)) and not isinstance(v, _dt.datetime):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


# ------------------------------------------------------------------ tools
def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    else:
        msg = str(exc)
    msg = (msg.strip().splitlines() or [type(exc).__name__])[0]
    return msg if isinstance(exc, FingerprintLakeError | ValueError | KeyError) else f"{type(exc).__name__}: {msg}"


def _tool_errors(fn):
    """Every failure in a tool becomes one clear MCP tool error (``is_error``), never a crash."""
    from mcp.server.mcpserver.exceptions import ToolError

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def awrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except ToolError:
                raise
            except Exception as exc:  # noqa: BLE001 - the server must keep serving
                raise ToolError(_message(exc)) from exc

        return awrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - the server must keep serving
            raise ToolError(_message(exc)) from exc

    return wrapper


def _mem_and_cpu() -> dict:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(), "memory_total_bytes": None,
                            "memory_available_bytes": None}
    try:
        import psutil

        vm = psutil.virtual_memory()
        info["memory_total_bytes"], info["memory_available_bytes"] = int(vm.total), int(vm.available)
    except ImportError:
        try:
            pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            info["memory_total_bytes"] = int(pages * size)
            info["memory_available_bytes"] = int(os.sysconf("SC_AVPHYS_PAGES") * size)
        except (ValueError, OSError, AttributeError):
            pass
    return info


def hardware_profile_info() -> dict:
    """CPU, memory, torch and CUDA devices of this machine (no model is loaded)."""
    info = _mem_and_cpu()
    try:
        import torch
    except ImportError:
        info.update(torch_version=None, cuda_available=False, cuda_devices=[])
        return info
    cuda = bool(torch.cuda.is_available())
    devices = []
    if cuda:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append({"index": i, "name": p.name, "memory_bytes": int(p.total_memory),
                            "capability": f"{p.major}.{p.minor}"})
    mps = bool(getattr(getattr(torch.backends, "mps", None), "is_available", lambda: False)())
    info.update(torch_version=torch.__version__, cuda_available=cuda, cuda_version=torch.version.cuda,
                cuda_devices=devices, mps_available=mps)
    return info


# ------------------------------------------------------------------ model-loading jobs
class JobAbandoned(FingerprintLakeError):
    """A write from a job that ran past its deadline (the lake refuses it)."""


def guarded_lake(root: str, cancelled: threading.Event):
    """A :class:`~fingerprinting.lake.Lake` whose writes fail once ``cancelled`` is set."""
    from fingerprinting.lake import Lake

    class _GuardedLake(Lake):
        def _check(self, table: str) -> None:
            if cancelled.is_set():
                raise JobAbandoned(f"write to {table!r} refused: the job ran past its deadline and was abandoned")

        def append(self, table, rows):
            self._check(table)
            return super().append(table, rows)

        def append_stream(self, table, batches):
            self._check(table)
            return super().append_stream(table, batches)

        def merge(self, table, rows):
            self._check(table)
            return super().merge(table, rows)

        def replace(self, table, rows, where):
            self._check(table)
            return super().replace(table, rows, where)

        def overwrite(self, table, rows):
            self._check(table)
            return super().overwrite(table, rows)

        def delete(self, table, where=None):
            self._check(table)
            return super().delete(table, where)

    return _GuardedLake(root)


class JobRunner:
    """Runs one model-loading job at a time in a daemon worker thread, with a deadline.

    :meth:`run` waits at most ``timeout_s``; past it the job is abandoned: its
    ``cancelled`` event is set (a :func:`guarded_lake` then refuses its writes)
    and a ``ToolError`` is raised. The thread cannot be killed, so until it ends
    every other job is refused as busy.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None

    async def run(self, what: str, timeout_s: float, fn: Callable[[threading.Event], Any]) -> Any:
        import anyio.to_thread

        if not self._lock.acquire(blocking=False):
            name, t0 = self._current or ("another job", time.monotonic())
            raise ToolErr(f"busy: {name} (started {time.monotonic() - t0:.0f} s ago) is still running; one "
                          "model-loading job runs at a time, retry later")
        cancelled, done = threading.Event(), threading.Event()
        box: dict[str, Any] = {}
        self._current = (what, time.monotonic())

        def job() -> None:
            try:
                box["result"] = fn(cancelled)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller (or dropped if abandoned)
                box["error"] = exc
            finally:
                self._current = None
                self._lock.release()
                done.set()

        try:
            threading.Thread(target=job, name=f"mcp-job: {what}", daemon=True).start()
        except BaseException:
            self._current = None
            self._lock.release()
            raise
        finished = await anyio.to_thread.run_sync(done.wait, timeout_s)
        if not finished:
            cancelled.set()
            raise ToolErr(f"{what} timed out after {timeout_s:g} s and was abandoned; nothing more will be "
                          "written by it (pass a larger timeout_s)")
        if "error" in box:
            raise box["error"]
        return box["result"]


def default_method_args(lake, method: str) -> tuple[dict, str]:
    """Args for ``method``: the stored config with the most fingerprints, else the demo's, else defaults."""
    from fingerprinting.lookup import ModelLookupError, stored_method_configs

    try:
        entry = stored_method_configs(lake, [method])[method]
        if entry["args"] is not None:
            return entry["args"], f"the stored config with the most fingerprints ({entry['config_hash']})"
    except ModelLookupError:
        pass
    from flows.demo_flow import DEMO_METHODS

    if method in DEMO_METHODS:
        return dict(DEMO_METHODS[method]), "the demo's config (no fingerprint of this method is stored)"
    return {}, "the method's defaults"


def fingerprint_registered(lake, model_id: str, method: str, args: dict | None = None,
                           metrics: list[str] | None = None, device: str = "cpu", recompute: bool = False) -> dict:
    """Fingerprint one registered model with ``method`` (never trusting remote code), store it, update pairs.

    ``metrics`` None: recompute the pairs of every metric already stored for this method config
    (``cosine`` when there is none), so all of them stay on one model set; ``[]``: none.
    """
    from fingerprinting import pipeline
    from fingerprinting import queries as q
    from fingerprinting.methods import make_method
    from fingerprinting.metrics import METRICS
    from fingerprinting.registry import ModelRecord

    q.validate_method(method)
    for m in metrics or []:
        METRICS.get(m)
    con = q.connect(lake)
    rec = q.resolve_ids(con, [model_id])[0]
    con.close()
    note = "the args given"
    if args is None:
        args, note = default_method_args(lake, method)
    meth = make_method(method, args)
    existing = None
    if lake.exists("fingerprints"):
        stored = lake.read("fingerprints", columns=["dim", "device", "seconds"],
                           filters={"model_id": rec["model_id"], "method": method, "config_hash": meth.config_hash})
        existing = stored.to_pylist()[0] if stored.num_rows else None
    out = {"model_id": rec["model_id"], "method": method, "config_hash": meth.config_hash, "args": args,
           "args_from": note, "reused": False, "written": 0, "similarities": {}}
    if existing is not None and not recompute:
        out.update(reused=True, dim=existing["dim"], device=existing["device"], seconds=existing["seconds"])
    else:
        record = ModelRecord(rec["model_id"], rec["source"], rec["family"], rec["model_type"],
                             rec["display_name"], rec.get("arch") or "")
        fp = pipeline.fingerprint_model(record, [meth], device=device, trust_remote_code=False)[0]
        out["written"] = pipeline.write_fingerprints(lake, pipeline.fingerprint_table([fp], f"mcp-{int(time.time())}"))
        out.update(dim=fp.dim, device=str(fp.provenance.get("device", device)),
                   seconds=float(fp.provenance.get("seconds", 0.0)))
    if metrics is None:
        con = q.connect(lake)
        metrics = []
        if "similarities" in q._tables(con):
            metrics = [r[0] for r in con.execute("select distinct metric from similarities where method = ? and "
                                                 "config_hash = ? order by 1", [method, meth.config_hash]).fetchall()]
        con.close()
        metrics = metrics or ["cosine"]
    if metrics:
        out["similarities"] = pipeline.compute_similarities(lake, method, meth.config_hash, metrics, device="cpu")
    return out


def _check_device(device: str) -> str:
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", device):
        raise ValueError(f"device {device!r}: expected cpu, auto, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on the machine serving this")
    return device


ModelId = Annotated[str, Field(min_length=1, description="model id, or a unique display name")]
Method = Annotated[str | None, Field(description="fingerprint method (e.g. input_output, weight); none = every method")]
Timeout = Annotated[float, Field(gt=0, le=MAX_JOB_TIMEOUT_S, description=(
    f"seconds to wait for the model work (0 < t <= {MAX_JOB_TIMEOUT_S:g}); past it the job is abandoned and "
    "writes nothing more"))]
Metric = Annotated[str | None, Field(description="similarity metric (e.g. cosine, l1); none = every metric")]


def build_server(settings=None):
    """The MCP server with every tool bound to ``settings``' lake, warehouse and global registry."""
    from mcp.server.mcpserver import MCPServer

    from fingerprinting import queries as q
    from fingerprinting.lake import Lake, load_system_tables
    from fingerprinting.settings import get_settings

    settings = settings or get_settings()
    load_system_tables()
    lake_root = settings.lake_root

    def lake() -> Lake:
        return Lake(lake_root)

    server = MCPServer(
        "fingerprint-lake",
        instructions=("Tools over a Fingerprint Lake: registered models, their lineage, fingerprint similarities, "
                      "config neighbours and memorization summaries (read-only), plus add_model, "
                      "generate_fingerprint and lookup_model, which read checkpoints and write only into the lake "
                      "(lookup_model only with register=true). Model ids also accept a unique display name. "
                      "To ask whether a model is derived from a registered one: lookup_model on its path, or "
                      "find_similar_models / compare_models on a registered id."))

    def tool(fn):
        return server.tool()(_tool_errors(fn))

    @tool
    def list_models(family: Annotated[str | None, Field(description="only this family (e.g. llama)")] = None,
                    model_type: Annotated[str | None, Field(description="only this type (base, finetune, ...)")] = None,
                    search: Annotated[str | None, Field(description="substring of the id or display name")] = None,
                    limit: Annotated[int, Field(ge=1, le=1000, description="page size (1..1000)")] = 100,
                    offset: Annotated[int, Field(ge=0, description="rows to skip (>= 0)")] = 0) -> dict:
        """List registered models (with parents and fingerprint counts), filtered and paged."""
        rows = q.list_registered(lake(), family=family, model_type=model_type, search=search)
        page = rows[offset:offset + limit]
        return {"total": len(rows), "offset": offset, "limit": limit, "models": page,
                "next_offset": offset + limit if offset + limit < len(rows) else None}

    @tool
    def get_model(model_id: ModelId) -> dict:
        """One model: registry record, parents, children, fingerprints held and config features."""
        return q.view_model(lake(), model_id)

    @tool
    def compare_models(a: ModelId, b: ModelId, method: Method = None, metric: Metric = None) -> dict:
        """Similarity of two models per method x metric x config, and how they relate in the lineage."""
        return q.compare_models(lake(), a, b, method=method, metric=metric)

    @tool
    def similarity_matrix(models: Annotated[list[str] | None, Field(
                              description="only pairs among these models (ids or display names); none = all")] = None,
                          method: Method = None, metric: Metric = None) -> dict:
        """Square similarity matrices, one per method x metric x config (null where a pair is missing)."""
        ids = None
        if models:
            con = q.connect(lake())
            ids = [m["model_id"] for m in q.resolve_ids(con, models)]
            con.close()
        pairs = q.similarity_pairs(lake(), models=ids, method=method, metric=metric)
        return {"matrices": q.similarity_matrices(pairs, ids)}

    @tool
    def find_similar_models(model_id: ModelId, method: Method = None, metric: Metric = None,
                            limit: Annotated[int, Field(ge=1, le=1000, description="neighbours per group")] = 10,
                            threshold: Annotated[float | None, Field(
                                description="keep similarities >= this")] = None) -> dict:
        """Nearest registered models to one model, per method x metric x config, with their lineage relation."""
        return q.find_similar(lake(), model_id, method=method, metric=metric, threshold=threshold, limit=limit)

    @tool
    def get_fingerprint_vectors(model_id: ModelId, method: Method = None,
                                config_hash: Annotated[str | None, Field(
                                    description="only this config hash")] = None) -> dict:
        """The stored fingerprint vectors of one model (one per method x config)."""
        q.validate_method(method)
        lk = lake()
        con = q.connect(lk)
        m = q.resolve_ids(con, [model_id])[0]
        if "fingerprints" not in q._tables(con):
            con.close()
            raise ToolErr("no fingerprints in the lake yet (run `fplake demo` or the fingerprint flow first)")
        sql = ("select method, config_hash, config_json, dim, device, dtype, created_at, vector from fingerprints "
               "where model_id = ?")
        params: list = [m["model_id"]]
        if method:
            sql += " and method = ?"
            params.append(method)
        if config_hash:
            sql += " and config_hash = ?"
            params.append(config_hash)
        rows = q._rows(con, sql + " order by method, config_hash", params)
        con.close()
        if not rows:
            raise ToolErr(f"model {m['model_id']!r} has no fingerprints"
                          + (f" for method {method!r}" if method else "")
                          + (f" and config {config_hash!r}" if config_hash else ""))
        for r in rows:
            r["vector"] = [float(x) for x in (r["vector"] or [])]
        return {"model_id": m["model_id"], "fingerprints": rows}

    @tool
    def config_neighbors(model_id: ModelId,
                         metric: Annotated[str | None, Field(description="config distance metric; none = all")] = None,
                         limit: Annotated[int, Field(ge=1, le=1000, description="neighbours per metric")] = 10) -> dict:
        """Nearest models by architecture config (the configs system's config_similarities, kind='neighbor')."""
        lk = lake()
        con = q.connect(lk)
        m = q.resolve_ids(con, [model_id])[0]
        if "config_similarities" not in q._tables(con):
            con.close()
            raise ToolErr("no config similarities in the lake yet: run `fplake configs ingest` first")
        sql = ("select metric, rank, model_b as model_id, distance, similarity, population_size "
               "from config_similarities where kind = 'neighbor' and model_a = ?")
        params: list = [m["model_id"]]
        if metric:
            sql += " and metric = ?"
            params.append(metric)
        rows = q._rows(con, sql + " order by metric, rank", params)
        con.close()
        if not rows:
            raise ToolErr(f"no config neighbours for {m['model_id']!r}" + (f" with metric {metric!r}" if metric else "")
                          + ": run `fplake configs ingest` (the model needs an ingested config.json)")
        groups: dict[str, list] = {}
        for r in rows:
            g = groups.setdefault(r.pop("metric"), [])
            if len(g) < limit:
                g.append(r)
        return {"model_id": m["model_id"], "metrics": [{"metric": k, "neighbors": v} for k, v in groups.items()]}

    @tool
    def memorization_summary(model_id: ModelId) -> dict:
        """Memorized share of one model's scored samples and the recitation / reconstruction / recollection split.

        Rule (memorized samples): duplicates >= 6 -> recitation; else templating -> reconstruction;
        else recollection.
        """
        lk = lake()
        con = q.connect(lk)
        m = q.resolve_ids(con, [model_id])[0]
        tables = q._tables(con)
        if "memorization_scores" not in tables:
            con.close()
            raise ToolErr("no memorization scores in the lake yet: run `fplake memorization score` first")
        has_feat = "memorization_features" in tables
        join = ("left join memorization_features f on f.sample_id = s.sample_id and f.model_id = s.model_id"
                if has_feat else "")
        dup = "f.duplicates" if has_feat else "null"
        tmpl = "f.is_templating" if has_feat else "null"
        rows = q._rows(con, f"""
            select s.corpus, count(*) as samples,
                   count(*) filter (where s.memorized) as memorized,
                   count(*) filter (where s.error is not null and s.error <> '') as errors,
                   avg(s.score) as mean_score,
                   count(*) filter (where s.memorized and coalesce({dup}, 0) >= {RECITATION_THRESHOLD}) as recitation,
                   count(*) filter (where s.memorized and coalesce({dup}, 0) < {RECITATION_THRESHOLD}
                                    and coalesce({tmpl}, false)) as reconstruction,
                   count(*) filter (where s.memorized and {dup} is null) as unfeatured
            from memorization_scores s {join}
            where s.model_id = ? group by s.corpus order by s.corpus""", [m["model_id"]])
        con.close()
        if not rows:
            raise ToolErr(f"model {m['model_id']!r} has no memorization scores: run `fplake memorization score`")
        for r in rows:
            r["recollection"] = r["memorized"] - r["recitation"] - r["reconstruction"] - r["unfeatured"]
            mem = r["memorized"]
            r["memorized_share"] = r["memorized"] / r["samples"] if r["samples"] else None
            r["shares"] = {k: (r[k] / mem if mem else None) for k in ("recitation", "reconstruction", "recollection")}
        return {"model_id": m["model_id"], "recitation_threshold": RECITATION_THRESHOLD,
                "features_available": has_feat, "corpora": rows}

    @tool
    def hardware_profile() -> dict:
        """CPU count, memory, torch version and CUDA devices of the machine serving this (no model is loaded)."""
        return hardware_profile_info()

    jobs = JobRunner()

    @tool
    def add_model(path: Annotated[str, Field(min_length=1, description=(
                      "model on the server's machine: a folder with config.json + *.safetensors, or a *.gguf "
                      "file (hf://org/name is accepted as-is and checked when fingerprinted)"))],
                  family: Annotated[str, Field(min_length=1, description="model family, e.g. llama")],
                  model_type: Annotated[str, Field(min_length=1, description="how it was made: base, finetune, "
                                                                               "quantized, ...")],
                  parents: Annotated[list[str] | None, Field(
                      max_length=100, description="registered parents as 'ID:RELATION' (relation: finetune, "
                                                  "quantized, distilled, merge, pruned, adapter)")] = None,
                  display_name: Annotated[str | None, Field(min_length=1, description="name shown in reports "
                                                                                      "(default: the model id)")] = None,
                  model_id: Annotated[str | None, Field(min_length=1, description=(
                      "registry id (default: the folder / file name)"))] = None,
                  registry: Annotated[Literal["local", "global"], Field(description=(
                      "'local' = this server's lake; 'global' = the shared registry (needs admin_token)"))] = "local",
                  admin_token: Annotated[str | None, Field(description=(
                      "the global registry's admin token (required for registry='global')"))] = None) -> dict:
        """Register a model after checking its files are loadable (headers only; no model code runs).

        Writes the local lake, or the global registry when registry='global' and admin_token is right
        (checked before anything else). Parents must already be registered in the same registry.
        """
        from fingerprinting.registry import GlobalRegistry, RegistryPermissionError

        if registry == "global":
            reg = GlobalRegistry(settings.global_registry)
            if not admin_token:  # never fall back to the server's own FPLAKE_ADMIN_TOKEN
                if reg._config() is None:
                    reg.check_write("")  # raises: the registry is not initialised
                raise RegistryPermissionError(
                    "writing to the global registry needs its admin token: pass admin_token (the server's own "
                    "FPLAKE_ADMIN_TOKEN is deliberately not used)")
            reg.check_write(admin_token)
            target, where = reg.lake, reg.location
        else:
            target, where = lake().init(), lake_root
        res = q.register_model(target, path, family, model_type, parents=parents or [], display_name=display_name,
                               model_id=model_id)
        return {**res, "registry": registry, "location": where}

    @tool
    async def generate_fingerprint(
            model_id: ModelId,
            method: Annotated[str, Field(min_length=1, description="fingerprint method, e.g. weight_spectrum, "
                                                                   "weight, input_output")],
            args: Annotated[dict[str, Any] | None, Field(description=(
                "method args; none = the stored config with the most fingerprints of this method (so the new "
                "one is comparable), else the demo's"))] = None,
            metrics: Annotated[list[str] | None, Field(max_length=20, description=(
                "recompute this method config's pairs for these metrics; none = every metric already stored "
                "for it (cosine when none), [] = none"))] = None,
            recompute: Annotated[bool, Field(description="fingerprint again even when one is stored")] = False,
            device: Annotated[str, Field(description="cpu, auto, cuda or cuda:N")] = "cpu",
            timeout_s: Timeout = DEFAULT_JOB_TIMEOUT_S) -> dict:
        """Fingerprint a registered model with a registered method and store it (trust_remote_code stays off).

        Runs in a worker thread with a deadline; then the method config's similarities are recomputed
        so find_similar_models / compare_models see the model.
        """
        q.validate_method(method)
        _check_device(device)
        what = f"generate_fingerprint {model_id!r} {method}"
        return await jobs.run(what, timeout_s, lambda cancelled: fingerprint_registered(
            guarded_lake(lake_root, cancelled), model_id, method, args=args, metrics=metrics, device=device,
            recompute=recompute))

    @tool
    async def lookup_model(
            path: Annotated[str, Field(min_length=1, description=(
                "unregistered model on the server's machine: folder (config.json + *.safetensors) or *.gguf"))],
            methods: Annotated[list[str] | None, Field(max_length=20, description=(
                "only these methods; none = every method with stored fingerprints"))] = None,
            metric: Annotated[str, Field(min_length=1, description="similarity metric for ranking")] = "cosine",
            limit: Annotated[int, Field(ge=1, le=1000, description="at most this many candidates")] = 10,
            register: Annotated[bool, Field(description=(
                "also register the model and store its fingerprints (needs family and model_type)"))] = False,
            family: Annotated[str | None, Field(min_length=1, description="family, with register")] = None,
            model_type: Annotated[str | None, Field(min_length=1, description="model type, with register")] = None,
            model_id: Annotated[str | None, Field(min_length=1, description="id to register under")] = None,
            display_name: Annotated[str | None, Field(min_length=1, description="display name to register")] = None,
            timeout_s: Timeout = DEFAULT_JOB_TIMEOUT_S) -> dict:
        """Fingerprint an unregistered model and rank the registered ones as its likely relatives.

        Combined score = mean over methods of the similarity rescaled to [0, 1]; per-method evidence and
        config similarity come with each candidate. Nothing is written unless register=true.
        """
        from fingerprinting.lookup import lookup_model as _lookup
        from fingerprinting.metrics import METRICS

        METRICS.get(metric)
        for m in methods or []:
            q.validate_method(m)
        q.check_model_source(path)  # a path that holds no model fails here, before any job starts
        return await jobs.run(f"lookup_model {path!r}", timeout_s, lambda cancelled: _lookup(
            guarded_lake(lake_root, cancelled), path, methods=methods, metric=metric, limit=limit, device="cpu",
            register=register, family=family, model_type=model_type, model_id=model_id,
            display_name=display_name))

    @tool
    def query(sql: Annotated[str, Field(min_length=1, description=(
                  "one read-only SELECT or WITH ... SELECT statement over the warehouse / lake tables; "
                  "writes, COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET and file-reading functions are refused"))],
              limit: Annotated[int, Field(ge=1, le=MAX_QUERY_ROWS,
                                          description=f"at most this many rows (1..{MAX_QUERY_ROWS})")] = 100) -> dict:
        """Run one read-only DuckDB SELECT over the warehouse (or the lake's tables when no warehouse is built)."""
        check_query_text(sql)  # refuse early, before any connection is opened
        source = "warehouse" if Path(settings.warehouse).is_file() else "lake"
        if source == "warehouse":
            from fingerprinting.warehouse import connect as wconnect

            con = wconnect(settings, read_only=True)
        else:
            con = q.connect(lake())
        try:
            res = guarded_query(con, sql, limit, lake_root if Lake(lake_root).is_local else None)
        finally:
            con.close()
        res["source"] = source
        return res

    return server


def ToolErr(msg: str):  # noqa: N802 - reads like an exception class at the raise sites
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(msg)


# ------------------------------------------------------------------ command line
def add_mcp_parser(sub, common: argparse.ArgumentParser) -> None:
    """Add ``fplake mcp`` to the sub-parsers ``sub`` (global options from ``common``)."""
    p = sub.add_parser("mcp", parents=[common], help="serve the lake's read tools to agents over MCP (stdio or HTTP)")
    _mcp_options(p)


def _mcp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (default, for agent clients that start the server) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT, help=f"HTTP port (default {DEFAULT_HTTP_PORT})")


def cmd_mcp(args) -> int:
    """Run the server until the client disconnects (stdio) or it is interrupted (HTTP)."""
    from fingerprinting.settings import get_settings

    settings = get_settings().with_overrides(lake_root=getattr(args, "lake_root", None),
                                             warehouse=getattr(args, "warehouse", None))
    settings.apply_env()
    if not 0 < args.port < 65536:
        raise FingerprintLakeError(f"--port {args.port}: expected 1..65535")
    server = build_server(settings)
    if args.transport == "http":
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"fplake mcp: warning: serving on {args.host} (not loopback): anyone who can reach it can "
                  "query the lake", file=sys.stderr)
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run("stdio")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.mcp_server [--lake-root DIR] [--warehouse FILE] [--transport ...]``."""
    p = argparse.ArgumentParser(prog="fplake mcp", description=__doc__.splitlines()[0])
    p.add_argument("--lake-root", default=None, help="lake folder or s3:// URL (FPLAKE_LAKE_ROOT)")
    p.add_argument("--warehouse", default=None, help="DuckDB warehouse file (FPLAKE_WAREHOUSE)")
    _mcp_options(p)
    args = p.parse_args(argv)
    try:
        return cmd_mcp(args)
    except FingerprintLakeError as exc:
        print(f"fplake mcp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

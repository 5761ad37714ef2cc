"""The MCP server end to end through the SDK's own client over stdio, and the read-only query guard."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from fingerprinting.configs.tables import CONFIG_SIMILARITIES
from fingerprinting.lake import load_system_tables
from fingerprinting.memorization.tables import FEATURES as MEM_FEATURES
from fingerprinting.memorization.tables import SCORES as MEM_SCORES
from flows.mcp_server import QueryRefused, check_query_text, guarded_query
from tests.fingerprinting.test_queries import SIMS, build_lake

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 2, tzinfo=UTC)
READ_TOOLS = {"list_models", "get_model", "compare_models", "similarity_matrix", "find_similar_models",
              "get_fingerprint_vectors", "config_neighbors", "memorization_summary", "hardware_profile", "query"}

HOSTILE = [
    "COPY models TO '/tmp/fplake_mcp_leak.csv'",
    "ATTACH '/tmp/fplake_mcp_x.duckdb' AS x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "select * from read_csv_auto('/etc/passwd')",
    "SELECT * FROM models; DROP VIEW models",
    "CREATE TABLE evil AS SELECT * FROM models",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "SELECT 1 /* harmless */ ; /* */ DELETE FROM models",
    "-- just a comment\nINSERT INTO models SELECT * FROM models",
    "WITH x AS (SELECT 1) INSERT INTO models SELECT * FROM x",
    "with w as (delete from models returning *) select * from w",
    "   sElEcT * fRoM   '/etc/passwd'",
    "select * from 'http://example.com/x.parquet'",
    "select * from glob('/etc/*')",
    "select * from read_text('/etc/hostname')",
    "select * from delta_scan('/tmp')",
    "select * from parquet_scan('/tmp/x.parquet')",
    "select getenv('HOME')",
    "select * from information_schema.tables t, read_blob('/etc/passwd')",
    "call pragma_version()",
    "EXPORT DATABASE '/tmp/fplake_mcp_export'",
    "update models set family = 'x'",
    "select * from \"/etc/passwd\"",
    "",
]


def _build(root: Path):
    lake = build_lake(root / "lake")
    lake.merge("config_similarities", pa.Table.from_pylist([
        {"model_a": "base", "model_b": b, "metric": "gower", "kind": "neighbor", "rank": r, "distance": 1 - s,
         "similarity": s, "population_size": 4}
        for r, (b, s) in enumerate([("ft", 0.97), ("q", 0.9), ("other", 0.3)], 1)], schema=CONFIG_SIMILARITIES.schema))
    # ft: 10 samples, 4 memorized: s0 duplicates 9 (recitation), s1 templating (reconstruction), s2, s3 recollection
    scores, feats = [], []
    for i in range(10):
        sid = f"s{i}"
        scores.append({"sample_id": sid, "model_id": "ft", "corpus": "c", "score": 1.0 if i < 4 else 0.2,
                       "memorized": i < 4, "prompt_perplexity": 1.0, "continuation_perplexity": 1.0,
                       "sequence_perplexity": 1.0, "generated": [1, 2], "error": None, "run_id": "r",
                       "created_at": NOW})
        row = {f.name: None for f in MEM_FEATURES.schema}
        row.update(sample_id=sid, model_id="ft", corpus="c", duplicates=9 if i == 0 else 1, is_templating=i == 1)
        feats.append(row)
    lake.merge("memorization_scores", pa.Table.from_pylist(scores, schema=MEM_SCORES.schema))
    lake.merge("memorization_features", pa.Table.from_pylist(feats, schema=MEM_FEATURES.schema))
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    load_system_tables()
    return _build(tmp_path_factory.mktemp("mcp"))


# ------------------------------------------------------------------ the guard, in process
@pytest.mark.parametrize("sql", HOSTILE)
def test_query_guard_refuses_hostile_statements(lake, sql):
    con = lake.duckdb()
    try:
        with pytest.raises(QueryRefused, match="query refused"):
            guarded_query(con, sql, 10, lake.root)
    finally:
        con.close()
    assert not Path("/tmp/fplake_mcp_leak.csv").exists()


def test_query_guard_allows_plain_selects(lake):
    con = lake.duckdb()
    res = guarded_query(con, "-- models\nSELECT model_id FROM models ORDER BY model_id;", 2, lake.root)
    assert res["columns"] == ["model_id"] and res["rows"] == [["base"], ["ft"]] and res["truncated"]
    # a keyword inside a string literal or a CTE named like a table is fine
    res = guarded_query(con, "with m as (select * from models where display_name <> 'DROP table') "
                             "select count(*) as n from m", 5, lake.root)
    assert res["rows"] == [[4]] and not res["truncated"]
    # the connection is now locked: even a direct read of a file outside the lake fails
    with pytest.raises(Exception, match="disabled|locked"):
        con.execute("select * from read_csv('/etc/passwd')")
    con.close()
    assert check_query_text("select 1;") == "select 1"


# ------------------------------------------------------------------ end to end over stdio
async def _session(lake, warehouse: Path):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, cwd=str(REPO),
                                   args=["-m", "flows.mcp_server", "--lake-root", lake.root,
                                         "--warehouse", str(warehouse)])
    out: dict = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["tools"] = {t.name: t for t in (await session.list_tools()).tools}

        async def call(name, args=None):
            return await session.call_tool(name, args or {})

        out["list"] = await call("list_models", {"family": "llama", "limit": 2, "offset": 1})
        out["get"] = await call("get_model", {"model_id": "Llama FT"})
        out["compare"] = await call("compare_models", {"a": "base", "b": "q", "method": "input_output"})
        out["matrix"] = await call("similarity_matrix", {"models": ["base", "ft", "q"], "metric": "l1"})
        out["similar"] = await call("find_similar_models", {"model_id": "q", "limit": 2})
        out["vectors"] = await call("get_fingerprint_vectors", {"model_id": "base", "method": "weight"})
        out["neighbors"] = await call("config_neighbors", {"model_id": "base", "limit": 2})
        out["no_neighbors"] = await call("config_neighbors", {"model_id": "q"})
        out["mem"] = await call("memorization_summary", {"model_id": "ft"})
        out["no_mem"] = await call("memorization_summary", {"model_id": "base"})
        out["hw"] = await call("hardware_profile")
        out["query"] = await call("query", {"sql": "select model_id, family from models order by model_id",
                                            "limit": 3})
        # bad input: each one a tool error, the server keeps serving
        out["neg_limit"] = await call("list_models", {"limit": -1})
        out["neg_offset"] = await call("list_models", {"offset": -5})
        out["wrong_type"] = await call("find_similar_models", {"model_id": "q", "limit": "many"})
        out["too_many_rows"] = await call("query", {"sql": "select 1", "limit": 10_001})
        out["unknown_model"] = await call("get_model", {"model_id": "bsae"})
        out["unknown_method"] = await call("compare_models", {"a": "base", "b": "ft", "method": "nope"})
        out["hostile"] = [await call("query", {"sql": s}) for s in HOSTILE[:14]]
        out["after"] = await call("list_models", {})
    return out


def _data(res) -> dict:
    assert not res.is_error, res.content
    if res.structured_content is not None:
        return res.structured_content.get("result", res.structured_content)
    return json.loads(res.content[0].text)


def _err(res) -> str:
    assert res.is_error, res
    return res.content[0].text


@pytest.mark.timeout(240)
def test_mcp_server_end_to_end_over_stdio(lake, tmp_path):
    out = asyncio.run(_session(lake, tmp_path / "no-warehouse.duckdb"))
    assert set(out["tools"]) == READ_TOOLS
    for t in out["tools"].values():
        assert t.description and t.input_schema["type"] == "object"
    assert out["tools"]["list_models"].input_schema["properties"]["limit"]["minimum"] == 1

    lst = _data(out["list"])
    assert lst["total"] == 3 and [m["model_id"] for m in lst["models"]] == ["ft", "q"] and lst["next_offset"] is None
    got = _data(out["get"])
    assert got["model"]["model_id"] == "ft" and got["parents"][0]["model_id"] == "base"
    cmp_ = _data(out["compare"])
    assert [s["similarity"] for s in cmp_["similarities"]] == [SIMS[("input_output", "l1", "h1")][("base", "q")]]
    assert cmp_["lineage"]["relation"] == "descendant"
    mat = _data(out["matrix"])["matrices"]
    assert len(mat) == 1 and mat[0]["models"] == ["base", "ft", "q"] and mat[0]["matrix"][1][2] == 0.95
    sim = _data(out["similar"])
    assert sim["model"]["model_id"] == "q"
    io = [g for g in sim["groups"] if g["method"] == "input_output"][0]["neighbors"]
    assert [(n["model_id"], n["similarity"], n["relation"]) for n in io] == [("ft", 0.95, "parent"),
                                                                             ("base", 0.8, "ancestor")]
    vec = _data(out["vectors"])
    assert vec["fingerprints"][0]["vector"] == [0.1, 0.1] and vec["fingerprints"][0]["config_hash"] == "h2"
    nb = _data(out["neighbors"])["metrics"]
    assert nb == [{"metric": "gower", "neighbors": [
        {"rank": 1, "model_id": "ft", "distance": pytest.approx(0.03), "similarity": 0.97, "population_size": 4},
        {"rank": 2, "model_id": "q", "distance": pytest.approx(0.1), "similarity": 0.9, "population_size": 4}]}]
    assert "no config neighbours for 'q'" in _err(out["no_neighbors"])
    mem = _data(out["mem"])["corpora"][0]
    assert (mem["samples"], mem["memorized"], mem["recitation"], mem["reconstruction"], mem["recollection"]) == (
        10, 4, 1, 1, 2)
    assert mem["shares"] == {"recitation": 0.25, "reconstruction": 0.25, "recollection": 0.5}
    assert "no memorization scores" in _err(out["no_mem"])
    hw = _data(out["hw"])
    assert hw["cpu_count"] >= 1 and "cuda_available" in hw
    qr = _data(out["query"])
    assert qr["source"] == "lake" and qr["rows"] == [["base", "llama"], ["ft", "llama"], ["other", "gpt"]]
    assert qr["truncated"] and qr["limit"] == 3

    assert "limit" in _err(out["neg_limit"]) and "offset" in _err(out["neg_offset"])
    assert "limit" in _err(out["wrong_type"]) and "limit" in _err(out["too_many_rows"])
    assert "bsae" in _err(out["unknown_model"]) and "nope" in _err(out["unknown_method"])
    for sql, res in zip(HOSTILE[:14], out["hostile"], strict=True):
        assert "refused" in _err(res), sql
    assert _data(out["after"])["total"] == 4  # still serving

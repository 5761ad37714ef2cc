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
WRITE_TOOLS = {"add_model", "generate_fingerprint", "lookup_model"}

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
    assert set(out["tools"]) == READ_TOOLS | WRITE_TOOLS
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


# ------------------------------------------------------------------ the tools that read checkpoints and write
TOKEN = "test-admin-token-123"
SUSPECT, ADDED = "gpt2-int8", "llama-merge"  # left out of the registry: lookup's suspect, add_model's model


@pytest.fixture(scope="module")
def zoo_lake(tmp_path_factory, tiny_zoo):
    """The tiny zoo minus two models, weight_spectrum fingerprints and cosine + l1 pairs (as the flow writes)."""
    from fingerprinting import pipeline
    from fingerprinting.lake import Lake
    from fingerprinting.methods import make_method
    from fingerprinting.registry import GlobalRegistry, ModelRecord, register_models, zoo_records

    root = tmp_path_factory.mktemp("mcp-write")
    lake = Lake(str(root / "lake")).init()
    recs = [r for r in zoo_records(tiny_zoo) if r.display_name not in (SUSPECT, ADDED)]
    empty = root / "empty-model"
    empty.mkdir()
    register_models(lake, [*recs, ModelRecord("ghost", str(empty), "Ghost", "Base", "ghost")])
    method = make_method("weight_spectrum")
    fps = [fp for r in recs for fp in pipeline.fingerprint_model(r, [method], device="cpu")]
    pipeline.write_fingerprints(lake, pipeline.fingerprint_table(fps, "test"))
    pipeline.compute_similarities(lake, "weight_spectrum", method.config_hash, ["cosine", "l1"])
    GlobalRegistry.initialise(str(root / "global"), TOKEN)
    paths = {m["display_name"]: m["path"] for m in tiny_zoo["models"]}
    return {"lake": lake, "root": root, "empty": str(empty), "paths": paths, "n_fingerprinted": len(recs),
            "config_hash": method.config_hash, "ids": {m["display_name"]: m["model_id"] for m in tiny_zoo["models"]}}


async def _write_session(z: dict) -> dict:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    root = z["root"]
    # the server's environment holds the right admin token: it must still not write the global registry
    env = {"FPLAKE_GLOBAL_REGISTRY": str(root / "global"), "FPLAKE_ADMIN_TOKEN": TOKEN, "FPLAKE_TORCH_THREADS": "1",
           "FPLAKE_ZOO_DIR": str(root / "zoo-unused")}
    params = StdioServerParameters(command=sys.executable, cwd=str(REPO), env=env,
                                   args=["-m", "flows.mcp_server", "--lake-root", z["lake"].root,
                                         "--warehouse", str(root / "no-warehouse.duckdb")])
    paths, ids = z["paths"], z["ids"]
    out: dict = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["tools"] = {t.name: t for t in (await session.list_tools()).tools}

        async def call(name, args=None):
            return await session.call_tool(name, args or {})

        # a job past its deadline: abandoned, its writes refused; the next job waits for the thread to end
        out["timeout"] = await call("generate_fingerprint", {"model_id": ids["llama-chat"], "method": "weight",
                                                             "metrics": [], "timeout_s": 0.001})
        out["polls"] = []
        for _ in range(240):
            res = await call("generate_fingerprint", {"model_id": ids["llama-base"], "method": "weight",
                                                      "metrics": [], "timeout_s": 120})
            out["polls"].append(res)
            if not (res.is_error and "busy" in res.content[0].text):
                break
            await asyncio.sleep(0.5)
        out["abandoned_vectors"] = await call("get_fingerprint_vectors", {"model_id": ids["llama-chat"],
                                                                          "method": "weight"})

        # add_model: local, then the global registry (refused without / with a wrong token)
        add = {"path": paths[ADDED], "family": "Llama", "model_type": "Merge",
               "parents": [f"{ids['llama-chat']}:merge", "llama-code:merge"], "model_id": "mcp-merge",
               "display_name": "MCP merge"}
        out["add_local"] = await call("add_model", add)
        out["add_global_no_token"] = await call("add_model", {**add, "registry": "global"})
        out["add_global_bad_token"] = await call("add_model", {**add, "registry": "global", "admin_token": "nope"})
        out["add_global"] = await call("add_model", {**add, "parents": [], "registry": "global",
                                                     "admin_token": TOKEN})
        out["add_missing"] = await call("add_model", {**add, "path": str(root / "does-not-exist"),
                                                      "model_id": "x1"})
        out["add_empty"] = await call("add_model", {**add, "path": z["empty"], "model_id": "x2"})
        out["add_wrong_type"] = await call("add_model", {**add, "family": 123})
        out["add_bad_registry"] = await call("add_model", {**add, "registry": "everywhere"})
        out["add_bad_parent"] = await call("add_model", {**add, "parents": ["llama-chat:cloned"], "model_id": "x3"})

        # generate_fingerprint on the new model: stored, then the config's pairs recomputed for both metrics
        gen = {"model_id": "MCP merge", "method": "weight_spectrum"}
        out["gen"] = await call("generate_fingerprint", gen)
        out["gen_again"] = await call("generate_fingerprint", gen)
        out["gen_vectors"] = await call("get_fingerprint_vectors", {"model_id": "mcp-merge",
                                                                    "method": "weight_spectrum"})
        out["gen_similar"] = await call("find_similar_models", {"model_id": "mcp-merge", "method": "weight_spectrum",
                                                                "metric": "cosine", "limit": 3})
        out["gen_bad_method"] = await call("generate_fingerprint", {**gen, "method": "weight_spectrm"})
        out["gen_neg_timeout"] = await call("generate_fingerprint", {**gen, "timeout_s": -5})
        out["gen_metrics_type"] = await call("generate_fingerprint", {**gen, "metrics": "cosine"})
        out["gen_bad_metric"] = await call("generate_fingerprint", {**gen, "metrics": ["cosin"]})
        out["gen_bad_device"] = await call("generate_fingerprint", {**gen, "device": "gpu"})
        out["gen_unknown"] = await call("generate_fingerprint", {**gen, "model_id": "llama-bsae"})
        out["gen_no_model"] = await call("generate_fingerprint", {**gen, "model_id": "ghost"})

        # lookup_model: nothing written, then register=true
        out["before"] = await call("query", {"sql": "select (select count(*) from models) as models, "
                                                    "(select count(*) from fingerprints) as fingerprints"})
        out["lookup"] = await call("lookup_model", {"path": paths[SUSPECT], "limit": 3})
        out["after_lookup"] = await call("query", {"sql": "select (select count(*) from models) as models, "
                                                          "(select count(*) from fingerprints) as fingerprints"})
        out["lookup_register"] = await call("lookup_model", {"path": paths[SUSPECT], "limit": 3, "register": True,
                                                             "family": "GPT2", "model_type": "Quantized",
                                                             "model_id": "mcp-int8"})
        out["lookup_vectors"] = await call("get_fingerprint_vectors", {"model_id": "mcp-int8"})
        out["lookup_neg_limit"] = await call("lookup_model", {"path": paths[SUSPECT], "limit": -1})
        out["lookup_limit_type"] = await call("lookup_model", {"path": paths[SUSPECT], "limit": "ten"})
        out["lookup_missing"] = await call("lookup_model", {"path": str(root / "nothing-here")})
        out["lookup_empty"] = await call("lookup_model", {"path": z["empty"]})
        out["lookup_register_no_family"] = await call("lookup_model", {"path": paths[SUSPECT], "register": True,
                                                                       "model_type": "Quantized",
                                                                       "model_id": "mcp-int8-b"})
        out["after"] = await call("list_models", {"limit": 1000})
    return out


def _cosine(a, b) -> float:
    import numpy as np

    n = max(len(a), len(b))
    a = np.concatenate([np.zeros(n - len(a)), a])  # left padding, as the lake compares vectors
    b = np.concatenate([np.zeros(n - len(b)), b])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mcp_write_tools_end_to_end(zoo_lake):
    from fingerprinting.lake import Lake

    z = zoo_lake
    out = asyncio.run(_write_session(z))
    tools = out["tools"]
    assert WRITE_TOOLS <= set(tools)
    props = tools["add_model"].input_schema["properties"]
    assert props["registry"]["enum"] == ["local", "global"] and "admin_token" in props
    gen_props = tools["generate_fingerprint"].input_schema["properties"]
    assert gen_props["timeout_s"]["exclusiveMinimum"] == 0
    assert tools["lookup_model"].input_schema["properties"]["limit"]["minimum"] == 1
    for name in WRITE_TOOLS:
        assert tools[name].description

    # deadline: the abandoned job wrote nothing; the next job ran once its thread had ended
    assert "timed out after 0.001 s" in _err(out["timeout"])
    *busy, done = out["polls"]
    assert all("busy: generate_fingerprint" in _err(b) for b in busy)
    assert _data(done)["written"] == 1 and _data(done)["args_from"].startswith("the demo's config")
    assert "has no fingerprints for method 'weight'" in _err(out["abandoned_vectors"])

    # add_model
    added = _data(out["add_local"])
    assert (added["model_id"], added["registry"], added["kind"]) == ("mcp-merge", "local", "folder")
    assert added["parents"] == [{"model_id": z["ids"]["llama-chat"], "relation": "merge"},
                                {"model_id": z["ids"]["llama-code"], "relation": "merge"}]
    assert "pass admin_token" in _err(out["add_global_no_token"])
    assert "rejected" in _err(out["add_global_bad_token"])
    assert _data(out["add_global"])["registry"] == "global"
    glob = Lake(str(z["root"] / "global")).read("models").to_pylist()
    assert [m["model_id"] for m in glob] == ["mcp-merge"]  # exactly one write reached the global registry
    assert "does not exist" in _err(out["add_missing"])
    assert "has no config.json" in _err(out["add_empty"])
    assert "family" in _err(out["add_wrong_type"]) and "registry" in _err(out["add_bad_registry"])
    assert "unknown relation 'cloned'" in _err(out["add_bad_parent"])

    # generate_fingerprint
    gen = _data(out["gen"])
    n = z["n_fingerprinted"] + 1  # the zoo's fingerprinted models plus mcp-merge
    assert gen["written"] == 1 and not gen["reused"] and gen["config_hash"] == z["config_hash"]
    assert gen["similarities"] == {"cosine": n * (n - 1) // 2, "l1": n * (n - 1) // 2}
    again = _data(out["gen_again"])
    assert again["reused"] and again["written"] == 0
    vec = _data(out["gen_vectors"])["fingerprints"][0]["vector"]
    sim = _data(out["gen_similar"])["groups"]
    assert len(sim) == 1 and len(sim[0]["neighbors"]) == 3
    lake = z["lake"]
    stored = {r["model_id"]: r["vector"] for r in lake.read("fingerprints", filters={
        "method": "weight_spectrum", "config_hash": z["config_hash"]}).to_pylist()}
    earlier = {m: v for m, v in stored.items() if m not in ("mcp-merge", "mcp-int8")}  # mcp-int8 came later
    want = sorted(((_cosine(vec, v), m) for m, v in earlier.items()), key=lambda t: (-t[0], t[1]))
    got = [(nb["similarity"], nb["model_id"]) for nb in sim[0]["neighbors"]]
    assert [m for _, m in got] == [m for _, m in want[:3]]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in want[:3]], abs=1e-9)
    assert "did you mean 'weight_spectrum'" in _err(out["gen_bad_method"]).lower()
    assert "timeout_s" in _err(out["gen_neg_timeout"]) and "metrics" in _err(out["gen_metrics_type"])
    assert "cosin" in _err(out["gen_bad_metric"]) and "device 'gpu'" in _err(out["gen_bad_device"])
    assert "llama-bsae" in _err(out["gen_unknown"])
    assert "ghost" in _err(out["gen_no_model"]) and "config.json" in _err(out["gen_no_model"])

    # lookup_model
    before, after = _data(out["before"])["rows"], _data(out["after_lookup"])["rows"]
    assert before == after  # nothing written without register
    look = _data(out["lookup"])
    assert look["registered"] is False and look["fingerprints_written"] == 0
    assert len(look["candidates"]) == 3 and look["candidates"][0]["family"] == "GPT2"
    reg = _data(out["lookup_register"])
    assert reg["registered"] is True and reg["fingerprints_written"] >= 1
    suspect = {f["method"]: f["vector"] for f in _data(out["lookup_vectors"])["fingerprints"]}
    top = reg["candidates"][0]
    assert top["similarities"]["weight_spectrum"] == pytest.approx(
        _cosine(suspect["weight_spectrum"], stored[top["model_id"]]), abs=1e-9)
    assert "limit" in _err(out["lookup_neg_limit"]) and "limit" in _err(out["lookup_limit_type"])
    assert "does not exist" in _err(out["lookup_missing"]) and "config.json" in _err(out["lookup_empty"])
    assert "--family is required" in _err(out["lookup_register_no_family"])
    models = {m["model_id"] for m in _data(out["after"])["models"]}
    assert {"mcp-merge", "mcp-int8"} <= models and "mcp-int8-b" not in models  # still serving

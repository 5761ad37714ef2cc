"""``fplake register`` / ``models`` / ``model ...`` through flows.model_cli.main (no model is loaded)."""

from __future__ import annotations

import json
import struct

import pytest

from fingerprinting.lake import Lake
from flows.model_cli import main
from tests.conftest import STORIES
from tests.fingerprinting.test_queries import SIMS, build_lake


@pytest.fixture(scope="module")
def qlake(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "lake"
    build_lake(root)
    return str(root)


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_register_real_model_and_list(tmp_path, capsys):
    root = str(tmp_path / "lake")
    rc, out, err = run(capsys, "--lake-root", root, "register", str(STORIES), "--family", "stories", "--type", "base")
    assert rc == 0, err
    assert "registered 'stories260k' (folder" in out
    rc, out, err = run(capsys, "register", str(STORIES), "--lake-root", root, "--family", "stories",
                       "--type", "finetune", "--model-id", "stories-ft", "--display-name", "Stories FT",
                       "--parent", "stories260k:finetune", "--format", "json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["parents"] == [{"model_id": "stories260k", "relation": "finetune"}]
    assert res["arch"] == json.loads((STORIES / "config.json").read_text())["architectures"][0]
    rc, out, _ = run(capsys, "--lake-root", root, "models", "--format", "json")
    rows = {r["model_id"]: r for r in json.loads(out)}
    assert set(rows) == {"stories260k", "stories-ft"}
    assert rows["stories-ft"]["display_name"] == "Stories FT" and rows["stories-ft"]["source"] == str(STORIES.resolve())
    rc, out, _ = run(capsys, "--lake-root", root, "models", "--type", "finetune")
    assert rc == 0 and "Stories FT" in out and "stories260k (finetune)" in out
    # the same display name for another model is refused
    rc, _, err = run(capsys, "--lake-root", root, "register", str(STORIES), "--family", "s", "--type", "b",
                     "--model-id", "third", "--display-name", "Stories FT")
    assert rc == 2 and "already used by model 'stories-ft'" in err


def _refused(capsys, root, *argv):
    lake = Lake(root)
    before = (lake.version("models"), lake.version("model_edges"))
    rc, out, err = run(capsys, "--lake-root", root, "register", *argv)
    assert rc == 2 and out == ""
    assert err.startswith("fplake: error: ") and err.count("\n") == 1
    assert (lake.version("models"), lake.version("model_edges")) == before  # nothing written
    return err


def test_register_refusals(tmp_path, capsys):
    root = str(tmp_path / "lake")
    Lake(root).init()
    ok = ("--family", "f", "--type", "t")
    assert "does not exist" in _refused(capsys, root, str(tmp_path / "missing"), *ok)
    assert "write hf://org/name" in _refused(capsys, root, "org/name", *ok)
    pk = tmp_path / "pickle_only"
    pk.mkdir()
    (pk / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (pk / "pytorch_model.bin").write_bytes(b"\x80\x02not really")
    err = _refused(capsys, root, str(pk), *ok)
    assert "only pickle weights (pytorch_model.bin)" in err and "safetensors" in err
    noconf = tmp_path / "noconf"
    noconf.mkdir()
    (noconf / "model.safetensors").write_bytes((STORIES / "model.safetensors").read_bytes())
    assert "no config.json" in _refused(capsys, root, str(noconf), *ok)
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    (trunc / "config.json").write_text((STORIES / "config.json").read_text())
    (trunc / "model.safetensors").write_bytes((STORIES / "model.safetensors").read_bytes()[:5000])
    assert "truncated" in _refused(capsys, root, str(trunc), *ok)
    bad_gguf = tmp_path / "x.gguf"
    bad_gguf.write_bytes(b"NOPE" + b"\0" * 20)
    assert "not a GGUF file" in _refused(capsys, root, str(bad_gguf), *ok)
    assert "unknown model id(s): 'nobody'" in _refused(capsys, root, str(STORIES), *ok, "--parent", "nobody:finetune")
    err = _refused(capsys, root, str(STORIES), *ok, "--parent", "stories260k:fine-tune")
    assert "unknown relation 'fine-tune'" in err and "did you mean 'finetune'" in err
    assert "--family is required" in _refused(capsys, root, str(STORIES), "--family", " ", "--type", "t")
    assert Lake(root).count("models") == 0


def test_register_gguf_and_hub(tmp_path, capsys):
    root = str(tmp_path / "lake")
    g = tmp_path / "tiny.gguf"
    g.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\0" * 16)
    rc, out, err = run(capsys, "--lake-root", root, "register", str(g), "--family", "f", "--type", "quantized")
    assert rc == 0, err
    assert "registered 'tiny' (gguf" in out
    rc, out, err = run(capsys, "--lake-root", root, "register", "hf://org/name@main", "--family", "f", "--type", "base")
    assert rc == 0, err
    assert "registered 'org/name' (hub: hf://org/name@main)" in out and "checked at fingerprint time" in out
    srcs = {r["model_id"]: r["source"] for r in Lake(root).read("models").to_pylist()}
    assert srcs == {"tiny": str(g.resolve()), "org/name": "hf://org/name@main"}


def test_model_view(qlake, capsys):
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "view", "Llama Base", "--format", "json")
    v = json.loads(out)
    assert rc == 0 and v["model"]["model_id"] == "base"
    assert [c["model_id"] for c in v["children"]] == ["ft"] and v["config_features"]["hidden_size"] == 64
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "view", "base")
    assert rc == 0
    for s in ("model base", "Llama Base", "children: ft (finetune)", "fingerprints held", "input_output", "cuda",
              "config features", "hidden_size"):
        assert s in out, s
    rc, _, err = run(capsys, "--lake-root", qlake, "model", "view", "fft")
    assert rc == 2 and "did you mean 'ft'" in err and err.count("\n") == 1


def test_model_compare(qlake, capsys):
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "compare", "ft", "q", "--format", "json")
    r = json.loads(out)
    assert [(s["method"], s["metric"], s["similarity"]) for s in r["similarities"]] == [
        ("input_output", "l1", SIMS[("input_output", "l1", "h1")][("ft", "q")])]
    assert r["lineage"]["relation"] == "child" and r["combined"] is None
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "compare", "ft", "q")
    assert rc == 0 and "0.9500" in out and "q is ft's child" in out and "provenance fit" in out
    rc, _, err = run(capsys, "--lake-root", qlake, "model", "compare", "ft", "q", "--method", "weights")
    assert rc == 2 and "Did you mean 'weight'" in err


def test_model_similarities(qlake, capsys):
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "similarities", "--metric", "l1", "--threshold", "0.5",
                     "--format", "json")
    got = [(p["model_a"], p["model_b"], p["similarity"]) for p in json.loads(out)]
    want = sorted(((a, b, s) for (a, b), s in SIMS[("input_output", "l1", "h1")].items() if s >= 0.5),
                  key=lambda t: -t[2])
    assert rc == 0 and got == want
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "similarities", "--format", "table", "--limit", "2")
    assert rc == 0 and "Llama FT" in out and "0.9500" in out and "0.9000" in out and "0.8000" not in out
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "similarities", "--models", "base", "ft", "q")
    assert rc == 0 and "input_output / l1" in out and "weight / cosine" in out
    assert "Llama Q" in out and "GPT Other" not in out and "0.9500" in out
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "similarities", "--compact", "--method", "weight")
    assert rc == 0 and "0.50" in out and "0.5000" not in out and "input_output" not in out
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "similarities", "--threshold", "2")
    assert rc == 0 and "no similarities match" in out


def test_model_find_similar(qlake, capsys):
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "find-similar", "Llama Q", "--metric", "l1",
                     "--format", "json")
    r = json.loads(out)
    ns = r["groups"][0]["neighbors"]
    assert rc == 0 and [(n["model_id"], n["relation"]) for n in ns] == [("ft", "parent"), ("base", "ancestor"),
                                                                       ("other", None)]
    rc, out, _ = run(capsys, "--lake-root", qlake, "model", "find-similar", "q", "--limit", "1")
    assert rc == 0 and "nearest to Llama Q" in out and "parent" in out and "GPT Other" not in out


def test_band_styles_follow_the_metric_range():
    from flows.model_cli import _band_style

    assert _band_style(0.95, 0.0, 1.0) == _band_style(0.9, -1.0, 1.0) == "bold white on dark_green"
    assert _band_style(0.0, -1.0, 1.0) == _band_style(0.5, 0.0, 1.0) == "black on yellow3"
    assert _band_style(0.1, 0.0, 1.0) == "white on red3" and _band_style(None, 0.0, 1.0) == "dim"

"""The registry browser: its data layer on a hand-built lake, and the real app driven in a pseudo-terminal."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fingerprinting.lake import Lake
from fingerprinting.registry import ModelRecord, UnknownModelError, register_models
from flows.browse_cli import BrowserData, main, neighbor_groups, parse_filter, render_detail
from tests.fingerprinting.test_queries import SIMS, build_lake

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """test_queries' lake (base -> ft -> q, other) plus a Hub model and a GGUF file."""
    lake = build_lake(tmp_path_factory.mktemp("browse") / "lake")
    register_models(lake, [ModelRecord("hubm", "hf://org/x", "hubfam", "base", "Hub X"),
                           ModelRecord("gg", "/m/x.Q4.GGUF", "llama", "quantized", "GG")])
    d = BrowserData(lake)
    yield d
    d.close()


def _ids(rows):
    return [r["model_id"] for r in rows]


def test_index_counts_and_source_kinds(data):
    by = {r["model_id"]: r for r in data.index}
    assert _ids(data.index) == ["other", "hubm", "base", "ft", "gg", "q"]  # by family, then id
    assert {k: (v["fingerprints"], v["parents"], v["children"]) for k, v in by.items()} == {
        "base": (2, 0, 1), "ft": (1, 1, 1), "q": (0, 1, 0), "other": (0, 0, 0), "hubm": (0, 0, 0), "gg": (0, 0, 0)}
    assert {k: v["source_kind"] for k, v in by.items()} == {
        "base": "folder", "ft": "folder", "q": "folder", "other": "folder", "hubm": "hub", "gg": "gguf"}
    assert data.families == ["gpt", "hubfam", "llama"] and data.sources == ["folder", "gguf", "hub"]


def test_parse_filter():
    assert parse_filter('family:"my fam" X Type:T source:hub') == ({"family": "my fam", "type": "t",
                                                                    "source": "hub"}, ["x"])
    assert parse_filter('family:"ab') == ({"family": '"ab'}, [])  # unbalanced quote while typing
    assert parse_filter("arch:llama") == ({}, ["arch:llama"])  # not a filter key: a plain word


def test_filters(data):
    assert _ids(data.filter("family:lla")) == ["base", "ft", "gg", "q"]
    assert _ids(data.filter("type:quant")) == ["gg", "q"]
    assert _ids(data.filter("source:hub")) == ["hubm"]
    assert _ids(data.filter("source:gguf")) == ["gg"]
    assert _ids(data.filter("source:/m/b")) == ["base"]
    assert _ids(data.filter("LLAMA ft")) == ["ft"]  # every word, case-insensitive
    assert _ids(data.filter("", family="llama")) == ["base", "ft", "gg", "q"]
    assert _ids(data.filter("", family="lla")) == []  # drop-downs match exactly
    assert _ids(data.filter("", family="llama", source="gguf")) == ["gg"]
    assert _ids(data.filter("", model_type="base", source="folder")) == ["other", "base"]
    assert _ids(data.filter("nothing-like-this")) == []


def test_detail_lineage_and_neighbours(data):
    d = data.detail("q")
    assert d["model"]["display_name"] == "Llama Q"
    assert [(p["model_id"], p["relation"]) for p in d["parents"]] == [("ft", "quantized")]
    assert [(a["model_id"], a["depth"], a["derivation"]) for a in d["ancestors"]] == [
        ("ft", 1, "quantized"), ("base", 2, "finetune/quantized")]
    assert d["children"] == [] and d["n_children"] == 0 and d["fingerprints"] == [] and d["config"] is None
    sims = SIMS[("input_output", "l1", "h1")]
    want = sorted(((s, b if a == "q" else a) for (a, b), s in sims.items() if "q" in (a, b)), reverse=True)
    got = [(n["similarity"], n["model_id"], n["rank"], n["relation"]) for n in d["neighbors"]]
    assert [(s, m) for s, m, _, _ in got] == want
    assert [(r, rel) for _, _, r, rel in got] == [(1, "parent"), (2, "ancestor"), (3, None)]
    base = data.detail("base")
    assert [(c["model_id"], c["relation"]) for c in base["children"]] == [("ft", "finetune")]
    assert base["config"]["hidden_size"] == 64 and base["config"]["num_hidden_layers"] == 5
    assert [(f["method"], f["dim"]) for f in base["fingerprints"]] == [("input_output", 3), ("weight", 2)]
    # one metric per method: input_output has l1 only, weight cosine only
    assert [(m, mt) for m, mt, _, _ in neighbor_groups(base, None)] == [("input_output", "l1"), ("weight", "cosine")]
    from rich.console import Console

    con = Console(width=100, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    con.print(render_detail(base))
    text = con.export_text()
    assert "Llama Base  (base)" in text and "children (1): Llama FT (finetune)" in text
    assert "GPT Other" in text and "-0.2000" in text and "hidden_size" in text


def test_resolve(data):
    assert data.resolve("Llama Q") == "q"
    with pytest.raises(UnknownModelError, match="did you mean 'base'"):
        data.resolve("bsae")


def test_errors_are_one_line_exit_2(data, tmp_path, capsys):
    empty = tmp_path / "empty"
    assert main(["--lake-root", str(empty)]) == 2
    assert "no registry in lake" in capsys.readouterr().err
    assert main(["--lake-root", data.lake.root, "--metric", "cosin"]) == 2
    assert "Did you mean 'cosine'" in capsys.readouterr().err
    assert main(["--lake-root", data.lake.root, "--neighbors", "0"]) == 2
    assert "--neighbors 0" in capsys.readouterr().err
    assert main(["--lake-root", data.lake.root]) == 2  # pytest's stdin is not a terminal
    err = capsys.readouterr().err
    assert "interactive terminal" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ the real app in a pseudo-terminal
class Screen:
    """Just enough of a terminal to read what textual draws: cursor moves, erases, text (styles ignored)."""

    TOKEN = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\"
                       r"|\x1b[@-Z\\-_78=>]|([^\x1b]+)", re.S)

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self.pending = ""

    def feed(self, data: str) -> None:
        data, self.pending = self.pending + data, ""
        cut = data.rfind("\x1b")
        if cut >= 0:  # keep an escape sequence split across reads for the next one
            m = self.TOKEN.match(data, cut)
            if m is None or m.group(3) is not None:
                self.pending, data = data[cut:], data[:cut]
        for m in self.TOKEN.finditer(data):
            params, final, text = m.group(1), m.group(2), m.group(3)
            if text is not None:
                self._text(text)
            elif final is not None and not params.startswith("?"):
                self._csi([int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [], final)

    def _text(self, text: str) -> None:
        for ch in text:
            if ch == "\r":
                self.x = 0
            elif ch == "\n":
                self.y = min(self.y + 1, self.rows - 1)
            elif ch >= " ":
                if 0 <= self.y < self.rows and 0 <= self.x < self.cols:
                    self.grid[self.y][self.x] = ch
                self.x += 1

    def _csi(self, nums: list[int], final: str) -> None:
        n = (nums[0] or 1) if nums else 1
        if final in "Hf":
            self.y = max((nums[0] if nums else 1) or 1, 1) - 1
            self.x = max((nums[1] if len(nums) > 1 else 1) or 1, 1) - 1
        elif final in "ABCD":
            dy, dx = {"A": (-n, 0), "B": (n, 0), "C": (0, n), "D": (0, -n)}[final]
            self.y = min(max(self.y + dy, 0), self.rows - 1)
            self.x = min(max(self.x + dx, 0), self.cols - 1)
        elif final == "G":
            self.x = n - 1
        elif final == "K":
            mode = nums[0] if nums else 0
            cols = range(self.x, self.cols) if mode == 0 else range(0, self.x + 1) if mode == 1 else range(self.cols)
            for i in cols:
                self.grid[self.y][i] = " "
        elif final == "J" and nums and nums[0] in (2, 3):
            self.grid = [[" "] * self.cols for _ in range(self.rows)]

    def text(self) -> str:
        return "\n".join("".join(r).rstrip() for r in self.grid)

    def right_pane(self) -> list[str]:
        """The detail pane: what is right of the table's separator on each line."""
        return [line.split("│", 1)[1].strip() if "│" in line else "" for line in self.text().splitlines()]


@pytest.fixture(scope="module")
def zoo_lake(tmp_path_factory, tiny_zoo):
    """The tiny zoo registered, weight_spectrum fingerprints and cosine / l1 pairs (as the flows write them)."""
    from fingerprinting import pipeline
    from fingerprinting.methods import make_method
    from fingerprinting.registry import list_models, zoo_records

    lake = Lake(str(tmp_path_factory.mktemp("browse-zoo") / "lake")).init()
    register_models(lake, zoo_records(tiny_zoo))
    method = make_method("weight_spectrum")
    fps = [fp for r in list_models(lake) for fp in pipeline.fingerprint_model(r, [method], device="cpu")]
    pipeline.write_fingerprints(lake, pipeline.fingerprint_table(fps, "test"))
    pipeline.compute_similarities(lake, "weight_spectrum", method.config_hash, ["cosine", "l1"])
    return lake


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_browser_in_a_pseudo_terminal(zoo_lake, tiny_zoo):
    import pexpect

    rows, cols = 45, 160
    names = {m["model_id"]: m["display_name"] for m in tiny_zoo["models"]}
    chat = next(m["model_id"] for m in tiny_zoo["models"] if m["display_name"] == "llama-chat")
    # the expected top neighbour, from the stored vectors: cosine with left padding
    vecs = {r["model_id"]: np.asarray(r["vector"], float) for r in zoo_lake.read("fingerprints").to_pylist()}
    width = max(len(v) for v in vecs.values())
    pad = {k: np.concatenate([np.zeros(width - len(v)), v]) for k, v in vecs.items()}
    ref = {k: float(pad[chat] @ v / (np.linalg.norm(pad[chat]) * np.linalg.norm(v))) for k, v in pad.items()
           if k != chat}
    best = max(ref.values())

    env = dict(os.environ, TERM="xterm-256color", FPLAKE_TORCH_THREADS="1")
    child = pexpect.spawn(sys.executable, ["-c", "import sys; from flows.browse_cli import main; sys.exit(main())",
                                           "--lake-root", zoo_lake.root], cwd=str(REPO), env=env,
                          dimensions=(rows, cols), encoding="utf-8", timeout=60)
    screen = Screen(rows, cols)

    def wait_for(pred, what: str, timeout: float = 90) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                screen.feed(child.read_nonblocking(1 << 16, timeout=0.2))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                break
            if pred(screen.text()):
                return screen.text()
        raise AssertionError(f"{what} not on screen:\n{screen.text()}")

    try:
        t0 = time.monotonic()
        wait_for(lambda s: "31 of 31 models" in s, "the model list")
        started = time.monotonic() - t0
        wait_for(lambda s: "q Quit" in s and "/ Filter" in s and "⏎ Open" in s, "the keys in the footer")
        child.send("/")
        wait_for(lambda s: "q Quit" not in s, "the filter's focus")  # typing: q types, it does not quit
        child.send("family:llama chat")
        wait_for(lambda s: "1 of 31 models" in s, "the filtered list")
        child.send("\r")  # leave the filter for the list
        wait_for(lambda s: "q Quit" in s and "⏎ Open" in s, "the list's focus")
        child.send("\r")  # open the highlighted (only) model
        # the pane fills in steps: wait for the title and the neighbours together (no partial render)
        text = wait_for(lambda s: "Nearest neighbours" in s and "similarity" in s and f"llama-chat  ({chat})" in s
                        and "open: " + chat in s, "the model's detail")
        pane = screen.right_pane()
        assert f"llama-chat  ({chat})" in text and "open: " + chat in text
        assert any(re.fullmatch(r"family\s+Llama", line) for line in pane)
        assert "parents: llama-base (finetune)" in pane and any(p.startswith("children (1): llama-merge") for p in pane)
        assert any(line.startswith("weight_spectrum / cosine") for line in pane)
        top = next(re.fullmatch(r"1\s+(\S+)\s+(\S+)\s+(\S+)\s+([0-9.]+)", line) for line in pane
                   if re.fullmatch(r"1\s+(\S+)\s+(\S+)\s+(\S+)\s+([0-9.]+)", line))
        shown_name, family, _, shown_sim = top.groups()
        top_id = next(k for k, v in names.items() if v == shown_name)
        assert ref[top_id] == pytest.approx(best, abs=1e-9) and shown_sim == f"{best:.4f}"  # a true maximiser
        assert family == next(m["family"] for m in tiny_zoo["models"] if m["model_id"] == top_id)
        child.send("q")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)
    assert started < 30

"""``fplake registry browse``: an interactive terminal browser over the registry (textual).

    fplake registry browse [--filter TEXT] [--model ID] [--metric M] [--neighbors K]
    python -c "import sys; from flows.browse_cli import main; sys.exit(main())" [--lake-root DIR] ...

Filter by family, type and source (the three drop-downs, or ``family:F type:T
source:S`` in the filter box) and free text (every word must occur in the id,
display name, family, type, source or architecture). Open a model (Enter) to see
its record, lineage (parents, ancestors, children), fingerprints, nearest
neighbours (per method, one metric at a time: ``m`` cycles) and config features.
Keys are shown in the footer: ``/`` filter, Enter open, ``m`` metric, Esc back, ``q`` quit.

Data access (:class:`BrowserData`, over :mod:`fingerprinting.queries`) is kept
apart from the UI (:func:`make_app`): it reads the lake through DuckDB, never
loads a model, and loads the index of every model in one query, so the browser
starts in about the time of opening the lake's tables.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from fingerprinting.errors import FingerprintLakeError

FILTER_KEYS = ("family", "type", "source")
PREFERRED_METRICS = ("cosine", "l1")


class BrowseError(FingerprintLakeError):
    """The browser cannot start (no registry, no terminal, bad option)."""


# ------------------------------------------------------------------ data (no UI)
def parse_filter(text: str) -> tuple[dict[str, str], list[str]]:
    """``'family:llama type:chat tiny'`` -> ``({"family": "llama", "type": "chat"}, ["tiny"])`` (lower case).

    Values may be quoted (``family:"my family"``); an unknown ``key:`` is a plain word.
    """
    try:
        parts = shlex.split(text or "")
    except ValueError:  # an unbalanced quote while typing
        parts = (text or "").split()
    keys: dict[str, str] = {}
    words: list[str] = []
    for p in parts:
        key, sep, value = p.partition(":")
        if sep and key.lower() in FILTER_KEYS and value:
            keys[key.lower()] = value.lower()
        else:
            words.append(p.lower())
    return keys, words


class BrowserData:
    """What the browser shows, read from the lake (never a model): the index, filters and one model's detail."""

    def __init__(self, lake, k: int = 5):
        from fingerprinting import queries as q

        self._q = q
        self.lake = lake
        self.k = k
        self.con = q.connect_tables(lake)
        self.index = q.browse_index(self.con)
        self._hay = [" ".join(str(r[c] or "") for c in ("model_id", "display_name", "family", "model_type", "source",
                                                         "arch")).lower() for r in self.index]
        self.families = sorted({r["family"] for r in self.index})
        self.types = sorted({r["model_type"] for r in self.index})
        self.sources = sorted({r["source_kind"] for r in self.index})

    def filter(self, text: str = "", family: str | None = None, model_type: str | None = None,
               source: str | None = None) -> list[dict]:
        """Index rows matching every condition: drop-down values exactly, ``key:value`` and words as substrings."""
        keys, words = parse_filter(text)
        out = []
        for r, hay in zip(self.index, self._hay, strict=True):
            if family is not None and r["family"] != family:
                continue
            if model_type is not None and r["model_type"] != model_type:
                continue
            if source is not None and r["source_kind"] != source:
                continue
            if "family" in keys and keys["family"] not in r["family"].lower():
                continue
            if "type" in keys and keys["type"] not in r["model_type"].lower():
                continue
            if "source" in keys and keys["source"] != r["source_kind"] and keys["source"] not in r["source"].lower():
                continue
            if all(w in hay for w in words):
                out.append(r)
        return out

    def resolve(self, ident: str) -> str:
        """A model id for an id or unique display name ("did you mean" otherwise)."""
        return self._q.resolve_ids(self.con, [ident], self.index)[0]["model_id"]

    def detail(self, model_id: str) -> dict:
        """Record, lineage, fingerprints, neighbours (every method x metric) and config of one model."""
        return self._q.model_detail(self.con, model_id, k=self.k)

    def close(self) -> None:
        self.con.close()


def metrics_of(detail: dict) -> list[str]:
    """Metrics with neighbours for this model, preferred ones first."""
    found = sorted({n["metric"] for n in detail["neighbors"]})
    return [m for m in PREFERRED_METRICS if m in found] + [m for m in found if m not in PREFERRED_METRICS]


def neighbor_groups(detail: dict, metric: str | None) -> list[tuple[str, str, str, list[dict]]]:
    """``(method, metric, config_hash, neighbours)`` for one metric per method (``metric`` where the method has
    it, else cosine, else l1, else its first); a method with several configs keeps one group per config."""
    groups: dict[tuple, list[dict]] = {}
    for n in detail["neighbors"]:
        groups.setdefault((n["method"], n["metric"], n["config_hash"]), []).append(n)
    out = []
    for method in sorted({g[0] for g in groups}):
        have = sorted(g for g in groups if g[0] == method)
        for want in (metric, *PREFERRED_METRICS):
            pick = [g for g in have if g[1] == want]
            if pick:
                break
        for g in pick or have[:1]:
            out.append((*g, groups[g]))
    return out


def render_detail(detail: dict, metric: str | None = None):
    """A rich renderable of one model's detail (used by the UI; printable on its own)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    m = detail["model"]
    parts: list = [Text(f"{m['display_name']}  ({m['model_id']})", style="bold")]
    rec = Table.grid(padding=(0, 1))
    rec.add_column(style="dim")
    rec.add_column()
    for label, key in (("family", "family"), ("type", "model_type"), ("source", "source"), ("arch", "arch"),
                       ("registered", "registered_at")):
        rec.add_row(label, str(m.get(key) or "-"))
    parts.append(rec)

    parts.append(Text("\nLineage", style="bold underline"))
    if detail["parents"]:
        parts.append(Text("parents: " + ", ".join(f"{p['display_name']} ({p['relation']})" for p in detail["parents"])))
    else:
        parts.append(Text("parents: none recorded"))
    far = [a for a in detail["ancestors"] if a["depth"] > 1]
    if far:
        parts.append(Text("ancestors: " + ", ".join(f"{a['display_name']} (depth {a['depth']}, {a['derivation']})"
                                                    for a in far[:20])))
    if detail["n_children"]:
        more = f" ... and {detail['n_children'] - len(detail['children'])} more" \
            if detail["n_children"] > len(detail["children"]) else ""
        parts.append(Text(f"children ({detail['n_children']}): "
                          + ", ".join(f"{c['display_name']} ({c['relation']})" for c in detail["children"]) + more))
    else:
        parts.append(Text("children: none"))

    parts.append(Text("\nFingerprints", style="bold underline"))
    if detail["fingerprints"]:
        fp = Table(box=None, padding=(0, 1), show_edge=False)
        for c in ("method", "config", "dim", "device", "created"):
            fp.add_column(c)
        for f in detail["fingerprints"]:
            fp.add_row(f["method"], f["config_hash"], str(f["dim"]), f["device"] or "-",
                       str(f["created_at"] or "-")[:19])
        parts.append(fp)
    else:
        parts.append(Text("none stored"))

    groups = neighbor_groups(detail, metric)
    others = metrics_of(detail)
    parts.append(Text("\nNearest neighbours" + (f"  (m: next metric of {', '.join(others)})" if len(others) > 1
                                                 else ""), style="bold underline"))
    if not groups:
        parts.append(Text("no similarities stored for this model"))
    for method, met, cfg, ns in groups:
        t = Table(title=f"{method} / {met} ({cfg})", title_justify="left", box=None, padding=(0, 1), show_edge=False)
        for c in ("#", "model", "family", "relation", "similarity"):
            t.add_column(c, justify="right" if c in ("#", "similarity") else "left")
        for n in ns:
            t.add_row(str(n["rank"]), n["display_name"], str(n["family"] or "-"), n["relation"] or "-",
                      f"{n['similarity']:.4f}")
        parts.append(t)

    parts.append(Text("\nConfig", style="bold underline"))
    if detail["config"]:
        cfg = Table.grid(padding=(0, 1))
        cfg.add_column(style="dim")
        cfg.add_column()
        for key, value in detail["config"].items():
            cfg.add_row(key, str(value))
        parts.append(cfg)
    else:
        parts.append(Text("no config ingested (fplake configs ingest)"))
    return Group(*parts)


# ------------------------------------------------------------------ UI
def make_app(data: BrowserData, initial_filter: str = "", open_model: str | None = None, metric: str | None = None):
    """The textual app over ``data``."""
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.containers import Horizontal, VerticalScroll
    from textual.widgets import DataTable, Footer, Header, Input, Select, Static

    class ModelTable(DataTable):
        BINDINGS = [Binding("enter", "select_cursor", "Open")]  # DataTable's own is hidden from the footer

    class BrowseApp(App):
        TITLE = "Fingerprint Lake registry"
        CSS = """
        #filters { height: 3; }
        #filter { width: 1fr; }
        #filters Select { width: 26; }
        #main { height: 1fr; }
        #models { width: 3fr; }
        #detail { width: 2fr; border-left: solid $accent; padding: 0 1; }
        #status { height: 1; padding: 0 1; }
        """
        BINDINGS = [
            Binding("q", "quit", "Quit"),
            Binding("slash", "focus_filter", "Filter"),
            Binding("m", "next_metric", "Metric"),
            Binding("escape", "back", "Back"),
        ]

        def __init__(self):
            super().__init__()
            self.rows: list[dict] = []
            self.opened: str | None = None
            self.detail: dict | None = None
            self.metric = metric
            self._pending = None

        def compose(self) -> ComposeResult:
            yield Header()
            with Horizontal(id="filters"):
                yield Input(value=initial_filter, id="filter",
                            placeholder="filter: words, family:F type:T source:hub|folder|gguf")
                yield Select([(f, f) for f in data.families], prompt="family", id="family")
                yield Select([(t, t) for t in data.types], prompt="type", id="type")
                yield Select([(s, s) for s in data.sources], prompt="source", id="source")
            with Horizontal(id="main"):
                yield ModelTable(id="models", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="detail"):
                    yield Static("Enter opens the highlighted model.", id="detail-body")
            yield Static("", id="status")
            yield Footer()

        def on_mount(self) -> None:
            table = self.query_one("#models", DataTable)
            for label, width in (("display name", 40), ("family", 24), ("type", 10), ("source", 6), ("fp", 3),
                                 ("id", 40)):
                table.add_column(label, width=width)
            self.refilter()
            table.focus()
            if open_model:
                self.open(open_model)

        def _select(self, name: str):
            value = self.query_one(f"#{name}", Select).value
            return None if value == Select.NULL else value

        def refilter(self) -> None:
            self._pending = None
            text = self.query_one("#filter", Input).value
            self.rows = data.filter(text, family=self._select("family"), model_type=self._select("type"),
                                    source=self._select("source"))
            table = self.query_one("#models", DataTable)
            table.clear()
            table.add_rows([(r["display_name"], r["family"], r["model_type"], r["source_kind"],
                             str(r["fingerprints"]), r["model_id"]) for r in self.rows])
            self.status()

        def status(self) -> None:
            self.query_one("#status", Static).update(
                f"{len(self.rows)} of {len(data.index)} models" + (f"  |  open: {self.opened}" if self.opened else ""))

        def on_input_changed(self, event: Input.Changed) -> None:
            if self._pending is not None:  # refilter once typing pauses, not on every key
                self._pending.stop()
            self._pending = self.set_timer(0.15, self.refilter)

        def on_input_submitted(self, event: Input.Submitted) -> None:
            if self._pending is not None:
                self._pending.stop()
                self._pending = None
            self.refilter()
            self.query_one("#models", DataTable).focus()

        def on_select_changed(self, event: Select.Changed) -> None:
            self.refilter()

        def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
            if 0 <= event.cursor_row < len(self.rows):
                self.open(self.rows[event.cursor_row]["model_id"])

        def open(self, model_id: str) -> None:
            self.opened = model_id
            self.detail = data.detail(model_id)
            self.show()
            self.status()

        def show(self) -> None:
            self.query_one("#detail-body", Static).update(render_detail(self.detail, self.metric))
            self.query_one("#detail", VerticalScroll).scroll_home(animate=False)

        def action_focus_filter(self) -> None:
            self.query_one("#filter", Input).focus()

        def action_next_metric(self) -> None:
            if not self.detail:
                return
            found = metrics_of(self.detail)
            if found:
                shown = {g[1] for g in neighbor_groups(self.detail, self.metric)}
                current = next((m for m in found if m in shown), found[0])
                self.metric = found[(found.index(current) + 1) % len(found)]
                self.show()

        def action_back(self) -> None:
            self.query_one("#models", DataTable).focus()

    return BrowseApp()


# ------------------------------------------------------------------ command line
def _browse_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", default="", metavar="TEXT",
                   help="initial filter: words, family:F type:T source:hub|folder|gguf")
    p.add_argument("--model", default=None, metavar="ID", help="open this model (id or display name) at start")
    p.add_argument("--metric", default=None, help="metric of the neighbour lists (default cosine, else l1)")
    p.add_argument("--neighbors", type=int, default=5, metavar="K", help="neighbours per method and metric (1..50)")


def add_browse_parser(registry_subparsers, common: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``browse`` under ``fplake registry``."""
    b = registry_subparsers.add_parser(
        "browse", parents=[common] if common is not None else [],
        help="interactive terminal browser: filter models, open one (record, lineage, fingerprints, neighbours, "
             "config)")
    _browse_options(b)
    return b


def check_lake(lake_root: str):
    """The :class:`~fingerprinting.lake.Lake` at ``lake_root``, or :class:`BrowseError` when it has no registry."""
    from fingerprinting.lake import Lake

    lake = Lake(lake_root)
    if not lake.exists("models"):
        raise BrowseError(f"no registry in lake {lake.root!r} (no models table): run `fplake register-demo` or "
                          "`fplake register PATH ...` first, or pass --lake-root")
    return lake


def load_data(lake_root: str, k: int = 5) -> BrowserData:
    """:class:`BrowserData` of a lake, or :class:`BrowseError` naming the lake when there is nothing to browse."""
    if not 1 <= k <= 50:
        raise BrowseError(f"--neighbors {k}: expected 1..50")
    lake = check_lake(lake_root)
    data = BrowserData(lake, k=k)
    if not data.index:
        data.close()
        raise BrowseError(f"no models registered in lake {lake.root!r}: run `fplake register-demo` or "
                          "`fplake register PATH ...` first")
    return data


def cmd_browse(args) -> int:
    """Run the browser until ``q``."""
    from fingerprinting.queries import validate_metric
    from fingerprinting.settings import get_settings

    settings = get_settings().with_overrides(lake_root=getattr(args, "lake_root", None))
    validate_metric(args.metric)
    if not 1 <= args.neighbors <= 50:
        raise BrowseError(f"--neighbors {args.neighbors}: expected 1..50")
    check_lake(settings.lake_root)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BrowseError("fplake registry browse needs an interactive terminal (stdin and stdout are not a tty); "
                          "use `fplake models` / `fplake model view` in scripts")
    data = load_data(settings.lake_root, args.neighbors)
    try:
        start = data.resolve(args.model) if args.model else None
        make_app(data, args.filter, start, args.metric).run()
    finally:
        data.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``fplake registry browse`` runs :func:`cmd_browse` the same way)."""
    p = argparse.ArgumentParser(prog="fplake registry browse", description=__doc__.splitlines()[0])
    p.add_argument("--lake-root", default=None, help="lake folder or s3:// URL (FPLAKE_LAKE_ROOT)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    _browse_options(p)
    args = p.parse_args(argv)
    try:
        return cmd_browse(args)
    except FingerprintLakeError as exc:
        if args.debug:
            raise
        print(f"fplake registry browse: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2


HANDLERS = {"browse": cmd_browse}

"""``fplake register``, ``fplake models`` and ``fplake model view|compare|similarities|find-similar``.

    fplake register PATH_OR_ID --family F --type T [--parent ID:RELATION ...] [--display-name N] [--model-id ID]
    fplake models [--family F] [--type T] [--search S] [--format pretty|json]
    fplake model view ID
    fplake model compare A B [--method M] [--metric X]
    fplake model similarities [--models ...] [--method] [--metric] [--threshold] [--limit]
                              [--format matrix|table|json] [--compact]
    fplake model find-similar ID [--method] [--metric] [--threshold] [--limit]

The logic lives in :mod:`fingerprinting.queries` (DuckDB over the lake, no model
is loaded); this module parses arguments and prints. Wire it into ``fplake``
with :func:`add_model_parsers` and :data:`HANDLERS`; ``python -m flows.model_cli``
runs these commands alone.
"""

from __future__ import annotations

import argparse
import json
import sys

from fingerprinting.errors import FingerprintLakeError

FORMATS = ["pretty", "json"]


# ------------------------------------------------------------------ parsers
def add_model_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``register``, ``models`` and ``model`` to the sub-parsers ``sub`` (global options from ``common``)."""
    from fingerprinting.registry import RELATIONS

    rg = sub.add_parser("register", parents=[common],
                        help="register your model (folder, *.gguf or hf://org/name) after checking it is loadable")
    rg.add_argument("path_or_id", metavar="PATH_OR_ID",
                    help="model folder (config.json + *.safetensors), *.gguf file, or hf://org/name[@revision]")
    rg.add_argument("--family", required=True, help="model family (e.g. llama)")
    rg.add_argument("--type", dest="model_type", required=True, help="model type (e.g. base, finetune, quantized)")
    rg.add_argument("--parent", action="append", default=[], metavar="ID:RELATION",
                    help=f"a registered parent and the relation ({', '.join(sorted(RELATIONS))}); repeatable")
    rg.add_argument("--display-name", default=None, help="name shown in reports (default: the model id)")
    rg.add_argument("--model-id", default=None, help="id in the registry (default: folder / file name, or org/name)")
    rg.add_argument("--format", choices=FORMATS, default="pretty")

    ls = sub.add_parser("models", parents=[common], help="list registered models")
    ls.add_argument("--family", default=None)
    ls.add_argument("--type", dest="model_type", default=None)
    ls.add_argument("--search", default=None, help="substring of the model id or display name")
    ls.add_argument("--format", choices=FORMATS, default="pretty")

    md = sub.add_parser("model", parents=[common], help="query one model or pairs of models (no model is loaded)")
    mds = md.add_subparsers(dest="model_cmd", required=True)
    v = mds.add_parser("view", parents=[common], help="registry record, lineage, fingerprints held, config features")
    v.add_argument("model", metavar="ID", help="model id or display name")
    v.add_argument("--format", choices=FORMATS, default="pretty")
    c = mds.add_parser("compare", parents=[common], help="similarity of two models per method x metric, shared lineage")
    c.add_argument("a", metavar="A")
    c.add_argument("b", metavar="B")
    c.add_argument("--method", default=None)
    c.add_argument("--metric", default=None)
    c.add_argument("--format", choices=FORMATS, default="pretty")
    s = mds.add_parser("similarities", parents=[common], help="pairwise similarities: colour matrix, table or JSON")
    s.add_argument("--models", nargs="+", default=None, metavar="ID", help="only pairs among these models")
    s.add_argument("--method", default=None)
    s.add_argument("--metric", default=None)
    s.add_argument("--threshold", type=float, default=None, help="keep similarities >= this")
    s.add_argument("--limit", type=int, default=None, help="at most this many pairs (most similar first)")
    s.add_argument("--format", choices=["matrix", "table", "json"], default="matrix")
    s.add_argument("--compact", action="store_true", help="short labels and two decimals")
    f = mds.add_parser("find-similar", parents=[common], help="nearest registered models to one model")
    f.add_argument("model", metavar="ID")
    f.add_argument("--method", default=None)
    f.add_argument("--metric", default=None)
    f.add_argument("--threshold", type=float, default=None)
    f.add_argument("--limit", type=int, default=10)
    f.add_argument("--format", choices=FORMATS, default="pretty")


# ------------------------------------------------------------------ output helpers
def _lake(args):
    from fingerprinting.lake import Lake
    from flows.cli import _settings

    return Lake(_settings(args).lake_root)


def _console():
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich comes with prefect
        return None
    return Console(highlight=False, soft_wrap=False, width=200 if not sys.stdout.isatty() else None)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=1, default=str))


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _band_style(value: float | None, lower: float, upper: float) -> str:
    """Cell style by the similarity's position in the metric's range."""
    if value is None:
        return "dim"
    x = (value - lower) / (upper - lower) if upper > lower else value
    if x >= 0.9:
        return "bold white on dark_green"
    if x >= 0.75:
        return "black on green3"
    if x >= 0.5:
        return "black on yellow3"
    if x >= 0.25:
        return "black on dark_orange"
    return "white on red3"


def _table(title: str, columns: list[str], rows: list[list], styles: list[list[str | None]] | None = None):
    """A rich table, or plain aligned text when rich is missing."""
    console = _console()
    if console is None:  # pragma: no cover
        print(title)
        print("  ".join(columns))
        for r in rows:
            print("  ".join(str(x) for x in r))
        return
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for i, r in enumerate(rows):
        cells = [str(x) if x is not None else "" for x in r]
        if styles:
            from rich.text import Text

            cells = [Text(c, style=styles[i][j] or "") for j, c in enumerate(cells)]
        t.add_row(*cells)
    console.print(t)


def _kv(title: str, pairs: list[tuple[str, object]]) -> None:
    print(title)
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        print(f"  {k:<{width}}  {v if v not in (None, '') else '-'}")


# ------------------------------------------------------------------ handlers
def cmd_register(args) -> int:
    from fingerprinting.queries import register_model

    res = register_model(_lake(args), args.path_or_id, args.family, args.model_type, args.parent,
                         args.display_name, args.model_id)
    if args.format == "json":
        _print_json(res)
        return 0
    verb = "updated" if res["updated"] else "registered"
    parents = ", ".join(f"{p['model_id']} ({p['relation']})" for p in res["parents"]) or "none"
    print(f"{verb} {res['model_id']!r} ({res['kind']}: {res['source']}); family {res['family']}, "
          f"type {res['model_type']}, display name {res['display_name']!r}, parents: {parents}")
    if res["note"]:
        print(f"note: {res['note']}")
    return 0


def cmd_models(args) -> int:
    from fingerprinting.queries import list_registered

    rows = list_registered(_lake(args), args.family, args.model_type, args.search)
    if args.format == "json":
        _print_json(rows)
        return 0
    if not rows:
        print("no registered models match" if (args.family or args.model_type or args.search)
              else "no models registered; `fplake register PATH --family F --type T` or `fplake register-demo`")
        return 0
    _table(f"{len(rows)} registered model(s)",
           ["model id", "display name", "family", "type", "arch", "parents", "fingerprints", "source"],
           [[r["model_id"], r["display_name"], r["family"], r["model_type"], r["arch"],
             ", ".join(f"{p['model_id']} ({p['relation']})" for p in r["parents"]), r["fingerprints"], r["source"]]
            for r in rows])
    return 0


def _view(args) -> int:
    from fingerprinting.queries import view_model

    v = view_model(_lake(args), args.model)
    if args.format == "json":
        _print_json(v)
        return 0
    m = v["model"]
    _kv(f"model {m['model_id']}", [("display name", m["display_name"]), ("family", m["family"]),
                                    ("type", m["model_type"]), ("arch", m["arch"]), ("source", m["source"]),
                                    ("registered", m["registered_at"]),
                                    ("similarity rows", v["similarity_rows"])])
    for what in ("parents", "children"):
        items = ", ".join(f"{x['model_id']} ({x['relation']})" for x in v[what]) or "none recorded"
        print(f"{what}: {items}")
    if v["fingerprints"]:
        _table("fingerprints held", ["method", "config", "config hash", "dim", "device", "dtype", "date"],
               [[f["method"], json.dumps(f["config"], sort_keys=True) if isinstance(f["config"], dict) else f["config"],
                 f["config_hash"], f["dim"], f["device"], f["dtype"], f["created_at"]] for f in v["fingerprints"]])
    else:
        print("fingerprints held: none")
    cf = v["config_features"]
    if cf:
        _kv("config features", [(k, val) for k, val in cf.items()])
    else:
        print("config features: none (run `fplake configs ingest`)")
    return 0


def _compare(args) -> int:
    from fingerprinting.queries import compare_models

    r = compare_models(_lake(args), args.a, args.b, args.method, args.metric)
    if args.format == "json":
        _print_json(r)
        return 0
    a, b = r["a"], r["b"]
    print(f"{a['display_name']} ({a['model_id']}; {a['family']}/{a['model_type']})  vs  "
          f"{b['display_name']} ({b['model_id']}; {b['family']}/{b['model_type']})")
    if r["similarities"]:
        _table("similarity per method x metric", ["method", "metric", "config hash", "similarity"],
               [[s["method"], s["metric"], s["config_hash"], _fmt(s["similarity"])] for s in r["similarities"]])
    else:
        print("no similarity recorded for this pair" + (" with these filters" if args.method or args.metric else "")
              + "; fingerprint both models first (run_experiment)")
    lin = r["lineage"]
    if lin is None:
        print(f"shared lineage: none recorded ({'same' if r['same_family'] else 'different'} family)")
    else:
        detail = f" via {lin['via']}" if lin["via"] else ""
        deriv = f", {lin['derivation']}" if lin["derivation"] else ""
        print(f"shared lineage: {b['model_id']} is {a['model_id']}'s {lin['relation']} "
              f"(depth {lin['depth']}{detail}{deriv})")
    print(r["combined_note"])
    return 0


def _short(name: str, n: int = 12) -> str:
    return name if len(name) <= n else name[: n - 1] + "~"


def _similarities(args) -> int:
    from fingerprinting.queries import similarity_matrices, similarity_pairs

    lake = _lake(args)
    pairs = similarity_pairs(lake, args.models, args.method, args.metric, args.threshold, args.limit)
    if args.format == "json":
        _print_json(pairs)
        return 0
    if not pairs:
        print("no similarities match (fingerprint models first, or relax --threshold / --models)")
        return 0
    digits = 2 if args.compact else 4
    if args.format == "table":
        _table(f"{len(pairs)} pair(s), most similar first",
               ["method", "metric", "model a", "model b", "family a", "family b", "similarity"],
               [[p["method"], p["metric"], p["display_name_a"], p["display_name_b"], p["family_a"], p["family_b"],
                 _fmt(p["similarity"], digits)] for p in pairs])
        return 0
    order = None
    if args.models:
        from fingerprinting.queries import connect, resolve_ids

        con = connect(lake)
        order = [m["model_id"] for m in resolve_ids(con, args.models)]
        con.close()
    for mat in similarity_matrices(pairs, order):
        labels = [_short(n) if args.compact else n for n in mat["display_names"]]
        rows, styles = [], []
        for i, lab in enumerate(labels):
            vals = mat["matrix"][i]
            rows.append([lab] + ["" if i == j else _fmt(v, digits) for j, v in enumerate(vals)])
            styles.append(["bold"] + [None if i == j else _band_style(v, mat["lower"], mat["upper"])
                                      for j, v in enumerate(vals)])
        _table(f"{mat['method']} / {mat['metric']} (config {mat['config_hash']}; range {mat['lower']:g}..{mat['upper']:g})",
               [""] + labels, rows, styles)
    return 0


def _find_similar(args) -> int:
    from fingerprinting.queries import find_similar

    r = find_similar(_lake(args), args.model, args.method, args.metric, args.threshold, args.limit)
    if args.format == "json":
        _print_json(r)
        return 0
    m = r["model"]
    if not r["groups"]:
        print(f"no neighbours of {m['model_id']!r} recorded with these filters")
        return 0
    for g in r["groups"]:
        _table(f"nearest to {m['display_name']} ({m['model_id']}): {g['method']} / {g['metric']} "
               f"(config {g['config_hash']})",
               ["rank", "model id", "display name", "family", "type", "relation", "similarity"],
               [[n["rank"], n["model_id"], n["display_name"], n["family"], n["model_type"], n["relation"] or "",
                 _fmt(n["similarity"])] for n in g["neighbors"]])
    return 0


def cmd_model(args) -> int:
    return {"view": _view, "compare": _compare, "similarities": _similarities,
            "find-similar": _find_similar}[args.model_cmd](args)


HANDLERS = {"register": cmd_register, "models": cmd_models, "model": cmd_model}


def main(argv: list[str] | None = None) -> int:
    """These commands alone (same global options and one-line errors as ``fplake``)."""
    from flows.cli import _global_options

    p = argparse.ArgumentParser(prog="fplake", description="register and query models")
    _global_options(p, argparse.SUPPRESS)
    p.set_defaults(lake_root=None, warehouse=None, reports_dir=None, device=None, debug=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True)
    add_model_parsers(sub, common)
    args = p.parse_args(argv)
    try:
        return int(HANDLERS[args.cmd](args) or 0)
    except (FingerprintLakeError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"fplake: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

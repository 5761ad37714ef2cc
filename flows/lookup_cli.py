"""``fplake lookup PATH_OR_ID``: fingerprint an unregistered model and rank its likely relatives.

    fplake lookup PATH_OR_ID [--register --family F --type T] [--methods ...] [--metric M]
                  [--limit N] [--html OUT] [--format pretty|json]

The logic lives in :mod:`fingerprinting.lookup`; this module parses and prints.
Nothing is written unless ``--register``.
"""

from __future__ import annotations

import argparse
import json

FORMATS = ["pretty", "json"]


def add_lookup_parser(sub, common: argparse.ArgumentParser) -> None:
    lk = sub.add_parser("lookup", parents=[common],
                        help="fingerprint an unregistered model (folder or *.gguf) and rank registered relatives")
    lk.add_argument("path_or_id", metavar="PATH_OR_ID", help="model folder (config.json + *.safetensors) or *.gguf")
    lk.add_argument("--methods", nargs="+", default=None, metavar="M",
                    help="only these methods (default: every method with stored fingerprints)")
    lk.add_argument("--metric", default="cosine", help="similarity metric (default cosine)")
    lk.add_argument("--limit", type=int, default=10, help="at most this many candidates (default 10)")
    lk.add_argument("--html", default=None, metavar="OUT", help="also write an offline HTML page here")
    lk.add_argument("--register", action="store_true", help="register the model and store its fingerprints")
    lk.add_argument("--family", default=None, help="family (required with --register)")
    lk.add_argument("--type", dest="model_type", default=None, help="model type (required with --register)")
    lk.add_argument("--model-id", default=None, help="id to register under (default: folder / file name)")
    lk.add_argument("--display-name", default=None)
    lk.add_argument("--format", choices=FORMATS, default="pretty")


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def cmd_lookup(args) -> int:
    from fingerprinting.lookup import lookup_model, lookup_page
    from flows.model_cli import _lake, _table

    lake = _lake(args)
    device = getattr(args, "device", None) or "cpu"
    res = lookup_model(lake, args.path_or_id, methods=args.methods, metric=args.metric, limit=args.limit,
                       device=device, register=args.register, family=args.family, model_type=args.model_type,
                       model_id=args.model_id, display_name=args.display_name)
    if args.html:
        from fingerprinting.reports.page import write_text

        res["html"] = write_text(args.html, lookup_page(res))
    if args.format == "json":
        print(json.dumps(res, indent=1, default=str))
        return 0
    s, t = res["suspect"], res["timings"]
    print(f"suspect {s['model_id']} ({s['kind']}: {s['source']}; arch {s['arch'] or '?'}); metric {res['metric']}")
    for m in res["methods"]:
        state = "used" if m["used"] else "skipped"
        print(f"  {m['method']}: config {m['config_hash']} ({m['n_stored']} stored), {state}"
              + (f" - {m['note']}" if m["note"] else ""))
    used = [m["method"] for m in res["methods"] if m["used"]]
    if res["candidates"]:
        _table(f"{len(res['candidates'])} of {res['n_candidates']} candidate(s), most likely relative first",
               ["rank", "model id", "display name", "family", "type", *used, "combined", "config sim"],
               [[c["rank"], c["model_id"], c["display_name"], c["family"], c["model_type"],
                 *[_fmt(c["similarities"].get(m)) for m in used], _fmt(c["combined"]), _fmt(c["config_similarity"])]
                for c in res["candidates"]])
    else:
        print("no stored fingerprint shares a method config with the suspect")
    print(res["combined_note"])
    print(f"fingerprinting {t['fingerprint_s']:.2f} s, ranking {t['rank_s']:.3f} s, configs {t['config_s']:.3f} s")
    if res["registered"]:
        print(f"registered {s['model_id']!r} and stored {res['fingerprints_written']} fingerprint(s)")
    else:
        print("nothing written (pass --register --family F --type T to add it)")
    if args.html:
        print(f"page: {res['html']}")
    return 0


HANDLERS = {"lookup": cmd_lookup}

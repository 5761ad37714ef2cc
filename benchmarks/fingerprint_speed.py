"""Batched input_output vs one forward pass per probe, model-load vs fingerprint time, and the
cost of every other method per model.

    python -m benchmarks.fingerprint_speed [--profile full|tiny] [--device auto] [--repeat 3]

Uses the demo zoo (built or reused) plus the shipped stories260k checkpoint.
Prints a table per model and the overall speed-up; vectors must agree (max
|a-b| / max|b| <= 1e-5). A second table gives the best-of-``repeat`` seconds
of ``hidden_cka``, ``next_token``, ``weight_spectrum`` and ``weight`` (default
configurations) on each model, with their vector lengths.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks._util import table
from fingerprinting.loading import load_model
from fingerprinting.methods import make_method
from fingerprinting.methods.input_output import fingerprint_from_vu
from fingerprinting.settings import HELPER_DATA, apply_quiet_env

OTHER_METHODS = ("hidden_cka", "next_token", "weight_spectrum", "weight")


def straightforward(loaded, method) -> np.ndarray:
    """The reference as DESIGN.md states it: a tokenizer call per line, one float32 forward
    pass per probe, v_i and u_i accumulated per probe, then the same algebra."""
    tok, E = loaded.tokenizer, loaded.input_embeddings().detach().to("cpu", torch.float64).numpy()
    vocab = E.shape[0]

    def enc(line):
        return [i for i in tok.encode(line, add_special_tokens=False) if 0 <= i < vocab]

    probes = [ids for ids in (enc(x) for x in method.probe_lines) if ids]
    targets = [i for line in method.target_lines for i in enc(line)]
    V, U = [], []
    with torch.inference_mode():
        for x in probes:
            V.append(np.mean([E[t] + np.sin(k) for k, t in enumerate(x)], axis=0))
            logits = loaded.model(input_ids=torch.tensor([x], device=loaded.device)).logits[0, -1]
            p = torch.softmax(logits.to(torch.float64), -1).cpu().numpy()
            U.append(sum(p[t] * E[t] for t in targets))
    return fingerprint_from_vu(np.array(V), np.array(U), method.config["n0"])[0]


def forward_only(loaded, method, probes, batched: bool):
    with torch.inference_mode():
        if batched:
            return method.last_logits(loaded, probes)
        return [loaded.model(input_ids=torch.tensor([x], device=loaded.device)).logits[0, -1] for x in probes]


def best_of(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> None:
    apply_quiet_env()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["full", "tiny"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from fingerprinting.zoo import build_zoo

    manifest = build_zoo(args.profile, progress=False)
    models = [(m["display_name"], m["path"]) for m in manifest["models"] if m["family"] != "Stories"]
    models.append(("stories260k", str(HELPER_DATA / "models" / "stories260k")))
    method = make_method("input_output", {"n0": 40})
    others = {name: make_method(name) for name in OTHER_METHODS}
    cost_rows: list[dict] = []
    rows, tot_ref, tot_bat, tot_fref, tot_fbat = [], 0.0, 0.0, 0.0, 0.0
    for name, path in models:
        t0 = time.perf_counter()
        loaded = load_model(name, path, device=args.device)
        t_load = time.perf_counter() - t0
        t_ref, v_ref = best_of(lambda loaded=loaded: straightforward(loaded, method), args.repeat)
        t_bat, fp = best_of(lambda loaded=loaded: method.fingerprint(loaded), args.repeat)
        probes = method.prepare(loaded)[0]
        f_ref, _ = best_of(lambda loaded=loaded, p=probes: forward_only(loaded, method, p, False), args.repeat)
        f_bat, _ = best_of(lambda loaded=loaded, p=probes: forward_only(loaded, method, p, True), args.repeat)
        tot_fref += f_ref
        tot_fbat += f_bat
        diff = float(np.abs(fp.vector - v_ref).max() / np.abs(v_ref).max())
        tot_ref += t_ref
        tot_bat += t_bat
        rows.append({"model": name, "params": loaded.info["n_parameters"], "load_s": f"{t_load:.3f}",
                     "straightforward_s": f"{t_ref:.4f}", "ours_s": f"{t_bat:.4f}", "speedup": f"{t_ref / t_bat:.1f}x",
                     "fwd_speedup": f"{f_ref / f_bat:.1f}x", "fp_over_load": f"{t_bat / t_load:.2f}",
                     "max_rel_diff": f"{diff:.1e}", "ok": "yes" if diff <= 1e-5 else "NO"})
        cost = {"model": name, "input_output_s": f"{t_bat:.4f}"}
        for mname, m in others.items():
            t_m, fp_m = best_of(lambda loaded=loaded, m=m: m.fingerprint(loaded), args.repeat)
            cost[f"{mname}_s"] = f"{t_m:.4f}"
            cost[f"{mname}_dim"] = fp_m.dim
        cost_rows.append(cost)
    print(f"device: {loaded.device}, torch threads: {torch.get_num_threads()}, probes: {fp.provenance['n_probes']}, "
          f"best of {args.repeat}")
    print(table(rows, list(rows[0])))
    print(f"\nTOTAL straightforward {tot_ref:.3f} s, ours {tot_bat:.3f} s -> {tot_ref / tot_bat:.1f}x faster "
          f"(target >= 5x); forward passes alone: {tot_fref / tot_fbat:.1f}x; "
          f"all vectors agree: {all(r['ok'] == 'yes' for r in rows)}")
    print(f"\nCost per model of each method (default configurations, best of {args.repeat}):")
    print(table(cost_rows, list(cost_rows[0])))
    means = ", ".join(f"{c[:-2]} {np.mean([float(r[c]) for r in cost_rows]):.4f} s"
                      for c in cost_rows[0] if c.endswith("_s"))
    print(f"mean per model: {means}")


if __name__ == "__main__":
    main()

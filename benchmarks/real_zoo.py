"""Build time of the real zoo (SmolLM2-135M children; optionally the Qwen2.5-Coder parents).

    python -m benchmarks.real_zoo [--qwen] [--qwen-1.5b] [--zoo-dir DIR] [--force] [--json OUT]

Builds into a fresh temporary zoo folder (or ``--zoo-dir``; cached models there
are reused unless ``--force``), then prints the time of every model, the total
(wall clock and process CPU time), the reuse time of a second call, the torch thread count and the load average
(the machine may be shared: a load above the core count inflates the times).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

from benchmarks._util import table


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qwen", action="store_true")
    p.add_argument("--qwen-1.5b", dest="qwen_15b", action="store_true")
    p.add_argument("--zoo-dir", default=None, help="zoo folder (default: a new temporary folder)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    from fingerprinting.loading import set_threads_from_env
    from fingerprinting.settings import apply_quiet_env, get_settings
    from fingerprinting.zoo.real import build_real_zoo, size_on_disk

    apply_quiet_env()
    set_threads_from_env()
    settings = dataclasses.replace(get_settings(), zoo_dir=a.zoo_dir or tempfile.mkdtemp(prefix="fplake-realzoo-"))
    load0 = os.getloadavg()
    c0 = time.process_time()
    t0 = time.perf_counter()
    manifest = build_real_zoo(settings, qwen=a.qwen, qwen_15b=a.qwen_15b, force=a.force, progress=not a.no_progress)
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    load1 = os.getloadavg()
    t1 = time.perf_counter()
    build_real_zoo(settings, qwen=a.qwen, qwen_15b=a.qwen_15b, progress=False)
    reuse = time.perf_counter() - t1
    rows = []
    for m in manifest["models"]:
        st = manifest["stats"].get(m["model_id"], {})
        note = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in st.items()
                         if k not in ("types", "cpu_seconds"))
        rows.append({"model": m["model_id"], "type": m["model_type"], "seconds": f"{m['build_seconds']:.1f}",
                     "cpu s": st.get("cpu_seconds", ""), "MB": f"{size_on_disk(m) / 2**20:.0f}", "notes": note[:90]})
    print(table(rows, ["model", "type", "seconds", "cpu s", "MB", "notes"]))
    result = {"models": len(manifest["models"]), "total_s": round(total, 1), "cpu_s": round(cpu, 1),
              "reuse_s": round(reuse, 2),
              "torch_threads": manifest["torch_threads"], "cpus": os.cpu_count(),
              "loadavg_1m_start_end": [round(load0[0], 2), round(load1[0], 2)], "zoo_dir": settings.zoo_dir,
              "per_model_s": {m["model_id"]: m["build_seconds"] for m in manifest["models"]}}
    print(f"total {total:.1f} s for {len(manifest['models'])} models ({total / 60:.1f} min; process CPU time "
          f"{cpu:.0f} s over all threads); "
          f"second call (all cached) {reuse:.2f} s; {manifest['torch_threads']} torch threads on "
          f"{os.cpu_count()} CPUs; 1-min load average {load0[0]:.1f} at start, {load1[0]:.1f} at end")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()

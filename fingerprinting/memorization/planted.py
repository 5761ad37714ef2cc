"""A corpus where memorization really happens, with ground truth, and a tiny LM trained on it.

Real models rarely reproduce offline text exactly (see FACTS.md), so the
taxonomy needs a corpus with known duplicates. :func:`build_planted_corpus`
builds one deterministically from the standard library's docstrings (plus a
licence header where the machine has one):

* unique real text: docstring paragraphs, each once;
* planted sequences: other docstring paragraphs (disjoint from the unique
  text), each inserted a known number of times (1, 2, 5, 10, 50, 200) at
  seeded random paragraph boundaries;
* templated sequences: counting sequences (``item_12, item_13, ...``), hex
  runs (``0x10 0x11 ...``), lettered lists (``a) ... b) ...``), repeating
  character patterns (each once), and repeated boilerplate (code and licence
  headers, 20 copies each).

The manifest lists every planted / templated sequence with its text, kind
and planted count. :func:`train_planted_model` trains a small Llama-style
model on it with the demo zoo's helpers and saves a checkpoint that
:func:`fingerprinting.loading.load_model` can load.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PLANTED_COUNTS = (1, 2, 5, 10, 50, 200)
BOILERPLATE_COPIES = 20
PLANTED_VERSION = 1


@dataclass(frozen=True)
class PlantedProfile:
    name: str
    unique_chars: int  # size of the unique real text
    per_count: dict  # planted count -> number of sequences planted that often
    n_templates: int  # counting / hex / letter / repeating sequences (each once)
    n_boilerplate: int
    vocab: int
    model_kw: dict
    seq_len: int
    batch: int
    steps: int
    lr: float


PLANTED_PROFILES = {
    "full": PlantedProfile(
        "full", unique_chars=250_000,
        per_count={1: 6, 2: 6, 5: 6, 10: 6, 50: 2, 200: 1},
        n_templates=120, n_boilerplate=2, vocab=1024,
        model_kw=dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=256),
        seq_len=96, batch=16, steps=1000, lr=3e-3),
    "tiny": PlantedProfile(
        "tiny", unique_chars=12_000,
        per_count={1: 2, 2: 2, 5: 2, 10: 2, 50: 1, 200: 1},
        n_templates=20, n_boilerplate=1, vocab=512,
        model_kw=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=128),
        seq_len=64, batch=8, steps=120, lr=3e-3),
}

_NAMES = ["item", "row", "node", "step", "user", "file", "page", "test", "case", "part", "slot",
          "key", "col", "level", "track", "unit", "frame", "chunk", "block", "entry"]
_WORDS = ["alpha", "beta", "gamma", "delta", "red", "green", "blue", "north", "south", "east",
          "west", "open", "close", "read", "write", "start", "stop", "left", "right", "up"]


@dataclass
class PlantedCorpus:
    """The planted corpus text, its blocks, and the ground-truth manifest."""

    text: str
    manifest: list[dict]  # one record per planted / templated sequence
    unique_paragraphs: list[str]
    profile: str
    seed: int
    info: dict = field(default_factory=dict)
    # the corpus as its blocks, in order, and the manifest id of each (None for unique text)
    blocks: list[str] = field(default_factory=list)
    block_ids: list[str | None] = field(default_factory=list)

    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def _paragraphs(max_chars: int) -> list[str]:
    """Deduplicated docstring paragraphs of the standard library, in a fixed order."""
    from fingerprinting.zoo.corpus import build_corpus

    docs = build_corpus(max_chars=max_chars).docs
    seen: set[str] = set()
    out = []
    for para in docs.split("\n\n"):
        para = para.strip()
        # single-line paragraphs are mostly headings or signatures; keep real prose
        if len(para) < 80 or para in seen:
            continue
        seen.add(para)
        out.append(para)
    return out


def _boilerplate_sources() -> list[str]:
    """Real headers: a licence header (when the machine has one) and standard-library code."""
    out = []
    apache = Path("/usr/share/common-licenses/Apache-2.0")
    if apache.is_file():
        text = apache.read_text(errors="replace")
        idx = text.find("Licensed under the Apache License")
        if idx >= 0:
            out.append(" ".join(text[idx : idx + 600].split()))
    import string
    import textwrap

    for mod in (textwrap, string):
        src = inspect.getsource(mod)
        # blank lines separate corpus blocks, so squeeze them out of the header
        out.append(re.sub(r"\n\s*\n", "\n", src[:500].strip()))
    out.append(
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
        "software and associated documentation files (the \"Software\"), to deal in the Software "
        "without restriction, including without limitation the rights to use, copy, modify, "
        "merge, publish, distribute, sublicense, and/or sell copies of the Software."
    )
    return out


def _template(rng: np.random.Generator, k: int) -> tuple[str, str]:
    """Template number ``k``: counting, hex, lettered list or repeating pattern.

    Number ranges (counting, hex) and word pairs (letters) differ between
    templates by construction, so no two templates share a 32-token window.
    """
    kind = ("counting", "hex", "letters", "repeating")[k % 4]
    m = k // 4
    if kind == "counting":
        name, start = _NAMES[rng.integers(len(_NAMES))], 1000 * m + int(rng.integers(0, 400))
        sep = [", ", " ", "; "][int(rng.integers(3))]
        return kind, sep.join(f"{name}_{i}" for i in range(start, start + 40))
    if kind == "hex":
        start = 4096 * m + int(rng.integers(0, 3000))
        fmt = ["0x{:02x}", "0x{:04X}", "0x{:x}"][int(rng.integers(3))]
        return kind, " ".join(fmt.format(i) for i in range(start, start + 40))
    if kind == "letters":
        w1, w2 = _WORDS[m % len(_WORDS)], _WORDS[(m + m // len(_WORDS) + 1) % len(_WORDS)]
        return kind, " ".join(f"{chr(97 + i)}) {w1} {w2}" for i in range(26))
    unit_len = int(rng.integers(2, 7))
    unit = "".join(chr(c) for c in rng.integers(97, 123, size=unit_len)) + " "
    return kind, unit * (320 // len(unit))


def build_planted_corpus(seed: int = 0, profile: str = "full") -> PlantedCorpus:
    """Build the planted corpus (deterministic for a given seed, profile and machine).

    Returns the text (blocks joined by blank lines) and the manifest: for each
    planted or templated sequence ``{"id", "kind", "text", "planted_count"}``
    with kind "planted", "counting", "hex", "letters", "repeating" or
    "boilerplate". Planted texts are checked not to occur inside the unique
    text or each other (a 120-character core of each must be new).
    """
    prof = PLANTED_PROFILES[profile]
    rng = np.random.default_rng(seed)
    paras = _paragraphs(600_000)
    order = rng.permutation(len(paras))
    paras = [paras[i] for i in order]
    unique: list[str] = []
    size = 0
    pool_start = 0
    for i, p in enumerate(paras):
        if size >= prof.unique_chars:
            pool_start = i
            break
        unique.append(p)
        size += len(p) + 2
    unique_text = "\n\n".join(unique)

    manifest: list[dict] = []
    chosen_cores: list[str] = []
    pool = paras[pool_start:]
    j = 0
    for count in PLANTED_COUNTS:
        for _ in range(prof.per_count.get(count, 0)):
            # glue pool paragraphs until ~400+ characters (>= 64 tokens for small vocabularies)
            while True:
                parts = []
                while sum(len(x) for x in parts) < 420 and j < len(pool):
                    parts.append(pool[j])
                    j += 1
                if j >= len(pool):
                    raise RuntimeError("planted corpus: ran out of docstring paragraphs")
                text = " ".join(" ".join(parts).split())
                core = text[100:220]
                if core not in unique_text and all(core not in c for c in chosen_cores):
                    break
            chosen_cores.append(text)
            manifest.append({"kind": "planted", "text": text, "planted_count": count})
    for k in range(prof.n_templates):
        kind, text = _template(rng, k)
        manifest.append({"kind": kind, "text": text, "planted_count": 1})
    for text in _boilerplate_sources()[: max(prof.n_boilerplate, 0) * 2]:
        manifest.append({"kind": "boilerplate", "text": text, "planted_count": BOILERPLATE_COPIES})
    for i, rec in enumerate(manifest):
        rec["id"] = f"{rec['kind']}-{i:03d}"

    # blocks: unique paragraphs in order, copies inserted at seeded random boundaries
    copies = [i for i, rec in enumerate(manifest) for _ in range(rec["planted_count"])]
    slots = np.sort(rng.integers(0, len(unique) + 1, size=len(copies)), kind="stable")
    copies = [copies[i] for i in rng.permutation(len(copies))]
    blocks: list[str] = []
    block_ids: list[str | None] = []
    c = 0
    for pos in range(len(unique) + 1):
        while c < len(copies) and slots[c] == pos:
            blocks.append(manifest[copies[c]]["text"])
            block_ids.append(manifest[copies[c]]["id"])
            c += 1
        if pos < len(unique):
            blocks.append(unique[pos])
            block_ids.append(None)
    text = "\n\n".join(blocks)
    info = {"n_blocks": len(blocks), "unique_paragraphs": len(unique), "chars": len(text),
            "planted_copies": len(copies)}
    return PlantedCorpus(text, manifest, unique, profile, seed, info, blocks, block_ids)


# ----------------------------------------------------------------- model
def _planted_windows(tokenizer, corpus: PlantedCorpus, n_unique: int, seed: int,
                     sample_len: int = 64):
    """Evaluation samples: the first 64 tokens of each sequence plus random unique windows."""
    rows, meta = [], []
    for rec in corpus.manifest:
        ids = tokenizer(rec["text"], add_special_tokens=False)["input_ids"]
        if len(ids) >= sample_len:
            rows.append(ids[:sample_len])
            meta.append({"id": rec["id"], "kind": rec["kind"], "planted_count": rec["planted_count"]})
    rng = np.random.default_rng(seed + 7)
    unique_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in corpus.unique_paragraphs]
    long_ones = [u for u in unique_ids if len(u) >= sample_len]
    for k in rng.permutation(len(long_ones))[:n_unique]:
        u = long_ones[int(k)]
        off = int(rng.integers(0, len(u) - sample_len + 1))
        rows.append(u[off : off + sample_len])
        meta.append({"id": f"unique-{int(k)}", "kind": "unique", "planted_count": 1})
    return np.asarray(rows, dtype=np.int64), meta


def evaluate_planted(model_dir: str | Path, n_unique: int = 100, batch_size: int = 64) -> dict:
    """Score the planted model on its ground truth; memorized share per kind and planted count.

    Returns ``{"by_kind": {kind: share}, "by_count": {count: share}, "samples": [...]}``
    where each sample record has id, kind, planted_count, duplicates (counted
    in the corpus), score, memorized and category.
    """
    from fingerprinting.loading import load_model
    from fingerprinting.memorization.features import count_duplicates, is_templating
    from fingerprinting.memorization.scoring import score_samples
    from fingerprinting.memorization.taxonomy import categorize

    model_dir = Path(model_dir)
    info = json.loads((model_dir / "planted_manifest.json").read_text())
    corpus = build_planted_corpus(info["seed"], info["profile"])
    lm = load_model("planted", str(model_dir), device="cpu")
    X, meta = _planted_windows(lm.tokenizer, corpus, n_unique, info["seed"])
    res = score_samples(lm, None, X, batch_size=batch_size)
    corpus_ids = np.asarray(lm.tokenizer(corpus.text, add_special_tokens=False)["input_ids"])
    dups = count_duplicates(corpus_ids, X[:, 32:64])
    texts = [lm.tokenizer.decode(r.tolist()) for r in X]
    templ = np.array([is_templating(t) for t in texts])
    cats = categorize(res.memorized, dups, templ)
    samples = []
    for i, m in enumerate(meta):
        samples.append(dict(m, duplicates=int(dups[i]), score=float(res.score[i]),
                            memorized=bool(res.memorized[i]), category=str(cats[i])))

    def share(key):
        groups: dict = {}
        for s in samples:
            groups.setdefault(s[key], []).append(s["memorized"])
        return {k: round(float(np.mean(v)), 3) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}

    planted_only = [s for s in samples if s["kind"] == "planted"]
    by_count: dict = {}
    for s in planted_only:
        by_count.setdefault(s["planted_count"], []).append(s["memorized"])
    categories: dict = {}
    for s in samples:
        categories[s["category"]] = categories.get(s["category"], 0) + 1
    return {"by_kind": share("kind"),
            "by_count": {k: round(float(np.mean(v)), 3) for k, v in sorted(by_count.items())},
            "categories": categories, "samples": samples}


def train_planted_model(
    out_dir: str | Path,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    tiny: bool = False,
    threads: int | None = 1,
) -> dict:
    """Train a small Llama-style LM on the planted corpus; save it to ``out_dir``.

    Uses the demo zoo's ``train_tokenizer``, ``make_config`` and ``train_lm``
    (AdamW, random windows, gradient clipping): ``steps`` at the profile's
    rate, then a fifth as many at a fifth of it (a short cool-down that
    settles the memorized continuations). Writes ``model.safetensors``,
    ``config.json``, the tokenizer and ``planted_manifest.json`` (profile,
    seed, corpus hash, the ground-truth manifest, training figures).
    Deterministic: the same seed gives identical weights on the same machine
    and thread count (``threads``, default 1, pins torch's intra-op threads
    while training and is restored afterwards: one thread is deterministic
    and, for a model this small, as fast as two on a shared machine).
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from fingerprinting.zoo.build import Profile, make_config, train_lm, train_tokenizer

    hf_logging.set_verbosity_error()
    prof = PLANTED_PROFILES["tiny" if tiny else "full"]
    steps = prof.steps if steps is None else int(steps)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    corpus = build_planted_corpus(seed, prof.name)
    tokenizer = train_tokenizer(corpus.text, prof.vocab, seed_text="planted")
    ids = np.asarray(tokenizer(corpus.text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(make_config("llama", prof.vocab, prof.model_kw, 1.0))
        zp = Profile(prof.name, seq_len=prof.seq_len, batch=prof.batch, pretrain_steps=steps,
                     finetune_steps=0, distill_steps=0, scale=1.0)
        if progress:
            print(f"planted[{prof.name}]: {len(ids)} tokens, {model.num_parameters()} parameters, "
                  f"{steps} + {steps // 5} steps", flush=True)
        loss1 = train_lm(model, ids, steps, zp, seed, lr=prof.lr)
        loss2 = train_lm(model, ids, steps // 5, zp, seed + 1, lr=prof.lr / 5)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    record = {
        "version": PLANTED_VERSION, "profile": prof.name, "seed": seed, "steps": steps,
        "corpus_sha256": corpus.sha256(), "corpus_tokens": int(len(ids)),
        "n_parameters": int(model.num_parameters()), "final_loss": [loss1, loss2],
        "torch_threads": used_threads, "train_seconds": round(time.perf_counter() - t0, 2),
        "corpus_info": corpus.info, "manifest": corpus.manifest,
    }
    (tmp / "planted_manifest.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    if progress:
        print(f"planted[{prof.name}]: loss {loss1:.3f} -> {loss2:.3f} in "
              f"{record['train_seconds']} s, saved to {out_dir}", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m fingerprinting.memorization.planted OUT_DIR [--tiny] [--steps N]``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evaluate", action="store_true", help="score the ground truth afterwards")
    args = ap.parse_args(argv)
    train_planted_model(args.out_dir, seed=args.seed, steps=args.steps, tiny=args.tiny)
    if args.evaluate:
        ev = evaluate_planted(args.out_dir)
        print(json.dumps({k: v for k, v in ev.items() if k != "samples"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

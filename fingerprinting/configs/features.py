"""Architecture features from ``config.json`` (and GGUF metadata, and the Hub lineage sample).

:func:`extract_features` turns any config dict into one flat row of
:data:`FEATURES`, resolving the many spellings architectures use for the same
quantity (``n_embd`` / ``d_model`` / ``hidden_size`` ...), reading the nested
text model of multimodal configs, both RoPE layouts (top-level ``rope_theta`` +
``rope_scaling`` from older transformers, ``rope_parameters`` from
transformers 5) and quantization / MoE keys. Every value that fails validation
becomes ``None`` and a :class:`ValidationIssue`; nothing suspicious is kept
silently.

Sources: :func:`read_config_source` (folder, JSONL, Parquet),
:func:`catalogue_configs` (every default config transformers ships, offline),
:func:`gguf_metadata_to_config` and :func:`load_hf_lineage` (the real Hub
lineage sample under ``helper_data/hf_lineage``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FEATURES: list[str] = [
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "num_key_value_heads",
    "torch_dtype",
    "rope_theta",
    "rope_scaling_type",
    "uses_moe",
    "uses_gqa",
    "uses_rope",
    "uses_quantization",
    "head_dim",
    "approx_params",
    "num_experts",
]

FEATURE_KINDS: dict[str, str] = {
    "model_type": "categorical",
    "hidden_size": "numeric",
    "num_hidden_layers": "numeric",
    "num_attention_heads": "numeric",
    "intermediate_size": "numeric",
    "vocab_size": "numeric",
    "max_position_embeddings": "numeric",
    "num_key_value_heads": "numeric",
    "torch_dtype": "categorical",
    "rope_theta": "numeric",
    "rope_scaling_type": "categorical",
    "uses_moe": "boolean",
    "uses_gqa": "boolean",
    "uses_rope": "boolean",
    "uses_quantization": "boolean",
    "head_dim": "numeric",
    "approx_params": "numeric",
    "num_experts": "numeric",
}

# Extra keys extract_features may add beside FEATURES (not used by Gower).
EXTRA_KEYS = ["quant_method", "rope_note", "text_model_type", "notes"]

# Aliases in priority order. The first key present (value not None) wins.
_ALIASES: dict[str, list[str]] = {
    "hidden_size": ["hidden_size", "n_embd", "d_model", "dim", "model_dim", "hidden_dim"],
    "num_hidden_layers": [
        "num_hidden_layers",
        "n_layer",
        "num_layers",
        "n_layers",
        "encoder_layers",
    ],
    "num_attention_heads": [
        "num_attention_heads",
        "n_head",
        "num_heads",
        "n_heads",
        "encoder_attention_heads",
    ],
    "intermediate_size": [
        "intermediate_size",
        "n_inner",
        "ffn_dim",
        "d_ff",
        "ffn_hidden_size",
        "encoder_ffn_dim",
        "ffn_config.ffn_hidden_size",
    ],
    "vocab_size": ["vocab_size", "n_vocab", "padded_vocab_size"],
    "max_position_embeddings": [
        "max_position_embeddings",
        "n_positions",
        "max_seq_len",
        "seq_length",
        "max_sequence_length",
        "n_ctx",
    ],
    "num_key_value_heads": [
        "num_key_value_heads",
        "n_kv_heads",
        "num_kv_heads",
        "n_head_kv",
        "multi_query_group_num",
        "attn_config.kv_n_heads",
    ],
    "head_dim": ["head_dim", "d_kv", "kv_channels"],
    "num_experts": [
        "num_local_experts",
        "num_experts",
        "n_routed_experts",
        "moe_num_experts",
        "ffn_config.moe_num_experts",
        "expert_count",
    ],
    "moe_intermediate_size": ["moe_intermediate_size", "expert_intermediate_size"],
    "num_decoder_layers": ["num_decoder_layers", "decoder_layers"],
    "num_parameters": ["num_parameters", "num_params", "n_params"],
}

# Where the text model of a multimodal config lives, in preference order.
_TEXT_KEYS = ["text_config", "llm_config", "language_config"]

# Model types whose attention uses rotary embeddings (prefix match). Used when the
# config does not spell out any RoPE parameter, as older ones often do not.
_ROPE_TYPE_PREFIXES = (
    "llama", "mistral", "mixtral", "qwen", "gemma", "phi", "gpt_neox", "gptj", "falcon",
    "deepseek", "internlm", "baichuan", "yi", "stablelm", "olmo", "cohere", "starcoder2",
    "chatglm", "glm", "exaone", "granite", "nemotron", "persimmon", "codegen", "jamba",
    "dbrx", "minicpm", "hunyuan", "ernie4_5", "smollm3", "arcee", "apertus", "seed_oss",
)  # fmt: skip

_DTYPE_ALIASES = {
    "f16": "float16", "fp16": "float16", "half": "float16", "float16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "f32": "float32", "fp32": "float32", "float": "float32", "float32": "float32",
    "f64": "float64", "float64": "float64",
    "f8_e4m3": "float8_e4m3fn", "float8_e4m3fn": "float8_e4m3fn", "fp8": "float8_e4m3fn",
    "f8_e5m2": "float8_e5m2", "float8_e5m2": "float8_e5m2",
    "i8": "int8", "int8": "int8", "u8": "uint8", "uint8": "uint8",
}  # fmt: skip

# Fields that hold integer sizes (must be > 0) vs. real numbers.
_INT_FIELDS = {
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "vocab_size", "max_position_embeddings", "num_key_value_heads", "head_dim",
    "num_experts", "moe_intermediate_size", "num_decoder_layers",
}  # fmt: skip


@dataclass
class ValidationIssue:
    """One field of one config that failed validation (its feature is set to None).

    ``level`` is ``"error"`` (value dropped) or ``"warning"`` (value kept, e.g. a
    hidden size not divisible by the head count).
    """

    model_id: str
    field: str
    raw_value: str
    message: str
    level: str = "error"


def _raw(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:200]


def _lookup(sources: list[dict], key: str) -> tuple[bool, Any]:
    """First (found, value) for a possibly dotted key over the sources."""
    for src in sources:
        node: Any = src
        ok = True
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                ok = False
                break
        if ok and node is not None:
            return True, node
    return False, None


def _alias(sources: list[dict], name: str) -> tuple[str | None, Any]:
    for key in _ALIASES[name]:
        found, value = _lookup(sources, key)
        if found:
            return key, value
    return None, None


def _number(value: Any, field: str, model_id: str, issues: list[ValidationIssue]) -> Any:
    """Validate a numeric value; None (with an issue) when it is not a usable number."""
    # bool is an int subclass in Python: True would otherwise read as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = (
            "a list (per-layer or per-stage values), not one number"
            if isinstance(value, list)
            else "not a number"
        )
        issues.append(ValidationIssue(model_id, field, _raw(value), what))
        return None
    if isinstance(value, float) and not math.isfinite(value):
        issues.append(ValidationIssue(model_id, field, _raw(value), "not a finite number"))
        return None
    if value <= 0:
        issues.append(ValidationIssue(model_id, field, _raw(value), "must be positive"))
        return None
    if field in _INT_FIELDS:
        if isinstance(value, float):
            if not value.is_integer():
                issues.append(ValidationIssue(model_id, field, _raw(value), "not an integer"))
                return None
            value = int(value)
    return value


def normalise_dtype(value: Any) -> str | None:
    """``"torch.bfloat16"`` / ``"BF16"`` / ``"bf16"`` -> ``"bfloat16"``; unknown spellings lower-cased."""
    if value is None:
        return None
    text = str(value).strip()
    if text.startswith("torch."):
        text = text[len("torch.") :]
    text = text.lower()
    return _DTYPE_ALIASES.get(text, text) or None


def _text_part(config: dict) -> tuple[dict, str | None]:
    for key in _TEXT_KEYS:
        sub = config.get(key)
        if isinstance(sub, dict) and sub:
            return sub, key
    return config, None


def _rope(
    sources: list[dict], model_id: str, issues: list[ValidationIssue], out: dict
) -> tuple[bool, Any, str | None]:
    """(rope evidence present, raw theta, scaling type) from either RoPE layout."""
    evidence = False
    theta_raw: Any = None
    scaling: str | None = None
    found, params = _lookup(sources, "rope_parameters")
    if found and isinstance(params, dict) and params:
        evidence = True
        if "rope_theta" in params or "rope_type" in params or "type" in params:
            chosen = params
        else:
            # One dict per attention kind (Gemma 3: sliding_attention / full_attention).
            kinds = sorted(k for k, v in params.items() if isinstance(v, dict))
            pick = "full_attention" if "full_attention" in kinds else (kinds[0] if kinds else None)
            chosen = params.get(pick, {}) if pick else {}
            if pick:
                out["rope_note"] = (
                    f"rope_parameters per attention kind ({', '.join(kinds)}); recorded {pick}"
                )
        theta_raw = chosen.get("rope_theta")
        scaling = chosen.get("rope_type") or chosen.get("type")
    found_t, theta_top = _lookup(sources, "rope_theta")
    if theta_raw is None and found_t:
        evidence, theta_raw = True, theta_top
    found_s, rs = _lookup(sources, "rope_scaling")
    if found_s:
        evidence = True
        if isinstance(rs, dict):
            scaling = scaling if scaling not in (None, "default") else None
            scaling = scaling or rs.get("rope_type") or rs.get("type")
        else:
            issues.append(ValidationIssue(model_id, "rope_scaling_type", _raw(rs), "not a dict"))
    for key in ("rotary_dim", "rotary_pct", "rotary_emb_base", "rotary_embedding_base"):
        if _lookup(sources, key)[0]:
            evidence = True
            if theta_raw is None and key in ("rotary_emb_base", "rotary_embedding_base"):
                theta_raw = _lookup(sources, key)[1]
    if _lookup(sources, "position_embedding_type")[1] == "rotary":
        evidence = True
    if scaling is not None and not isinstance(scaling, str):
        issues.append(ValidationIssue(model_id, "rope_scaling_type", _raw(scaling), "not a string"))
        scaling = None
    return evidence, theta_raw, scaling


def _known_keys() -> set[str]:
    keys = {"model_type", "torch_dtype", "dtype", "quantization_config", "rope_theta"}
    keys |= {"rope_scaling", "rope_parameters"} | set(_TEXT_KEYS)
    for names in _ALIASES.values():
        keys |= {k.split(".")[0] for k in names}
    return keys


_KNOWN_KEYS = _known_keys()


def extract_features(config: dict, model_id: str = "") -> tuple[dict, list[ValidationIssue]]:
    """One flat feature row (all of :data:`FEATURES`, plus extras) and its validation issues.

    Nested text models (``text_config`` / ``llm_config`` / ``language_config``)
    are preferred for sizes; ``model_type`` stays the top-level type (it names
    the whole model, e.g. ``llava``), and the nested one goes to
    ``text_model_type``. ``torch_dtype`` and ``quantization_config`` are read
    from the nested part first, then the top level.

    Booleans default to False and ``num_experts`` to 0 only when the config is
    structural (it has a hidden size or layer count); for partial configs, such
    as lineage rows, unknown stays None.

    ``approx_params`` is a documented rough estimate (see :func:`approx_param_count`)
    unless the config states a parameter count (``num_parameters``), which wins.
    """
    out: dict[str, Any] = {f: None for f in FEATURES}
    out.update({k: None for k in EXTRA_KEYS})
    issues: list[ValidationIssue] = []
    if not isinstance(config, dict):
        issues.append(ValidationIssue(model_id, "*", _raw(config), "config is not a JSON object"))
        return out, issues
    text, text_key = _text_part(config)
    sources = [text, config] if text is not config else [config]
    if not any(k in _KNOWN_KEYS for src in sources for k in src):
        issues.append(ValidationIssue(model_id, "*", _raw(config), "no known config field"))
        return out, issues
    notes: list[str] = []

    model_type = config.get("model_type") or (text.get("model_type") if text_key else None)
    if model_type is not None and not isinstance(model_type, str):
        issues.append(ValidationIssue(model_id, "model_type", _raw(model_type), "not a string"))
        model_type = None
    out["model_type"] = model_type.strip().lower() if model_type else None
    if text_key and isinstance(text.get("model_type"), str) and text["model_type"]:
        out["text_model_type"] = text["model_type"].lower()

    numbers: dict[str, Any] = {}
    for name in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "vocab_size", "max_position_embeddings", "num_key_value_heads", "head_dim",
        "num_experts", "moe_intermediate_size", "num_decoder_layers", "num_parameters",
    ):  # fmt: skip
        key, value = _alias(sources, name)
        numbers[name] = None if key is None else _number(value, name, model_id, issues)

    hidden, heads = numbers["hidden_size"], numbers["num_attention_heads"]
    # GPT-2 family: n_inner=None means 4 * n_embd (documented default).
    if numbers["intermediate_size"] is None and "n_inner" in text and text["n_inner"] is None:
        if hidden is not None:
            numbers["intermediate_size"] = 4 * hidden
            notes.append("intermediate_size = 4 * hidden_size (n_inner is null)")
    # MPT: the MLP width is expansion_ratio * d_model.
    ratio = text.get("expansion_ratio")
    if numbers["intermediate_size"] is None and hidden is not None and ratio is not None:
        ratio_v = _number(ratio, "intermediate_size", model_id, issues)
        if ratio_v is not None:
            numbers["intermediate_size"] = int(round(ratio_v * hidden))
    if heads is not None and hidden is not None and heads > hidden:
        issues.append(
            ValidationIssue(
                model_id,
                "num_attention_heads",
                _raw(heads),
                f"more heads than hidden_size {hidden}",
            )
        )
        heads = numbers["num_attention_heads"] = None
    # Falcon-7B style multi-query attention: one shared kv head.
    if (
        str(out["model_type"]).startswith("falcon")
        and text.get("multi_query") is True
        and not text.get("new_decoder_architecture")
    ):
        numbers["num_key_value_heads"] = 1
    kv = numbers["num_key_value_heads"]
    if kv is not None and heads is not None and kv > heads:
        issues.append(
            ValidationIssue(
                model_id, "num_key_value_heads", _raw(kv), f"more kv heads than heads ({heads})"
            )
        )
        kv = numbers["num_key_value_heads"] = None
    elif kv is None and heads is not None and numbers["hidden_size"] is not None:
        # No kv-head field on a structural config means plain multi-head attention.
        kv = numbers["num_key_value_heads"] = heads
        notes.append("num_key_value_heads = num_attention_heads (not given)")
    if hidden is not None and heads is not None and hidden % heads != 0:
        issues.append(
            ValidationIssue(
                model_id,
                "hidden_size",
                _raw(hidden),
                f"not divisible by num_attention_heads {heads}",
                level="warning",
            )
        )
    head_dim = numbers["head_dim"]
    if head_dim is None and hidden is not None and heads is not None:
        head_dim = hidden // heads if hidden % heads == 0 else hidden / heads

    structural = hidden is not None or numbers["num_hidden_layers"] is not None

    # Precision and quantization.
    found, dtype = _lookup(sources, "torch_dtype")
    if not found:
        found, dtype = _lookup(sources, "dtype")
    if found:
        if isinstance(dtype, str):
            out["torch_dtype"] = normalise_dtype(dtype)
        else:
            issues.append(ValidationIssue(model_id, "torch_dtype", _raw(dtype), "not a string"))
    found, qc = _lookup(sources, "quantization_config")
    if found:
        if isinstance(qc, dict):
            out["uses_quantization"] = True
            method = qc.get("quant_method")
            if method is None and (qc.get("load_in_4bit") or qc.get("load_in_8bit")):
                method = "bitsandbytes"
            out["quant_method"] = str(method).lower() if method is not None else None
        else:
            issues.append(ValidationIssue(model_id, "uses_quantization", _raw(qc), "not a dict"))
    elif structural:
        out["uses_quantization"] = False

    # RoPE.
    evidence, theta_raw, scaling = _rope(sources, model_id, issues, out)
    if theta_raw is not None:
        out["rope_theta"] = _number(theta_raw, "rope_theta", model_id, issues)
    mt = out["text_model_type"] or out["model_type"] or ""
    if evidence or mt.startswith(_ROPE_TYPE_PREFIXES):
        out["uses_rope"] = True
        # transformers 5 writes rope_type "default"; older configs write rope_scaling null.
        out["rope_scaling_type"] = str(scaling).lower() if scaling else "default"
    elif structural:
        out["uses_rope"] = False

    # Mixture of experts.
    experts = numbers["num_experts"]
    if experts is not None:
        out["uses_moe"] = experts > 1
    elif structural:
        out["uses_moe"] = False
        experts = 0

    for name in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "vocab_size", "max_position_embeddings", "num_key_value_heads",
    ):  # fmt: skip
        out[name] = numbers[name]
    out["head_dim"] = head_dim
    out["num_experts"] = experts
    if kv is not None and heads is not None:
        out["uses_gqa"] = kv < heads
    if numbers["num_parameters"] is not None:
        out["approx_params"] = numbers["num_parameters"]
    else:
        out["approx_params"] = approx_param_count(
            out,
            moe_intermediate_size=numbers["moe_intermediate_size"],
            num_decoder_layers=numbers["num_decoder_layers"]
            if (text.get("is_encoder_decoder") or config.get("is_encoder_decoder"))
            else None,
            gated=_is_gated(text, mt),
            tied=text.get("tie_word_embeddings", config.get("tie_word_embeddings")),
        )
    out["notes"] = "; ".join(notes) if notes else None
    return out, issues


def _is_gated(text: dict, model_type: str) -> bool:
    act = str(text.get("hidden_act") or text.get("hidden_activation") or "").lower()
    proj = str(text.get("feed_forward_proj") or "")
    return (
        act in {"silu", "swish", "swiglu"}
        or model_type.startswith("gemma")
        or proj.startswith("gated")
    )


def approx_param_count(
    feats: dict,
    *,
    moe_intermediate_size: int | None = None,
    num_decoder_layers: int | None = None,
    gated: bool = False,
    tied: bool | None = True,
) -> int | None:
    """Rough parameter count: embeddings + layers * (attention + MLP [* experts]).

    * embeddings: ``vocab * hidden`` (twice when ``tie_word_embeddings`` is False);
    * attention per layer: q and o (``hidden * heads * head_dim`` each) plus k and v
      (``hidden * kv_heads * head_dim`` each);
    * MLP per layer: ``2 * hidden * intermediate`` (``3 *`` for gated SiLU/GeGLU
      MLPs), times the number of experts for MoE models (using the per-expert
      width where given);
    * encoder-decoder models: decoder layers add a cross-attention block.

    Biases, norms, position tables, shared experts and dense-first layers are
    ignored, so read it as an order of magnitude (Llama-2-7B gives 6.74e9).
    None when a needed size is unknown.
    """
    h, n_layers, vocab = (
        feats.get("hidden_size"),
        feats.get("num_hidden_layers"),
        feats.get("vocab_size"),
    )
    heads, inter = feats.get("num_attention_heads"), feats.get("intermediate_size")
    if None in (h, n_layers, vocab, heads, inter):
        return None
    head_dim = feats.get("head_dim") or h / heads
    kv = feats.get("num_key_value_heads") or heads
    attn = 2 * h * heads * head_dim + 2 * h * kv * head_dim
    experts = feats.get("num_experts") or 0
    width = moe_intermediate_size if (experts > 1 and moe_intermediate_size) else inter
    mlp = (3 if gated else 2) * h * width * (experts if experts > 1 else 1)
    emb = vocab * h * (2 if tied is False else 1)
    total = emb + n_layers * (attn + mlp)
    if num_decoder_layers:
        total += num_decoder_layers * (2 * attn + mlp)
    return int(total)


def config_hash(config: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, compact), first 16 hex digits."""
    text = json.dumps(
        config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- GGUF

# llama.cpp's LLAMA_FTYPE enum (general.file_type): float types map to a dtype,
# the rest are quantization schemes.
GGUF_FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip

_GGUF_KEYS = {
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "feed_forward_length": "intermediate_size",
    "context_length": "max_position_embeddings",
    "rope.freq_base": "rope_theta",
    "expert_count": "num_local_experts",
    "vocab_size": "vocab_size",
}


def gguf_metadata_to_config(meta: dict) -> dict:
    """Map GGUF metadata (``general.architecture``, ``{arch}.block_count`` ...) to config keys.

    ``general.file_type`` F32/F16/BF16 becomes ``torch_dtype``; a quantized file
    type becomes ``quantization_config = {"quant_method": "gguf", "gguf_file_type": ...}``.
    The vocabulary size is the length of ``tokenizer.ggml.tokens`` when no
    ``{arch}.vocab_size`` is given. Values that are per-layer lists (some
    architectures store head counts per layer) are reduced to their maximum.
    """
    arch = meta.get("general.architecture")
    cfg: dict[str, Any] = {}
    if isinstance(arch, str) and arch:
        cfg["model_type"] = arch
        for suffix, key in _GGUF_KEYS.items():
            value = meta.get(f"{arch}.{suffix}")
            if isinstance(value, list | tuple) and value and not isinstance(value[0], list):
                value = max(value)
            if value is not None:
                cfg[key] = value
    tokens = meta.get("tokenizer.ggml.tokens")
    if "vocab_size" not in cfg and isinstance(tokens, list | tuple):
        cfg["vocab_size"] = len(tokens)
    ftype = meta.get("general.file_type")
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        name = GGUF_FILE_TYPES.get(ftype, f"ftype_{ftype}")
        if name in ("F32", "F16", "BF16"):
            cfg["torch_dtype"] = normalise_dtype(name)
        else:
            cfg["quantization_config"] = {"quant_method": "gguf", "gguf_file_type": name}
    return cfg


# --------------------------------------------------------------------------- sources


def catalogue_configs() -> Iterator[tuple[str, dict | None, str | None]]:
    """(model_type, default config dict, None) or (model_type, None, error) for every
    model type in transformers' ``CONFIG_MAPPING``.

    Offline (configs are built from their class defaults, nothing is downloaded).
    About 3 s for the ~820 types of transformers 5 on this machine; two of them
    fail to build from defaults and come back as errors.
    """
    from transformers import CONFIG_MAPPING
    from transformers.utils import logging as hf_logging

    # Default configs trip many harmless "token id outside vocabulary" warnings.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        for model_type in sorted(CONFIG_MAPPING.keys()):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cfg = CONFIG_MAPPING[model_type]().to_dict()
            except Exception as exc:  # one broken default must not stop the rest
                yield model_type, None, f"{type(exc).__name__}: {str(exc)[:300]}"
                continue
            yield model_type, cfg, None
    finally:
        hf_logging.set_verbosity(level)


def _config_from_value(value: Any) -> tuple[dict | None, str | None]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None, "config is not JSON"
    if value is None:
        return None, "no config"
    if not isinstance(value, dict):
        return None, "config is not a JSON object"
    return value, None


def read_config_source(path: str | Path) -> Iterator[tuple[str | None, dict | None, str | None]]:
    """(model_id, config, error) from a folder, JSONL, Parquet or single JSON file.

    * folder: every ``config.json`` below it; model id = its folder relative to
      the root (the root's own name for a top-level ``config.json``);
    * ``.jsonl``: one object per line with ``model_id`` and ``config`` (an object
      or a JSON string); errors name the 1-based line (``"line 7: not JSON"``);
    * ``.parquet``: columns ``model_id`` and ``config`` (JSON string);
    * ``.json``: one config, model id = ``_name_or_path`` or the file stem.

    Errors are yielded, never raised, so the rest still lands.
    """
    path = Path(path)
    if path.is_dir():
        for cfg_path in sorted(path.rglob("config.json")):
            rel = cfg_path.parent.relative_to(path).as_posix()
            model_id = path.name if rel == "." else rel
            yield (model_id, *_read_json_file(cfg_path))
        return
    if not path.exists():
        yield None, None, f"{path}: no such file or folder"
        return
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path)
    elif suffix in (".parquet", ".pq"):
        yield from _read_parquet(path)
    elif suffix == ".json":
        cfg, err = _read_json_file(path)
        model_id = cfg.get("_name_or_path") if cfg else None
        yield (model_id or path.stem), cfg, err
    else:
        yield None, None, f"{path.name}: unknown source type (folder, .jsonl, .parquet, .json)"


def _read_json_file(path: Path) -> tuple[dict | None, str | None]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name}: not JSON ({type(exc).__name__})"
    if not isinstance(value, dict):
        return None, f"{path.name}: not a JSON object"
    return value, None


def _read_jsonl(path: Path) -> Iterator[tuple[str | None, dict | None, str | None]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield None, None, f"line {lineno}: not JSON"
                continue
            if not isinstance(obj, dict):
                yield None, None, f"line {lineno}: not a JSON object"
                continue
            model_id = obj.get("model_id")
            if not isinstance(model_id, str) or not model_id:
                yield None, None, f"line {lineno}: no model_id"
                continue
            cfg, err = _config_from_value(obj.get("config"))
            yield model_id, cfg, (f"line {lineno}: {err}" if err else None)


def _read_parquet(path: Path) -> Iterator[tuple[str | None, dict | None, str | None]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield None, None, f"{path.name}: not Parquet ({type(exc).__name__})"
        return
    names = set(pf.schema_arrow.names)
    missing = [c for c in ("model_id", "config") if c not in names]
    if missing:
        yield None, None, f"{path.name}: no column {', '.join(missing)}"
        return
    row = 0
    for batch in pf.iter_batches(columns=["model_id", "config"], batch_size=4096):
        for model_id, raw in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
        ):
            row += 1
            if not isinstance(model_id, str) or not model_id:
                yield None, None, f"row {row}: no model_id"
                continue
            cfg, err = _config_from_value(raw)
            yield model_id, cfg, (f"row {row}: {err}" if err else None)


# --------------------------------------------------------------------------- Hub lineage


def _default_lineage_folder() -> Path:
    from fingerprinting.settings import HELPER_DATA

    return HELPER_DATA / "hf_lineage"


def _none_if_blank(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def load_hf_lineage(folder: str | Path | None = None) -> tuple[list[dict], list[dict]]:
    """Model rows and edge rows of the real Hub lineage sample (``helper_data/hf_lineage``).

    Model rows: model_id, family (root of its tree), depth, model_type,
    architectures, n_params, dtype, quant_method, license, n_languages (the crawl
    kept only the count of languages), pipeline_tag, library_name, created_at,
    crawl_root_file. Edge rows: parent_id, child_id, relation.

    The family is found by walking parent edges up to a depth-0 model (first
    parent in sorted order where a model has several); models whose walk ends
    elsewhere take the depth-0 model of the same crawl file, and failing that the
    base-model name in the crawl file's name.
    """
    import pyarrow.parquet as pq

    folder = Path(folder) if folder is not None else _default_lineage_folder()
    table = pq.read_table(folder / "hf_trees_models.parquet").to_pylist()
    with open(folder / "hf_trees_edges.csv", encoding="utf-8", newline="") as fh:
        edges = [
            {"parent_id": r["parent_id"], "child_id": r["child_id"], "relation": r["relation"]}
            for r in csv.DictReader(fh)
        ]
    depth_of = {r["model_id"]: r.get("depth") for r in table}
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e["child_id"], []).append(e["parent_id"])
    roots = {m for m, d in depth_of.items() if d == 0}
    root_by_file = {r["crawl_root_file"]: r["model_id"] for r in table if r.get("depth") == 0}

    def walk(model_id: str) -> str | None:
        seen = set()
        node = model_id
        while node not in roots:
            if node in seen or node not in parents:
                return None
            seen.add(node)
            node = sorted(parents[node])[0]
        return node

    def from_file(crawl_file: str | None) -> str | None:
        if not crawl_file:
            return None
        if crawl_file in root_by_file:
            return root_by_file[crawl_file]
        # "003_Llama-2-7b-chat-hf_finetunes_..." -> a root whose id ends with that name.
        stem = crawl_file.split("_", 1)[-1].split("_finetunes")[0].split("_2025")[0]
        matches = sorted(r for r in roots if r.split("/")[-1] == stem)
        return matches[0] if matches else None

    models = []
    for r in table:
        family = walk(r["model_id"]) or from_file(r.get("crawl_root_file"))
        models.append(
            {
                "model_id": r["model_id"],
                "family": family,
                "depth": r.get("depth"),
                "model_type": _none_if_blank(r.get("model_type")),
                "architectures": _none_if_blank(r.get("architectures")),
                "n_params": _none_if_blank(r.get("safetensors_total_params")),
                "dtype": _none_if_blank(r.get("safetensors_major_dtype")),
                "quant_method": _none_if_blank(r.get("quant_method")),
                "license": _none_if_blank(r.get("license")),
                "n_languages": r.get("n_languages"),
                "pipeline_tag": _none_if_blank(r.get("pipeline_tag")),
                "library_name": _none_if_blank(r.get("library_name")),
                "created_at": _none_if_blank(r.get("created_at")),
                "crawl_root_file": r.get("crawl_root_file"),
            }
        )
    return models, edges


def lineage_partial_config(row: dict) -> dict:
    """A partial config.json from a lineage row: only what the crawl knows.

    model_type, torch_dtype (from the major safetensors dtype), a
    quantization_config when a quant method is known, and the parameter count
    (``num_parameters``, which :func:`extract_features` uses as ``approx_params``).
    """
    cfg: dict[str, Any] = {}
    if row.get("model_type"):
        cfg["model_type"] = row["model_type"]
    if row.get("dtype"):
        cfg["torch_dtype"] = normalise_dtype(row["dtype"])
    if row.get("quant_method"):
        cfg["quantization_config"] = {"quant_method": row["quant_method"]}
    n = _none_if_blank(row.get("n_params"))
    if n is not None:
        with contextlib.suppress(TypeError, ValueError):
            cfg["num_parameters"] = int(n)
    if row.get("architectures"):
        cfg["architectures"] = [a for a in str(row["architectures"]).split(";") if a]
    return cfg


def default_trait_sets(row: dict) -> dict[str, set[str]]:
    """Trait sets for the mutation rate: license, languages, pipeline_tag, library.

    The crawl kept only the number of languages, so ``languages`` is either the
    explicit list (``languages`` key, list or ``;``-separated) or a one-element
    proxy ``{"n=<count>"}``; an empty set means unknown.
    """

    def one(value: Any) -> set[str]:
        value = _none_if_blank(value)
        return {str(value)} if value is not None else set()

    langs = row.get("languages")
    if isinstance(langs, str):
        languages = {x.strip() for x in langs.split(";") if x.strip()}
    elif isinstance(langs, list | tuple | set):
        languages = {str(x) for x in langs if x}
    else:
        n = row.get("n_languages")
        languages = {f"n={int(n)}"} if isinstance(n, int | float) and n and n > 0 else set()
    return {
        "license": one(row.get("license")),
        "languages": languages,
        "pipeline_tag": one(row.get("pipeline_tag")),
        "library": one(row.get("library_name", row.get("library"))),
    }

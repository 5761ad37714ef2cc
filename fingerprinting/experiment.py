"""Experiment configs in the original tool's format, validated before any model loads.

    {"models": ["27", "35"], "methods": ["input_output"],
     "method_args": {"input_output": {"n0": 40, "probe_tokens_path": "...", "target_tokens_path": "..."}},
     "metrics": ["l1"]}
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.jsonio import read_json_file
from fingerprinting.methods import METHODS, FingerprintMethod, MethodConfigError, make_method
from fingerprinting.metrics import METRICS
from fingerprinting.plugins import UnknownPluginError
from fingerprinting.tokens import TokenFileError

OPTIONAL_KEYS = {"name", "description", "device", "dtype"}
REQUIRED_KEYS = ("models", "methods", "metrics")


class ConfigError(FingerprintLakeError, ValueError):
    """An experiment config is malformed; the message names the field."""


@dataclass
class ExperimentConfig:
    models: list[str]
    methods: list[str]
    metrics: list[str]
    method_args: dict[str, dict] = field(default_factory=dict)
    name: str | None = None
    device: str | None = None
    dtype: str = "float32"
    source_path: str | None = None

    def instances(self) -> dict[str, FingerprintMethod]:
        return {m: make_method(m, self.method_args.get(m, {})) for m in self.methods}

    def experiment_key(self) -> str:
        payload = json.dumps({"models": self.models, "methods": self.methods, "metrics": self.metrics,
                              "hashes": {m: i.config_hash for m, i in self.instances().items()}}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _str_list(obj: dict, key: str) -> list[str]:
    value = obj[key]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"field {key!r} must be a non-empty list, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ConfigError(f"field {key}[{i}] must be a string, got {item!r}")
        out.append(str(item))
    if len(set(out)) != len(out):
        dup = sorted({x for x in out if out.count(x) > 1})
        raise ConfigError(f"field {key!r} lists {dup} more than once")
    return out


def parse_config(obj: object, source_path: str | None = None) -> ExperimentConfig:
    """Validate a parsed JSON object; every error names the offending field."""
    if not isinstance(obj, dict):
        raise ConfigError("config must be a JSON object with 'models', 'methods' and 'metrics'")
    for key in REQUIRED_KEYS:
        if key not in obj:
            raise ConfigError(f"missing required field {key!r}")
    unknown = set(obj) - set(REQUIRED_KEYS) - OPTIONAL_KEYS - {"method_args"}
    if unknown:
        known = [*REQUIRED_KEYS, "method_args", *sorted(OPTIONAL_KEYS)]
        hints = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        text = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in sorted(hints.items()))
        raise ConfigError(f"unknown field(s) {text}")
    models = _str_list(obj, "models")
    methods = _str_list(obj, "methods")
    metrics = _str_list(obj, "metrics")
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"field 'methods': {UnknownPluginError('fingerprint method', m, METHODS.names())}")
    for m in metrics:
        if m not in METRICS:
            raise ConfigError(f"field 'metrics': {UnknownPluginError('similarity metric', m, METRICS.names())}")
    method_args = obj.get("method_args", {})
    if not isinstance(method_args, dict):
        raise ConfigError("field 'method_args' must be an object keyed by method name")
    for name, args in method_args.items():
        if name not in methods:
            raise ConfigError(f"field 'method_args.{name}': method {name!r} is not listed in 'methods'")
        if not isinstance(args, dict):
            raise ConfigError(f"field 'method_args.{name}' must be an object")
    cfg = ExperimentConfig(models, methods, metrics, method_args, name=obj.get("name"),
                           device=obj.get("device"), dtype=obj.get("dtype", "float32"), source_path=source_path)
    for name in methods:
        try:
            make_method(name, method_args.get(name, {}))
        except (MethodConfigError, TokenFileError) as exc:
            msg = str(exc)
            for key in METHODS.get(name).params:
                if key in msg:
                    raise ConfigError(f"field 'method_args.{name}.{key}': {msg}") from exc
            raise ConfigError(f"field 'method_args.{name}': {msg}") from exc
    return cfg


def load_config(path: str | Path) -> ExperimentConfig:
    return parse_config(read_json_file(path, "config file", ConfigError), str(path))

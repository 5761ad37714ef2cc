"""Base class and registry for fingerprint methods."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fingerprinting.errors import FingerprintLakeError
from fingerprinting.loading import LoadedModel
from fingerprinting.plugins import Registry

METHODS: Registry[type[FingerprintMethod]] = Registry("fingerprint method")


class FingerprintError(FingerprintLakeError, RuntimeError):
    """A fingerprint could not be computed (names the model and the reason)."""


class MethodConfigError(FingerprintLakeError, ValueError):
    """A method parameter is missing, unknown or of the wrong type."""


@dataclass
class Fingerprint:
    model_id: str
    method: str
    config_hash: str
    config_json: str
    vector: np.ndarray
    provenance: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def library_versions() -> dict[str, str]:
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }


class FingerprintMethod(ABC):
    """One way of turning a loaded model into a vector.

    Subclasses declare ``name``, ``params`` (name -> (type, default)) and
    implement :meth:`compute`. The config hash covers the method name, its
    version and every parameter (token files by content, not by path).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    params: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {}
    needs_tokenizer: ClassVar[bool] = False
    needs_logits: ClassVar[bool] = False

    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - set(self.params)
        if unknown:
            raise MethodConfigError(
                f"method {self.name!r}: unknown parameter(s) {sorted(unknown)}; known: {sorted(self.params)}"
            )
        self.config: dict[str, Any] = {}
        for key, (typ, default) in self.params.items():
            value = kwargs.get(key, default)
            if value is None:
                raise MethodConfigError(f"method {self.name!r}: parameter {key!r} is required")
            if typ is int and isinstance(value, bool) or not isinstance(value, typ):
                raise MethodConfigError(
                    f"method {self.name!r}: parameter {key!r} must be {getattr(typ, '__name__', typ)}, got {value!r}"
                )
            self.config[key] = value
        self.validate()

    def validate(self) -> None:
        """Check parameters beyond their types (override)."""
        return None

    def hash_payload(self) -> dict:
        """What the config hash covers (override to hash file contents)."""
        return dict(self.config)

    @property
    def config_hash(self) -> str:
        payload = {"method": self.name, "version": self.version, "config": self.hash_payload()}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]

    @property
    def config_json(self) -> str:
        return canonical_json({"method": self.name, "version": self.version, **self.config})

    @abstractmethod
    def compute(self, loaded: LoadedModel) -> tuple[np.ndarray, dict]:
        """Return the fingerprint vector and method-specific provenance."""

    def fingerprint(self, loaded: LoadedModel) -> Fingerprint:
        t0 = time.perf_counter()
        try:
            vector, extra = self.compute(loaded)
        except FingerprintError:
            raise
        except Exception as exc:
            raise FingerprintError(f"model {loaded.model_id!r}, method {self.name!r}: {type(exc).__name__}: {exc}") from exc
        vector = np.asarray(vector)
        if vector.ndim != 1 or vector.size == 0:
            raise FingerprintError(f"model {loaded.model_id!r}, method {self.name!r}: empty fingerprint")
        if not np.all(np.isfinite(vector)):
            raise FingerprintError(f"model {loaded.model_id!r}, method {self.name!r}: fingerprint contains NaN/inf")
        prov = {
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).replace("torch.", ""),
            "seconds": round(time.perf_counter() - t0, 4),
            "library_versions": library_versions(),
            "seed": 0,
            **extra,
        }
        return Fingerprint(loaded.model_id, self.name, self.config_hash, self.config_json, vector, prov)


def make_method(name: str, args: dict | None = None) -> FingerprintMethod:
    """Instantiate a registered method by name with its parameters."""
    cls = METHODS.get(name)
    return cls(**(args or {}))

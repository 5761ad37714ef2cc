"""A small decorator registry for plugins (fingerprint methods, similarity metrics).

Unknown names fail with the list of known ones and a "did you mean" hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fingerprinting.errors import FingerprintLakeError

T = TypeVar("T")


class UnknownPluginError(FingerprintLakeError, KeyError):
    """Raised for a name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        hint = difflib.get_close_matches(str(name), known, n=1)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        super().__init__(f"unknown {kind} {name!r}.{did_you_mean} Known: {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


class Registry(Generic[T]):
    """Name -> object, with metadata stored beside each entry."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str, **meta) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownPluginError(self.kind, name, list(self._items)) from None

    def meta(self, name: str) -> dict:
        self.get(name)
        return dict(self._meta[name])

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

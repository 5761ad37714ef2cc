"""Probe / target token files: one string per line, duplicates removed in order."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fingerprinting.errors import FingerprintLakeError


class TokenFileError(FingerprintLakeError, ValueError):
    pass


def read_token_lines(path: str | Path) -> list[str]:
    """Read non-empty lines (trailing newline removed), de-duplicated keeping first occurrence."""
    p = Path(path)
    if not p.is_file():
        raise TokenFileError(f"token file not found: {str(p)!r}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFileError(f"token file {str(p)!r} is not UTF-8: {exc}") from exc
    seen: dict[str, None] = {}
    for line in text.splitlines():
        if line.strip() and line not in seen:
            seen[line] = None
    if not seen:
        raise TokenFileError(f"token file {str(p)!r} has no lines")
    return list(seen)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def encode_lines(tokenizer, lines: list[str], vocab_size: int) -> list[list[int]]:
    """Tokenise each line without special tokens, dropping ids outside ``[0, vocab_size)``.

    One batched tokenizer call where the tokenizer supports it (much faster than
    a call per line); the ids are the same either way.
    """
    try:
        batch = tokenizer(lines, add_special_tokens=False)["input_ids"]
    except Exception:  # tokenizers without batch support
        batch = [tokenizer.encode(line, add_special_tokens=False) for line in lines]
    out = []
    for ids in batch:
        if hasattr(ids, "ids"):
            ids = ids.ids
        out.append([int(i) for i in ids if 0 <= int(i) < vocab_size])
    return out

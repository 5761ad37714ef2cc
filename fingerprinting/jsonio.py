"""Reading JSON input files with errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_file(path: str | Path, what: str, error: type[Exception]):
    """Parse ``path``; a missing file or invalid JSON raises ``error`` naming ``what`` and the path."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} not found: {str(p)!r}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {str(p)!r} is not valid JSON: {exc}") from exc

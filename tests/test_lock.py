"""The lock (constraints.txt) pins every dependency that pyproject.toml names."""

import re
import tomllib

from fingerprinting.settings import REPO_ROOT


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned with ==: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    assert not wanted - set(pins), f"missing from constraints.txt: {sorted(wanted - set(pins))}"
    assert pins["torch"] == "2.13.0"
    assert pins["duckdb"] == "1.4.4"  # the release whose extensions ship on PyPI

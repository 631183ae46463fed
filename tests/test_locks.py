"""The lock files agree with pyproject.toml: every pinned dependency is locked at its pin,
with hashes (scripts/lock writes them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _locked(path: Path) -> dict[str, str]:
    text = path.read_text()
    found = {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.M)
    }
    assert "--hash=sha256:" in text
    return found


def _pins(names: list[str]) -> dict[str, str]:
    pins = {}
    for spec in names:
        m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", spec)
        assert m, f"not pinned exactly: {spec}"
        pins[m.group(1).lower()] = m.group(2)
    return pins


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize(
    ("lock", "groups"),
    [("requirements.lock", ["dependencies"]), ("requirements-dev.lock", ["dependencies", "dev"])],
)
def test_each_pin_is_locked_at_its_version(lock: str, groups: list[str]) -> None:
    locked = _locked(ROOT / lock)
    wanted: dict[str, str] = {}
    for group in groups:
        specs = (
            PROJECT["dependencies"]
            if group == "dependencies"
            else PROJECT["optional-dependencies"][group]
        )
        wanted.update(_pins(specs))
    stale = {
        name: (pin, locked.get(name.replace("_", "-")))
        for name, pin in wanted.items()
        if locked.get(name.replace("_", "-")) != pin
    }
    assert stale == {}, f"run scripts/lock: {stale}"

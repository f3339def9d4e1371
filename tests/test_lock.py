"""requirements.lock pins every package the set-up installs, and agrees with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    extra = (ROOT / "requirements.in").read_text().splitlines()
    reqs += [r for r in (line.split("#")[0].strip() for line in extra) if r]
    return [Requirement(r) for r in reqs]


def test_every_line_of_the_lock_is_an_exact_pin() -> None:
    lines = [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()]
    reqs = [line for line in lines if line and not line.startswith("#")]
    assert reqs, "requirements.lock is empty"
    assert all(PIN.match(r) for r in reqs), [r for r in reqs if not PIN.match(r)]


@pytest.mark.parametrize("req", _declared(), ids=str)
def test_the_lock_satisfies_pyproject(req: Requirement) -> None:
    pins = _lock()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is not in requirements.lock: run `make lock`"
    assert req.specifier.contains(Version(pins[name]), prereleases=True), (
        f"requirements.lock pins {req.name}=={pins[name]}, outside {req}: run `make lock`"
    )


def test_the_environment_is_the_lock() -> None:
    """What `make install` put in .venv is exactly the lock (a fresh machine gets the same)."""
    wrong = {}
    for name, pinned in _lock().items():
        try:
            got = version(name)
        except PackageNotFoundError:
            got = "not installed"
        if got != pinned:
            wrong[name] = (pinned, got)
    assert not wrong, f"installed versions differ from requirements.lock (pinned, got): {wrong}"

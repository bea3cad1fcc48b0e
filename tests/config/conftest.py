"""Fixtures for the config tests: a clean environment in an empty directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ENV_VARS = ("EVENTBUS_CONFIG", "EVENTBUS_URL", "EVENTBUS_BROKER", "EVENTBUS_PROFILE")


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in its own empty directory with no EVENTBUS_* variables set."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write(workdir: Path) -> Callable[[str, str], Path]:
    """write(name, toml_text) -> path: a file in the test's directory (text dedented)."""

    def _write(name: str, text: str) -> Path:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write

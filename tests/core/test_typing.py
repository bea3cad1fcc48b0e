"""The typed API as users' code sees it: mypy --strict on tests/typing/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TYPING = Path(__file__).parent.parent / "typing"


def test_the_typed_api_passes_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    files = sorted(str(p) for p in TYPING.glob("*.py"))
    assert files, "no typing test files"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-version",
            "3.10",
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr

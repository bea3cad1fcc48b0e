"""Fixtures for the CLI tests: the real CLI, in-process (main(argv)) or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventbus.cli import main

REPO = Path(__file__).resolve().parents[2]

#: An eventbus.toml on a RabbitMQ port where nothing listens, with short publish timeouts.
UNREACHABLE = """
url = "amqp://guest:guest@127.0.0.1:1/"
[publish]
retry_attempts = 2
retry_timeout = 0.5
close_timeout = 0.2
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in an empty directory with no EVENTBUS_* variables set."""
    for name in ("EVENTBUS_CONFIG", "EVENTBUS_URL", "EVENTBUS_BROKER", "EVENTBUS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sqlite_config(workdir: Path) -> Path:
    """An eventbus.toml in the test's directory pointing at a SQLite file there."""
    path = workdir / "eventbus.toml"
    path.write_text('url = "sqlite:///bus.db"\n\n[worker]\npoll_interval = 0.1\n')
    return path


@pytest.fixture
def write(workdir: Path) -> Callable[[str, str], Path]:
    def _write(name: str, text: str) -> Path:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """cli("publish", "x.y", ...) runs main(argv) in this process and captures its output."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def child_env(**extra: str) -> dict[str, str]:
    # Not PYTHONUNBUFFERED: it splits a print into two writes that interleave between
    # threads and streams; the code under test flushes whole lines itself.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EVENTBUS_") and k != "PYTHONUNBUFFERED"
    }
    env.update(extra)
    return env


@pytest.fixture
def run_cli(workdir: Path) -> Callable[..., Result]:
    """run_cli(*argv, timeout=60, input=None): ``python -m eventbus ...`` as a subprocess."""

    def run(*argv: str, timeout: float = 60, input: str | None = None, **env: str) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "eventbus", *argv],
            cwd=workdir,
            env=child_env(**env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def spawn(workdir: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """spawn(*argv): a long-running ``python -m eventbus ...``; killed at teardown if alive."""
    procs: list[subprocess.Popen[str]] = []

    def start(*argv: str, **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eventbus", *argv],
            cwd=workdir,
            env=child_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


class Lines:
    """Collects a process's output lines on a thread; wait_for() polls with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        import threading

        self.lines: list[str] = []
        self.done = False
        self._cond = threading.Condition()
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def wait_for(self, check: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        with self._cond:
            ok = self._cond.wait_for(lambda: check(self.lines) or self.done, timeout)
            if not (ok and check(self.lines)):
                text = "\n".join(self.lines)
                raise AssertionError(f"timed out waiting; output so far:\n{text}")
            return list(self.lines)

    def text(self) -> str:
        self._thread.join(10)
        return "\n".join(self.lines)


@pytest.fixture
def watch() -> Callable[[subprocess.Popen[str]], Lines]:
    """watch(proc) -> Lines: collect a spawned process's output and wait on it."""
    return Lines


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO

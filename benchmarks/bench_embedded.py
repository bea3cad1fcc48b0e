"""Throughput of the embedded brokers (memory, sqlite), end to end through EventBus.

    python benchmarks/bench_embedded.py [--events N] [--json PATH] [--workers 1,2,4]

Cases (events/s; every event published with one ``bus.publish``, not batched):

- ``memory publish->handler``: one process, ``EventBus(MemoryAdapter())``, a
  worker thread handling while the main thread publishes; time from the first
  publish to the last handler call. Goal: >= 50,000/s.
- ``memory publish->handler, W members``: the same with ``concurrency=W``
  consumer threads in the group (the memory broker lives in one process, so
  its "workers" are threads; the GIL bounds them);
- ``memory publish_many->handler`` / ``sqlite publish_many``: 100 events per
  ``bus.publish_many`` call (batched), otherwise as their one-by-one cases;
- ``sqlite publish``: one process publishing to a file with one group declared
  (no consumer running). Goal: >= 5,000/s.
- ``sqlite publish->consume, W worker(s)``: a publisher process (this one) and W
  worker processes on one file; time from the first publish until the group's
  queue is empty, every event acked. Goal (W=1): >= 3,000/s.
- ``sqlite consume backlog, W worker(s)``: N events already waiting; W worker
  processes drain them with ack (the scaling figure).

Worker processes report how many events they handled; the script checks the
sum is exactly N (each event handled once) and fails otherwise.

The machine is shared, so each case runs ``--repeat`` times (default 3) and the
table shows the best run, as ``timeit`` does (noise only ever slows a run
down); the JSON keeps every run. The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

GROUP = "bench"
PAYLOAD = {"id": 0, "user": "Ana", "total": 42.9}


def _worker_main(path: str) -> None:
    """Child process: run one bus member until told to stop on stdin; print the count."""
    from eventbus import EventBus, SqliteAdapter

    bus = EventBus(SqliteAdapter(path))
    count = 0

    @bus.subscribe("order.#", group=GROUP)
    def handle(event: Any) -> None:
        nonlocal count
        count += 1

    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    bus.start()
    sys.stdin.readline()  # "stop"
    bus.close()
    print(count, flush=True)


def _spawn(path: str, n: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("a worker process failed to start")
    return procs


def _send(procs: list[subprocess.Popen[str]], line: str) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()


def _finish(procs: list[subprocess.Popen[str]]) -> int:
    _send(procs, "stop")
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=60)
        total += int(out.strip().splitlines()[-1])
    return total


def _drain(adapter: Any, deadline: float) -> None:
    while adapter.depth(GROUP):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out; {adapter.depth(GROUP)} events still waiting")
        time.sleep(0.002)


def _publish(bus: Any, n: int, batch: int) -> None:
    if batch <= 1:
        for _ in range(n):
            bus.publish("order.created", PAYLOAD)
        return
    for start in range(0, n, batch):
        bus.publish_many(bus.event("order.created", PAYLOAD) for _ in range(min(batch, n - start)))


def bench_memory(n: int, members: int = 1, batch: int = 1) -> float:
    from eventbus import EventBus, MemoryAdapter

    bus = EventBus(MemoryAdapter())
    lock = threading.Lock()
    done = threading.Event()
    count = 0

    @bus.subscribe("order.#", group=GROUP, concurrency=members)
    def handle(event: Any) -> None:
        nonlocal count
        with lock:
            count += 1
            if count == n:
                done.set()

    bus.start()
    t0 = time.perf_counter()
    _publish(bus, n, batch)
    if not done.wait(120):
        raise SystemExit(f"memory: only {count} of {n} handled")
    elapsed = time.perf_counter() - t0
    bus.close()
    return n / elapsed


def bench_sqlite_publish(n: int, directory: str, batch: int = 1) -> float:
    from eventbus import EventBus, SqliteAdapter

    adapter = SqliteAdapter(os.path.join(directory, "publish.db"))
    adapter.declare(GROUP, ["order.#"])
    bus = EventBus(adapter)
    t0 = time.perf_counter()
    _publish(bus, n, batch)
    elapsed = time.perf_counter() - t0
    bus.close()
    return n / elapsed


def bench_sqlite_pipeline(n: int, workers: int, directory: str, backlog: bool) -> float:
    from eventbus import EventBus, SqliteAdapter

    name = f"{'backlog' if backlog else 'pipeline'}-{workers}.db"
    path = os.path.join(directory, name)
    adapter = SqliteAdapter(path)
    adapter.declare(GROUP, ["order.#"])
    bus = EventBus(adapter)
    if backlog:
        for start in range(0, n, 1000):
            bus.publish_many(
                bus.event("order.created", PAYLOAD) for _ in range(min(1000, n - start))
            )
    procs = _spawn(path, workers)
    try:
        _send(procs, "go")
        t0 = time.perf_counter()
        if not backlog:
            for _ in range(n):
                bus.publish("order.created", PAYLOAD)
        _drain(adapter, time.monotonic() + 300)
        elapsed = time.perf_counter() - t0
    finally:
        handled = _finish(procs)
        bus.close()
    if handled != n:
        raise SystemExit(f"sqlite: {handled} events handled by the workers, expected {n}")
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per case")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts for sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--worker", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return 0
    n = args.events
    counts = [int(w) for w in args.workers.split(",") if w]
    load = os.getloadavg()[0]
    results: list[tuple[str, list[float], float | None]] = []
    with tempfile.TemporaryDirectory(prefix="eventbus-bench-") as directory:

        def case(name: str, goal: float | None, run: Any) -> None:
            rates = []
            for k in range(max(1, args.repeat)):
                rates.append(run(os.path.join(directory, f"run{k}")))
            results.append((name, rates, goal))

        def fresh(d: str) -> str:
            os.makedirs(d, exist_ok=True)
            return d

        case("memory publish->handler", 50_000, lambda d: bench_memory(n))
        case("memory publish_many->handler", None, lambda d: bench_memory(n, batch=100))
        for w in counts:
            if w > 1:
                case(
                    f"memory publish->handler, {w} members",
                    None,
                    lambda d, w=w: bench_memory(n, members=w),
                )
        case("sqlite publish", 5_000, lambda d: bench_sqlite_publish(n, fresh(d)))
        case("sqlite publish_many", None, lambda d: bench_sqlite_publish(n, fresh(d), batch=100))
        for w in counts:
            case(
                f"sqlite publish->consume, {w} worker(s)",
                3_000 if w == 1 else None,
                lambda d, w=w: bench_sqlite_pipeline(n, w, fresh(d), backlog=False),
            )
        for w in counts:
            case(
                f"sqlite consume backlog, {w} worker(s)",
                None,
                lambda d, w=w: bench_sqlite_pipeline(n, w, fresh(d), backlog=True),
            )
    width = max(len(r[0]) for r in results)
    print(f"{n:,} events per run, best of {args.repeat}; load average {load:.2f} at start")
    print(f"{'case':<{width}}  {'events/s':>10}  {'goal':>8}")
    for name, rates, goal in results:
        best = max(rates)
        mark = "" if goal is None else ("  ok" if best >= goal else "  MISSED")
        goal_s = "" if goal is None else f"{goal:,.0f}"
        print(f"{name:<{width}}  {best:>10,.0f}  {goal_s:>8}{mark}")
    if args.json:
        report = {
            "events": n,
            "repeat": args.repeat,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": round(load, 2),
            "results": [
                {
                    "case": name,
                    "events_per_s": round(max(rates)),
                    "runs": [round(r) for r in rates],
                    "goal": goal,
                }
                for name, rates, goal in results
            ],
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Consuming under faults: handler timeouts (def and async def), what happens to an
overrunning thread, retry policy per subscription, concurrency and prefetch limits,
graceful SIGTERM. On the memory broker, and on SQLite where another process is needed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from eventbus import BusConfig, Event, EventBus, MemoryAdapter, RetryPolicy

pytestmark = pytest.mark.memory

QUICK = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.05)


def _wait(check: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # polling with a deadline


def _bus(broker: MemoryAdapter, **config: Any) -> EventBus:
    return EventBus(broker.client(), source="/t", config=BusConfig(poll_interval=0.05, **config))


def _dead(broker: MemoryAdapter, group: str) -> list[str]:
    return [reason for _, reason in broker.dead_letters(group)]


def test_sync_handler_timeout_retries_then_dead_letters() -> None:
    broker = MemoryAdapter()
    release = threading.Event()
    seen: list[int] = []

    def hangs(e: Event) -> None:
        seen.append(e.attempt)
        release.wait(30)

    bus = _bus(broker)
    bus.subscribe("h.x", hangs, group="g", retry=QUICK, timeout=0.2)
    bus.start()
    t0 = time.monotonic()
    bus.publish("h.x", {})
    _wait(lambda: _dead(broker, "g"), "dead letter")
    assert time.monotonic() - t0 < 3
    assert seen == [1, 2]
    (reason,) = _dead(broker, "g")
    assert "HandlerTimeout" in reason and "attempt 2 of 2" in reason
    worker = bus._worker
    assert worker is not None and worker.overrunning == 2  # both threads still hang
    release.set()
    _wait(lambda: worker.overrunning == 0, "abandoned threads end and are counted off")
    bus.close()


def test_async_handler_timeout_cancels_the_coroutine() -> None:
    broker = MemoryAdapter()
    cancelled: list[int] = []

    async def hangs(e: Event) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(e.attempt)
            raise

    bus = _bus(broker)
    bus.subscribe("h.x", hangs, group="g", retry=QUICK, timeout=0.2)
    bus.start()
    bus.publish("h.x", {})
    _wait(lambda: _dead(broker, "g"), "dead letter")
    _wait(lambda: cancelled == [1, 2], f"cancelled {cancelled}")
    assert "HandlerTimeout" in _dead(broker, "g")[0]
    bus.close()


def test_hung_threads_never_starve_later_events() -> None:
    """More hung handlers than a thread pool would hold: later events still run in time."""
    broker = MemoryAdapter()
    release = threading.Event()
    done: list[int] = []

    def handler(e: Event) -> None:
        if e.data["hang"]:
            release.wait(30)
        else:
            done.append(e.data["i"])

    bus = _bus(broker, concurrency=2)
    bus.subscribe("w.x", handler, group="g", retry=RetryPolicy(max_attempts=1), timeout=0.1)
    bus.start()
    try:
        bus.publish_many([bus.event("w.x", {"i": i, "hang": True}) for i in range(12)])
        bus.publish_many([bus.event("w.x", {"i": i, "hang": False}) for i in range(20)])
        _wait(lambda: len(done) == 20 and len(_dead(broker, "g")) == 12, f"done {len(done)}")
    finally:
        release.set()
    bus.close()


def test_a_timeout_that_is_not_hit_passes_errors_and_results_through() -> None:
    broker = MemoryAdapter()
    attempts: Counter[str] = Counter()

    def flaky(e: Event) -> None:
        attempts[e.id] += 1
        if e.attempt == 1:
            raise KeyError("first time")

    bus = _bus(broker)
    bus.subscribe("f.x", flaky, group="g", retry=QUICK, timeout=5)
    bus.start()
    e = bus.publish("f.x", {})
    _wait(lambda: attempts[e.id] == 2 and broker.depth("g") == 0, "retried once")
    assert not _dead(broker, "g")
    bus.close()


class Malformed(ValueError):
    pass


def test_retry_policy_per_subscription() -> None:
    """dead_letter_on skips the remaining attempts; retry_on limits what is retried;
    two groups on the same events keep their own policies."""
    broker = MemoryAdapter()
    tries: Counter[tuple[str, str]] = Counter()

    def make(group: str) -> Any:
        def handler(e: Event) -> None:
            tries[(group, e.data["kind"])] += 1
            raise {"malformed": Malformed, "io": OSError, "other": LookupError}[e.data["kind"]]("x")

        return handler

    bus = _bus(broker)
    strict = RetryPolicy(
        max_attempts=4, initial_delay=0.01, dead_letter_on=(Malformed,), retry_on=(OSError,)
    )
    lenient = RetryPolicy(max_attempts=3, initial_delay=0.01)
    bus.subscribe("r.x", make("strict"), group="strict", retry=strict)
    bus.subscribe("r.x", make("lenient"), group="lenient", retry=lenient)
    bus.start()
    for kind in ("malformed", "io", "other"):
        bus.publish("r.x", {"kind": kind})
    _wait(lambda: len(_dead(broker, "strict")) == 3 and len(_dead(broker, "lenient")) == 3, "dead")
    assert tries == {
        ("strict", "malformed"): 1,  # dead_letter_on: straight away
        ("strict", "io"): 4,  # retry_on: all attempts
        ("strict", "other"): 1,  # not in retry_on: straight away
        ("lenient", "malformed"): 3,
        ("lenient", "io"): 3,
        ("lenient", "other"): 3,
    }
    assert any("Malformed" in r and "attempt 1 of 4" in r for r in _dead(broker, "strict"))
    bus.close()


def test_concurrency_bounds_parallel_handlers() -> None:
    broker = MemoryAdapter()
    active = 0
    peak = 0
    lock = threading.Lock()
    done = []

    def handler(e: Event) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)  # simulated work
        with lock:
            active -= 1
            done.append(e.id)

    bus = _bus(broker, concurrency=3, prefetch=2)
    bus.subscribe("c.x", handler, group="g")
    bus.start()
    bus.publish_many([bus.event("c.x", {"i": i}) for i in range(60)])
    _wait(lambda: len(done) == 60, "all handled")
    assert peak == 3
    bus.close()


def test_prefetch_limits_what_one_member_takes() -> None:
    """A slow member with prefetch 1 holds one event; a second member gets the rest."""
    broker = MemoryAdapter()
    release = threading.Event()
    slow_got: list[int] = []
    fast_got: list[int] = []

    def slow(e: Event) -> None:
        slow_got.append(e.data["i"])
        release.wait(10)

    a = _bus(broker, prefetch=1)
    a.subscribe("p.x", slow, group="g")
    a.start()
    a.publish("p.x", {"i": 0})
    _wait(lambda: slow_got, "slow member busy")
    a.publish_many([a.event("p.x", {"i": i}) for i in range(1, 21)])
    b = _bus(broker, prefetch=1)
    b.subscribe("p.x", lambda e: fast_got.append(e.data["i"]), group="g")
    b.start()
    _wait(lambda: len(fast_got) == 20, f"fast member got {len(fast_got)}")
    assert slow_got == [0]
    release.set()
    a.close()
    b.close()


@pytest.mark.sqlite
def test_sigterm_finishes_the_event_in_hand_and_returns_the_rest(workdir: Path) -> None:
    """SIGTERM mid-batch: the handler in progress finishes and is acked, the rest of the
    batch goes back to the group at once, the process exits in bounded time; a second
    worker handles the rest: every event exactly once."""
    db = workdir / "bus.db"
    url = f"sqlite:///{db}?lease=30"
    script = workdir / "worker.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, sys, time
        from eventbus import BusConfig, EventBus
        def say(*words):  # one unbuffered write per line
            os.write(1, (" ".join(map(str, words)) + "\\n").encode())
        bus = EventBus({url!r}, source="/w", config=BusConfig(poll_interval=0.05, prefetch=50))
        @bus.subscribe("job.run", group="jobs")
        def job(event):
            say("start", event.data["i"])
            time.sleep(0.2)  # simulated work
            say("done", event.data["i"])
        bus.run()
        say("stopped")
    """)
    )
    pub = EventBus(url, source="/p", config=BusConfig())
    pub.adapter.declare("jobs", ["job.run"])
    pub.publish_many([pub.event("job.run", {"i": i}) for i in range(30)])
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while len([x for x in lines if x.startswith("done")]) < 3:
            line = proc.stdout.readline()
            assert line, f"worker died: {lines}"
            lines.append(line.strip())
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)  # the output is small: the pipe cannot fill up
        rest = proc.stdout.read()  # not communicate(): it skips what readline() buffered
        stop_took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    lines += rest.split("\n")
    assert proc.returncode == 0 and "stopped" in lines
    assert stop_took < 2.0  # at most the handler in hand (0.2 s) plus shutdown
    started = {ln.split()[1] for ln in lines if ln.startswith("start")}
    finished = {ln.split()[1] for ln in lines if ln.startswith("done")}
    assert started == finished, f"a handler was cut off: {lines}"
    # the rest is back in the group now, not after the 30 s lease
    assert pub.adapter.depth("jobs") == 30 - len(finished)
    handled: list[int] = []
    second = EventBus(url, source="/w2", config=BusConfig(poll_interval=0.05))
    second.subscribe("job.run", lambda e: handled.append(e.data["i"]), group="jobs")
    second.start()
    _wait(lambda: len(handled) == 30 - len(finished), "the rest", timeout=20)
    assert sorted(handled + [int(i) for i in finished]) == list(range(30))
    second.close()
    pub.close()

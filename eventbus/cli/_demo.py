"""``eventbus demo``: the orders/billing example, as separate processes, on a temporary SQLite file.

The story it shows (from the lesson the project started from): orders does not
depend on billing. Billing is stopped while orders keeps publishing; the broker
keeps the orders for billing's group; billing starts again and catches up with
nothing lost. Notifications, in a group of its own, gets every order all along
(fan-out). Every service is a real process started through the CLI
(``eventbus worker eventbus.examples.orders_billing.billing:bus``); the demo
counts what each one printed and exits 0 only if every order was invoiced and
notified. The example ships in the package (:mod:`eventbus.examples.orders_billing`),
so the demo runs from any installation, not only from a source checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from .._errors import EventBusError
from ._common import positive_int

__all__ = ["run_demo"]

EXAMPLE = "eventbus.examples.orders_billing"
_PACKAGE = Path(__file__).resolve().parents[1]  # the eventbus package directory
EXAMPLE_DIR = _PACKAGE / "examples" / "orders_billing"
_PUBLISHED = re.compile(r"^published order (\d+)\b")
_INVOICED = re.compile(r"^invoice \S+ for order (\d+)\b")
_NOTIFIED = re.compile(r"^notified .* about order (\d+)\b")
_COLOURS = {"orders": "36", "billing": "33", "notifications": "35", "demo": "1"}


def _child_pythonpath() -> str:
    """PYTHONPATH for the services, so they import this same eventbus.

    The directory eventbus was imported from is added only when a child would
    not find it anyway: a source tree run with ``python -m eventbus`` from its
    root, say. An installation's site-packages is on every child's path already,
    and putting it on PYTHONPATH would put it ahead of the standard library.
    """
    here = str(_PACKAGE.parent)
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    inherited = {os.path.realpath(p) for p in sys.path[1:] if p}  # sys.path[0]: not inherited
    if here not in inherited:
        given.insert(0, here)
    return os.pathsep.join(given)


class _Tally:
    """What the services printed, counted by order id (thread-safe, waitable)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.published: Counter[int] = Counter()
        self.invoiced: Counter[int] = Counter()
        self.notified: Counter[int] = Counter()
        self.ready: set[str] = set()
        self.ended: list[str] = []  # a stream of this service closed: it exited

    def record(self, service: str, line: str) -> None:
        with self.cond:
            for pattern, counter in (
                (_PUBLISHED, self.published),
                (_INVOICED, self.invoiced),
                (_NOTIFIED, self.notified),
            ):
                m = pattern.match(line)
                if m:
                    counter[int(m.group(1))] += 1
            if "worker: ready:" in line:
                self.ready.add(service)
            self.cond.notify_all()

    def ended_stream(self, service: str) -> None:
        with self.cond:
            self.ended.append(service)
            self.cond.notify_all()

    def wait(self, check: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(check, timeout)


class _Screen:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.colour = out.isatty() and not os.environ.get("NO_COLOR")

    def _paint(self, name: str, text: str) -> str:
        code = _COLOURS.get(name)
        return f"\033[{code}m{text}\033[0m" if self.colour and code else text

    def line(self, service: str, text: str) -> None:
        with self.lock:
            print(f"  {self._paint(service, f'{service:<13}')} | {text}", file=self.out, flush=True)

    def say(self, text: str = "") -> None:
        with self.lock:
            print(self._paint("demo", text) if text else "", file=self.out, flush=True)


class _Service:
    """One child process whose output lines are shown and counted."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        tally: _Tally,
        screen: _Screen,
    ) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # apart: lines of two streams never interleave
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._tally = tally
        self._screen = screen
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), name=f"demo-{name}", daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: TextIO | None) -> None:
        assert stream is not None
        for raw in stream:
            line = raw.rstrip("\n")
            if not line:
                continue
            self._tally.record(self.name, line)
            shown = _tidy(line)
            if shown:
                self._screen.line(self.name, shown)
        self._tally.ended_stream(self.name)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (a graceful stop for a worker), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        return code


def _tidy(line: str) -> str:
    """Worker chatter shortened for the screen; '' to hide a line."""
    if line.startswith("eventbus worker: "):
        line = line[len("eventbus worker: ") :]
        if " on " in line and not line.startswith(("ready", "stopped")):
            return ""
        return line.replace(" (Ctrl+C to stop)", "")
    return line


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "demo",
        parents=[common],
        help="run the orders/billing demo",
        description="Run the orders/billing example as separate processes "
        "on a temporary SQLite file: billing is stopped while orders keeps "
        "publishing, then catches up with nothing lost.",
    )
    p.add_argument(
        "--orders",
        type=positive_int,
        default=12,
        metavar="N",
        help="orders to publish in all (default: 12)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary broker file and print how to inspect it",
    )
    p.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    return int(run_demo(orders=args.orders, keep=args.keep))


def run_demo(*, orders: int = 12, keep: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; returns the exit code (0 only if nothing was lost)."""
    out = out or sys.stdout
    screen = _Screen(out)
    tally = _Tally()
    tmp = Path(tempfile.mkdtemp(prefix="eventbus-demo-"))
    db = tmp / "demo.db"
    url = f"sqlite:///{quote(str(db))}"
    config = tmp / "eventbus.toml"
    config.write_text(
        f"url = {json.dumps(url)}\n\n[worker]\npoll_interval = 0.1\n\n"
        "[retry]\nmax_attempts = 5\ninitial_delay = 0.1\n",
        encoding="utf-8",
    )
    # Children print whole lines with flush=True; PYTHONUNBUFFERED would split each
    # print into two writes (text, newline) that other threads' output can interleave.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EVENTBUS_") and k != "PYTHONUNBUFFERED"
    }
    env.update(
        EVENTBUS_CONFIG=str(config),
        PYTHONPATH=_child_pythonpath(),
    )
    # Create the broker file here, once: then the services open an existing file
    # instead of racing to create it (a first open of a new SQLite file by two
    # processes at once can fail with "database is locked" at once).
    from .._plugins import create_adapter

    create_adapter(None, url, {}).close()
    py = sys.executable
    services: list[_Service] = []

    def start(name: str, argv: list[str]) -> _Service:
        service = _Service(name, argv, env, tmp, tally, screen)
        services.append(service)
        return service

    def worker(name: str) -> _Service:
        argv = [py, "-m", "eventbus", "worker", f"{EXAMPLE}.{name}:bus", "--log-level", "WARNING"]
        return start(name, argv)

    def place(first: int, count: int) -> int:
        argv = [
            py,
            "-m",
            f"{EXAMPLE}.orders",
            "--first-id",
            str(first),
            "--count",
            str(count),
            "--interval",
            "0.1",
        ]
        return start("orders", argv).wait(60)

    first_batch = max(1, orders // 3)
    everything = set(range(1, orders + 1))
    ok = True
    started = time.monotonic()
    screen.say("eventbus demo: orders, billing and notifications as separate processes")
    screen.say(f"broker: the embedded SQLite broker, one file shared by all: {db}")
    screen.say()
    try:
        screen.say(
            "1. billing and notifications start; each is its own group, so each gets every order"
        )
        billing = worker("billing")
        worker("notifications")
        both = {"billing", "notifications"}
        if not tally.wait(lambda: both <= tally.ready or bool(both & set(tally.ended)), 30):
            raise _DemoFailed("the workers did not start in 30s; see their output above")
        if not both <= tally.ready:
            raise _DemoFailed("a worker exited at start; see its output above")

        screen.say(f"2. orders publishes {first_batch} order(s) with both services up")
        if place(1, first_batch) != 0:
            raise _DemoFailed("the orders process failed; see its output above")
        first = set(range(1, first_batch + 1))
        if not tally.wait(
            lambda: first <= set(tally.invoiced) and first <= set(tally.notified), 20
        ):
            raise _DemoFailed("billing or notifications did not handle the first orders")

        screen.say("3. billing is STOPPED; orders does not depend on it and keeps publishing")
        billing.stop()
        while_down = set(range(first_batch + 1, orders + 1))
        if while_down:
            if place(first_batch + 1, len(while_down)) != 0:
                raise _DemoFailed("the orders process failed; see its output above")
            if not tally.wait(lambda: everything <= set(tally.notified), 20):
                raise _DemoFailed("notifications did not get every order")
            with tally.cond:
                missed = len(while_down - set(tally.invoiced))
            screen.say(
                f"   billing missed {missed} order(s); the broker keeps them in billing's group"
            )

        screen.say("4. billing starts again and catches up")
        billing = worker("billing")
        if not tally.wait(lambda: everything <= set(tally.invoiced), 30):
            raise _DemoFailed("billing did not catch up")
    except _DemoFailed as exc:
        ok = False
        screen.say(f"FAILED: {exc}")
    except KeyboardInterrupt:
        ok = False
        screen.say("interrupted")
    finally:
        for service in services:
            service.stop()

    logged = _count_logged(url)
    with tally.cond:
        published, invoiced, notified = (
            set(tally.published),
            set(tally.invoiced),
            set(tally.notified),
        )
        twice = sum(n - 1 for c in (tally.invoiced, tally.notified) for n in c.values() if n > 1)
    ok = ok and published == invoiced == notified == everything
    screen.say()
    screen.say(
        f"published {len(published)}, invoiced {len(invoiced)}, notified {len(notified)}"
        + (": nothing lost" if ok else f": expected {orders} of each")
    )
    if twice:
        screen.say(f"({twice} handled twice: delivery is at-least-once)")
    if logged is not None:
        screen.say(f"the broker's event log holds {logged} order event(s) (eventbus log lists it)")
    screen.say(f"done in {time.monotonic() - started:.1f}s")
    screen.say(
        "the same services run on RabbitMQ, Kafka, SQS or Service Bus by changing one "
        f"line, url, in eventbus.toml (see {EXAMPLE_DIR / 'eventbus.toml'})"
    )
    if keep:
        screen.say(f"kept {tmp}; look at it with: eventbus --config {config} log")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


class _DemoFailed(Exception):
    pass


def _count_logged(url: str) -> int | None:
    """How many order events the SQLite broker's log retained (None if it can't say)."""
    from .._plugins import create_adapter
    from ..adapter import EventLog

    try:
        adapter = create_adapter(None, url, {})
    except EventBusError:
        return None
    try:
        if not isinstance(adapter, EventLog):
            return None
        log = adapter.log
        total, after = 0, 0
        while True:
            entries = log(limit=1000, after=after, pattern="order.#")
            total += len(entries)
            if len(entries) < 1000:
                return total
            after = entries[-1].seq
    except EventBusError:
        return None
    finally:
        adapter.close()

"""``eventbus check``: load the config, reach the broker, send a probe event round."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from .._config import BusConfig, redact
from .._envelope import Event, encode
from .._errors import AdapterNotFound, BrokerError, BrokerUnavailable, ConfigError, EventBusError
from .._plugins import create_adapter
from ..adapter import Adapter
from ._common import Failure, config, positive_float, spec, where

#: The group and topic ``eventbus check`` uses: one fixed group, so repeated checks
#: leave one small group on the broker, never a growing pile.
CHECK_GROUP = "eventbus-check"
CHECK_TOPIC = "eventbus.check"


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "check",
        parents=[common],
        help="check config and broker reachability",
        description="Load the config, connect to the broker, and send one "
        f"probe event through group {CHECK_GROUP!r} (topic "
        f"{CHECK_TOPIC!r}). Exit 1 with the reason if the broker cannot "
        "be reached.",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=20.0,
        metavar="SECONDS",
        help="give up after this long (default: 20)",
    )
    p.set_defaults(run=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = config(args)
    source = cfg.file or "none found; built-in defaults"
    print(f"config:   {source}" + (f" (profile {cfg.profile!r})" if cfg.profile else ""))
    found = spec(cfg)
    url = cfg.url or found.default_url or ""
    sdk = "" if found.sdk is None else f" (SDK {found.sdk})"
    print(f"broker:   {found.name} {found.version}{sdk}")
    print(f"url:      {redact(url)}")
    if not found.sdk_installed():
        extra = f"pip install 'eventbus[{found.extra}]'" if found.extra else f"install {found.sdk}"
        raise AdapterNotFound(f"the {found.name!r} adapter needs {found.sdk!r}: {extra}")

    steps: list[tuple[str, str]] = []
    outcome: dict[str, BaseException] = {}
    done = threading.Event()

    def probe() -> None:
        try:
            _probe(cfg, steps, time.monotonic() + args.timeout)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=probe, name="eventbus-check", daemon=True)
    started = time.monotonic()
    thread.start()
    shown = 0
    while not done.wait(0.05):
        shown = _show_steps(steps, shown)
        if time.monotonic() - started > args.timeout + 2.0:
            _show_steps(steps, shown)
            print("reachable: no answer", flush=True)
            raise Failure(
                f"{where(cfg, found)}: no answer within {args.timeout:g}s "
                f"(stuck at: {_next_step(steps)})"
            )
    _show_steps(steps, shown)
    error = outcome.get("error")
    if error is not None:
        if isinstance(error, (ConfigError, AdapterNotFound)):
            raise error
        if isinstance(error, BrokerUnavailable):
            print("reachable: no", flush=True)
        elif isinstance(error, BrokerError):
            print("reachable: yes, but it refused (see the error)", flush=True)
        if isinstance(error, EventBusError):
            raise Failure(f"{where(cfg, found)}: {_next_step(steps)} failed: {error}") from error
        raise error
    print("reachable: yes")
    note = "" if found.capabilities.cross_process else " (in this process only)"
    print(f"ok: {where(cfg, found)} takes and delivers events{note}")
    return 0


_STEPS = ("connect", "declare", "publish", "receive")


def _next_step(steps: list[tuple[str, str]]) -> str:
    return _STEPS[len(steps)] if len(steps) < len(_STEPS) else "close"


def _show_steps(steps: list[tuple[str, str]], shown: int) -> int:
    for name, detail in steps[shown:]:
        print(f"{name + ':':<9} ok {detail}".rstrip(), flush=True)
    return len(steps)


def _probe(cfg: BusConfig, steps: list[tuple[str, str]], deadline: float) -> None:
    """Connect, declare the check group, publish a probe and receive it (one thread)."""
    t = time.monotonic()

    def lap() -> str:
        nonlocal t
        now = time.monotonic()
        ms, t = (now - t) * 1000, now
        return f"({ms:.0f} ms)"

    adapter: Adapter = create_adapter(cfg.broker, cfg.url, cfg.options)
    try:
        steps.append(("connect", lap()))
        adapter.declare(CHECK_GROUP, [CHECK_TOPIC])
        consumer = adapter.consumer(CHECK_GROUP, [CHECK_TOPIC])
        try:
            steps.append(("declare", f"{lap()} group {CHECK_GROUP!r} <- {CHECK_TOPIC!r}"))
            probe = Event(type=CHECK_TOPIC, data={"check": "probe"}, source="//eventbus/check")
            adapter.publish([encode(probe)])
            steps.append(("publish", lap()))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerError("the probe event did not come back in time")
                deliveries = consumer.receive(10, min(1.0, left))
                if deliveries:
                    consumer.ack(deliveries)  # earlier probes left by a killed check go too
                if any(d.message.headers.get("id") == probe.id for d in deliveries):
                    break
            steps.append(("receive", lap()))
        finally:
            consumer.close()
    finally:
        adapter.close()

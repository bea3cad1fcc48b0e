"""``eventbus worker MODULE[:ATTR]``: run the subscribed handlers of a bus until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from typing import Any

from .._bus import EventBus
from ..observability._logging import configure_logging, remove_logging
from ._common import (
    PROG,
    Failure,
    UsageError,
    hand_over_config,
    load_bus,
    non_negative_int,
    positive_int,
    say,
)


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("worker", parents=[common], help="run the handlers of a bus",
                            description="Import MODULE, take its EventBus ATTR (default 'bus'; "
                            "a callable returning one also works) and run its subscribed "
                            "handlers until Ctrl+C or SIGTERM. The current directory is put on "
                            "sys.path.")
    p.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. shop.billing:bus")
    p.add_argument("--group", "--group-filter", dest="groups", metavar="NAME", action="append",
                   default=[], help="run only this group's handlers; repeatable")
    p.add_argument("--concurrency", type=positive_int, metavar="N",
                   help="consumer threads per group (default: subscription/config)")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one object per line with event_id, correlation_id, group "
                   "(default: text); credentials are masked either way")
    p.add_argument("--metrics-port", type=non_negative_int, metavar="PORT",
                   help="serve Prometheus metrics on http://ADDR:PORT/metrics (needs "
                   "eventbus[prometheus])")
    p.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR",
                   help="address for --metrics-port (default: 127.0.0.1)")
    p.set_defaults(run=cmd_worker, own_logging=True)


def cmd_worker(args: argparse.Namespace) -> int:
    # The module builds its bus with EventBus(), which reads the config through the
    # environment: hand --config/--profile over that way.
    hand_over_config(args)
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(args.log_level, json=args.log_format == "json")
    try:
        return _run_worker(args)
    finally:
        remove_logging(handler)
        root.setLevel(level)


def _run_worker(args: argparse.Namespace) -> int:
    bus = load_bus(args.target)
    bus = _narrow(bus, args.groups, args.concurrency)
    server = _serve_metrics(bus, args.metrics_port, args.metrics_addr)
    groups: dict[str, list[str]] = {}
    for s in bus.subscriptions:
        patterns = groups.setdefault(s.group, [])
        patterns.extend(p for p in s.patterns if p not in patterns)
    described = "; ".join(f"{g} <- {', '.join(ps)}" for g, ps in groups.items())
    say(f"{PROG} worker: {args.target} on {type(bus.adapter).__name__}")
    # bus.run() handles SIGINT/SIGTERM while it runs; these cover the moments
    # around it (after "ready", before run() installs its own), so a stop signal
    # is always graceful. A second signal during close() acts as usual.
    previous = _catch_stop_signals()
    try:
        bus.start()
        say(f"{PROG} worker: ready: {described} (Ctrl+C to stop)")
        bus.run()
    except _StopSignal:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bus.close()
        if server is not None:
            server.shutdown()
    say(f"{PROG} worker: stopped")
    return 0


def _serve_metrics(bus: EventBus, port: int | None, addr: str) -> Any:
    """Prometheus metrics of ``bus`` on ``addr:port`` (None: not asked for)."""
    if port is None:
        return None
    try:
        from ..observability import prometheus
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    prometheus.instrument(bus)
    try:
        server = prometheus.serve(port, addr)
    except OSError as exc:
        raise Failure(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from exc
    say(f"{PROG} worker: metrics on http://{addr}:{server.server_port}/metrics")
    return server


class _StopSignal(Exception):
    """SIGINT or SIGTERM arrived outside bus.run()'s own handlers."""


def _catch_stop_signals() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: object) -> None:
        raise _StopSignal

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _narrow(bus: EventBus, groups: Sequence[str], concurrency: int | None) -> EventBus:
    """A bus on the same adapter with only ``groups``' handlers, at ``concurrency``."""
    if not groups and concurrency is None:
        return bus
    known = list(dict.fromkeys(s.group for s in bus.subscriptions))
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise UsageError(
            f"no group named {unknown[0]!r} in this bus; its groups: {', '.join(known)}"
        )
    narrowed = EventBus(bus.adapter, source=bus.source, retry=bus.retry, config=bus.config,
                        content_mode=bus.content_mode)  # fmt: skip
    narrowed.hooks = bus.hooks  # middleware, publish hooks, metrics
    for s in bus.subscriptions:
        if groups and s.group not in groups:
            continue
        narrowed.subscribe(
            s.patterns,
            s.handler,
            group=s.group,
            retry=s.retry,
            timeout=s.timeout,
            concurrency=concurrency or s.concurrency,
        )
    return narrowed

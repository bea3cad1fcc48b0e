"""``eventbus worker MODULE[:ATTR]``: run the subscribed handlers of a bus until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Sequence
from typing import Any

from .._bus import EventBus
from ..observability._logging import (
    NoSdkTracebacks,
    configure_logging,
    quiet_sdk_loggers,
    remove_logging,
    restore_levels,
)
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

#: Seconds a graceful stop waits for handlers to finish the events in hand.
STOP_TIMEOUT = 30.0


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "worker",
        parents=[common],
        help="run the handlers of a bus",
        description="Import MODULE, take its EventBus ATTR (default 'bus'; "
        "a callable returning one also works) and run its subscribed "
        "handlers until Ctrl+C or SIGTERM. The current directory is put on "
        "sys.path.",
    )
    p.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. shop.billing:bus")
    p.add_argument(
        "--group",
        "--group-filter",
        dest="groups",
        metavar="NAME",
        action="append",
        default=[],
        help="run only this group's handlers; repeatable",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help="consumer threads per group (default: subscription/config)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO",
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one object per line with event_id, correlation_id, group "
        "(default: text); credentials are masked either way",
    )
    p.add_argument(
        "--metrics-port",
        type=non_negative_int,
        metavar="PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics (needs eventbus[prometheus])",
    )
    p.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address for --metrics-port (default: 127.0.0.1)",
    )
    p.set_defaults(run=cmd_worker, own_logging=True)


def cmd_worker(args: argparse.Namespace) -> int:
    # The module builds its bus with EventBus(), which reads the config through the
    # environment: hand --config/--profile over that way.
    hand_over_config(args)
    debug = bool(getattr(args, "debug", False))
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(args.log_level, json=args.log_format == "json")
    # The broker SDKs (pika alone logs 16 INFO lines per start and stop) stay at
    # WARNING unless asked for, and keep their tracebacks for --debug.
    sdk_levels = {} if debug or args.log_level == "DEBUG" else quiet_sdk_loggers()
    no_tracebacks = NoSdkTracebacks()
    if not debug:
        handler.addFilter(no_tracebacks)
    try:
        return _run_worker(args)
    finally:
        remove_logging(handler)
        restore_levels(sdk_levels)
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
    # The first SIGINT/SIGTERM stops gracefully: the events in hand are finished (up
    # to STOP_TIMEOUT seconds), the rest goes back to the broker, the bus closes. A
    # second one exits at once. The handlers only set flags and start threads: an
    # exception raised at a random point of start() could leave the bus half open.
    stopping = threading.Event()
    previous = _on_stop_signals(bus, stopping)
    try:
        bus.start()
        if not stopping.is_set():
            say(f"{PROG} worker: ready: {described} (Ctrl+C to stop)")
            bus.run(install_signal_handlers=False)
    finally:
        try:
            bus.stop(STOP_TIMEOUT)
            bus.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
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


def _on_stop_signals(bus: EventBus, stopping: threading.Event) -> dict[int, Any]:
    """SIGINT/SIGTERM: the first stops ``bus`` (a thread waits for it), a second exits."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def graceful(name: str) -> None:  # not in the handler: it may interrupt a write
        say(
            f"{PROG} worker: {name}: stopping (up to {STOP_TIMEOUT:g}s for handlers to "
            "finish; Ctrl+C again exits at once)"
        )
        bus.stop(STOP_TIMEOUT)

    def stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            os.write(
                2,
                f"\n{PROG} worker: {name} again: exiting now; events in hand are not "
                "acknowledged and come back\n".encode(),
            )
            os._exit(128 + signum)
        stopping.set()
        threading.Thread(target=graceful, args=(name,), name="eventbus-stop", daemon=True).start()

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
    narrowed = EventBus(
        bus.adapter,
        source=bus.source,
        retry=bus.retry,
        config=bus.config,
        content_mode=bus.content_mode,
    )
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

"""The ``eventbus`` command line.

    eventbus publish TYPE [DATA|-] [--key K] [--subject S] [--source S] [--header NAME=VALUE]...
    eventbus worker MODULE[:ATTR] [--group NAME]... [--concurrency N]
    eventbus adapters [--json]
    eventbus check [--timeout SECONDS]
    eventbus log [--limit N] [--after SEQ] [--pattern P] [--json]
    eventbus demo [--orders N] [--keep]
    eventbus tail PATTERN [--json] [--limit N]
    eventbus asyncapi MODULE[:ATTR] [--output FILE] [--title T] [--version V]
    eventbus outbox [--drain] [--timeout SECONDS]
    eventbus dlq list GROUP [--limit N] [--json]
    eventbus dlq show GROUP EVENT_ID
    eventbus dlq replay GROUP [--limit N] [--yes]
    eventbus dlq purge GROUP [--yes]

Global options (before or after the command): ``--config PATH``, ``--profile
NAME``, ``--debug``. Exit codes: 0 ok, 1 runtime failure (broker unreachable,
a handler module that fails to import, the demo lost an event), 2 usage or
config error. A mistake of the user prints ``eventbus: error: <message>`` and
no traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from .. import __version__
from .._bus import EventBus
from .._config import BusConfig, load_config, redact
from .._envelope import Event, Message, decode, encode
from .._errors import (
    AdapterNotFound,
    BrokerError,
    ConfigError,
    DecodeError,
    EncodeError,
    EventBusError,
)
from .._plugins import (
    AdapterSpec,
    adapter_specs,
    create_adapter,
    find_spec,
    load_errors,
    spec_for_url,
)
from ..adapter import Adapter, DeadLetterTools, EventLog
from ..observability._logging import configure_logging, redact_text, remove_logging

__all__ = ["main"]

PROG = "eventbus"
#: The group and topic ``eventbus check`` uses: one fixed group, so repeated checks
#: leave one small group on the broker, never a growing pile.
CHECK_GROUP = "eventbus-check"
CHECK_TOPIC = "eventbus.check"

# Settable event attributes for ``publish --header`` besides free extensions.
_HEADER_ATTRIBUTES = (
    "id", "datacontenttype", "dataschema", "correlationid", "causationid", "traceparent",
)
_HEADER_OPTIONS = {"subject": "--subject", "source": "--source", "partitionkey": "--key",
                   "key": "--key", "type": "TYPE"}
_HEADER_FIXED = ("specversion", "time")


class UsageError(Exception):
    """A wrong command line: printed as one line, exit code 2."""


class Failure(Exception):
    """A runtime failure already explained in one line: exit code 1."""


# -- entry point -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or an argparse usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = bool(getattr(args, "debug", False))
    command: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    if command is not cmd_worker:  # the worker sets up its own logging (--log-level)
        _show_warnings()
    try:
        with _restored_environ():
            return command(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except (UsageError, ConfigError, AdapterNotFound, EncodeError) as exc:
        return _fail(exc, 2, debug)
    except (Failure, EventBusError) as exc:
        return _fail(exc, 1, debug)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it); masks credentials."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(redact_text(self.format(record)), file=sys.stderr)
        except Exception:  # logging must never break the command
            self.handleError(record)


def _show_warnings() -> None:
    """eventbus's own warnings (e.g. "kept in the outbox") on stderr; SDK chatter stays off."""
    logger = logging.getLogger("eventbus")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler(logging.WARNING)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        logger.addHandler(handler)


def _fail(exc: BaseException, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = redact_text(" ".join(str(exc).split())) or type(exc).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


@contextmanager
def _restored_environ() -> Iterator[None]:
    """Commands may set EVENTBUS_* for code they import; undo that when main returns."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("EVENTBUS_")}
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("EVENTBUS_")]:
            if k not in saved:
                del os.environ[k]
        os.environ.update(saved)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    common = _Parser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="config file (default: $EVENTBUS_CONFIG, ./eventbus.toml, "
                        "[tool.eventbus] in ./pyproject.toml)")
    g.add_argument("--profile", metavar="NAME", default=argparse.SUPPRESS,
                   help="profile (default: $EVENTBUS_PROFILE, or the file's 'profile')")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")

    parser: argparse.ArgumentParser = _Parser(
        prog=PROG,
        parents=[common],
        description="One event bus API on RabbitMQ, Kafka, SQS, Azure Service Bus, "
        "or the embedded SQLite broker, chosen by a config file.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. "
        f"'{PROG} COMMAND --help' describes a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("publish", parents=[common], help="publish one event",
                       description="Publish one event to the configured broker.")
    p.add_argument("type", metavar="TYPE", help="event type (the topic), e.g. order.created")
    p.add_argument("data", metavar="DATA", nargs="?", default=None,
                   help="payload as JSON, or '-' to read JSON from stdin (default: null)")
    p.add_argument("--key", help="ordering key (events with one key keep their order)")
    p.add_argument("--subject", help="CloudEvents subject")
    p.add_argument("--source", help="CloudEvents source (default: config 'source' or "
                   "//eventbus/<host>/<pid>)")
    p.add_argument("--header", metavar="NAME=VALUE", action="append", default=[],
                   help="another attribute: correlationid, causationid, traceparent, "
                   "id, dataschema, datacontenttype, or an extension (a-z0-9 names); "
                   "repeatable")
    p.set_defaults(run=cmd_publish)

    p = sub.add_parser("worker", parents=[common], help="run the handlers of a bus",
                       description="Import MODULE, take its EventBus ATTR (default 'bus'; a "
                       "callable returning one also works) and run its subscribed "
                       "handlers until Ctrl+C or SIGTERM. The current directory is put on "
                       "sys.path.")
    p.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. shop.billing:bus")
    p.add_argument("--group", "--group-filter", dest="groups", metavar="NAME", action="append",
                   default=[], help="run only this group's handlers; repeatable")
    p.add_argument("--concurrency", type=_positive_int, metavar="N",
                   help="consumer threads per group (default: subscription/config)")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one object per line with event_id, correlation_id, group "
                   "(default: text); credentials are masked either way")
    p.add_argument("--metrics-port", type=_non_negative_int, metavar="PORT",
                   help="serve Prometheus metrics on http://ADDR:PORT/metrics (needs "
                   "eventbus[prometheus])")
    p.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR",
                   help="address for --metrics-port (default: 127.0.0.1)")
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser("adapters", parents=[common], help="list installed adapters",
                       description="List the installed adapters: version, SDK, URL schemes "
                       "and capabilities.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_adapters)

    p = sub.add_parser("check", parents=[common], help="check config and broker reachability",
                       description="Load the config, connect to the broker, and send one probe "
                       f"event through group {CHECK_GROUP!r} (topic {CHECK_TOPIC!r}). Exit 1 "
                       "with the reason if the broker cannot be reached.")
    p.add_argument("--timeout", type=_positive_float, default=20.0, metavar="SECONDS",
                   help="give up after this long (default: 20)")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("log", parents=[common], help="list the SQLite broker's event log",
                       description="List the events the embedded SQLite broker retained, "
                       "oldest first.")
    p.add_argument("--limit", type=_positive_int, default=100, metavar="N",
                   help="at most N events (default: 100)")
    p.add_argument("--after", type=_non_negative_int, default=0, metavar="SEQ",
                   help="only events after this sequence number (for paging)")
    p.add_argument("--pattern", metavar="P", help="only types matching P, e.g. 'order.#'")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=cmd_log)

    p = sub.add_parser("demo", parents=[common], help="run the orders/billing demo",
                       description="Run the orders/billing example as separate processes on "
                       "a temporary SQLite file: billing is stopped while orders keeps "
                       "publishing, then catches up with nothing lost.")
    p.add_argument("--orders", type=_positive_int, default=12, metavar="N",
                   help="orders to publish in all (default: 12)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary broker file and print how to inspect it")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("tail", parents=[common], help="watch events live",
                       description="Show every event whose type matches PATTERN as it is "
                       "published, through a group of its own (removed afterwards where the "
                       "adapter can remove groups; see docs/cli.md). Other groups are not "
                       "disturbed. Ctrl+C stops.")
    p.add_argument("pattern", metavar="PATTERN", help="e.g. 'order.*' or '#' for everything")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="stop after N events")
    p.set_defaults(run=cmd_tail)

    p = sub.add_parser("asyncapi", parents=[common], help="write the AsyncAPI 3.0 document",
                       description="Import MODULE, take its EventBus ATTR (default 'bus') and "
                       "write an AsyncAPI 3.0 document (JSON) of its broker, groups and "
                       "handlers.")
    p.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. shop.billing:bus")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--title", help="info.title (default: the module name)")
    p.add_argument("--version", dest="doc_version", default="1.0.0", metavar="V",
                   help="info.version (default: 1.0.0)")
    p.set_defaults(run=cmd_asyncapi)

    p = sub.add_parser("outbox", parents=[common], help="show or drain the local outbox",
                       description="Show how many events wait in the local outbox (kept while "
                       "the broker was unreachable); --drain sends them now, with progress.")
    p.add_argument("--drain", action="store_true", help="send the waiting events now")
    p.add_argument("--timeout", type=_positive_float, default=60.0, metavar="SECONDS",
                   help="give up draining after this long (default: 60)")
    p.set_defaults(run=cmd_outbox)

    p = sub.add_parser("dlq", parents=[common], help="list, show, replay or purge dead letters",
                       description="The dead letters of a group: events its handlers gave up "
                       "on, or that could not be decoded, with the reason.")
    dlq = p.add_subparsers(title="actions", metavar="ACTION", parser_class=_Parser)
    p.set_defaults(run=_dlq_no_action)
    d = dlq.add_parser("list", parents=[common], help="list a group's dead letters",
                       description="List the dead letters of GROUP, oldest first.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--limit", type=_positive_int, default=100, metavar="N",
                   help="at most N (default: 100)")
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d.set_defaults(run=cmd_dlq_list)
    d = dlq.add_parser("show", parents=[common], help="show one dead letter in full",
                       description="Show the dead letter of GROUP whose event id is EVENT_ID: "
                       "reason, attempts, attributes and data (JSON).")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("event_id", metavar="EVENT_ID")
    d.set_defaults(run=cmd_dlq_show)
    d = dlq.add_parser("replay", parents=[common], help="send dead letters back to their group",
                       description="Move the dead letters of GROUP back to its queue, oldest "
                       "first; its handlers get them again with attempt 1. Asks first unless "
                       "--yes; without a terminal to ask on, --yes is required.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--limit", type=_positive_int, metavar="N",
                   help="at most N (default: all there are now)")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(run=cmd_dlq_replay)
    d = dlq.add_parser("purge", parents=[common], help="delete a group's dead letters",
                       description="Delete every dead letter of GROUP, for good. Asks first "
                       "unless --yes; without a terminal to ask on, --yes is required.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(run=cmd_dlq_purge)
    return parser


def _number(
    kind: Callable[[str], Any], noun: str, ok: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses with ``kind`` and checks ``ok`` (one message shape)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text}")
        return value

    return parse


_positive_int = _number(int, "a whole number", lambda v: v >= 1, "at least 1")
_non_negative_int = _number(int, "a whole number", lambda v: v >= 0, "0 or more")
_positive_float = _number(float, "a number", lambda v: v > 0, "more than 0")


# -- shared helpers --------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> BusConfig:
    return load_config(getattr(args, "config", None), getattr(args, "profile", None))


def _spec(cfg: BusConfig) -> AdapterSpec:
    if cfg.broker:
        return find_spec(cfg.broker)
    return spec_for_url(cfg.url or "sqlite:///eventbus.db")


def _where(cfg: BusConfig, spec: AdapterSpec) -> str:
    url = cfg.url or spec.default_url or ""
    return f"{spec.name} at {redact(url)}" if url else spec.name


# -- publish ---------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    data = _read_data(args.data)
    attributes: dict[str, Any] = {"key": args.key, "subject": args.subject}
    extensions: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--header {item!r}: write NAME=VALUE, e.g. correlationid=abc123")
        if name in _HEADER_OPTIONS:
            raise UsageError(f"--header {name}=...: use {_HEADER_OPTIONS[name]} instead")
        if name in _HEADER_FIXED:
            raise UsageError(f"--header {name}=...: {name} is set by eventbus")
        if name in _HEADER_ATTRIBUTES:
            attributes[name] = value
        else:
            extensions[name] = value
    if extensions:
        attributes["extensions"] = extensions
    cfg = _config(args)
    spec = _spec(cfg)
    with EventBus(config=cfg, source=args.source) as bus:
        result = bus.publish(args.type, data, **attributes)
    print(f"published {args.type} id={result.id} to {_where(cfg, spec)} ({result.outcome})")
    return 0


def _read_data(text: str | None) -> Any:
    if text is None:
        return None
    origin = "DATA"
    if text == "-":
        origin = "stdin"
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"{origin} is not valid JSON ({exc}); quote a string as JSON, e.g. '\"hello\"'"
        ) from None


# -- worker -------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    # The module builds its bus with EventBus(), which reads the config through the
    # environment: hand --config/--profile over that way.
    if getattr(args, "config", None):
        os.environ["EVENTBUS_CONFIG"] = os.path.abspath(args.config)
    if getattr(args, "profile", None):
        os.environ["EVENTBUS_PROFILE"] = args.profile
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
    _say(f"{PROG} worker: {args.target} on {type(bus.adapter).__name__}")
    # bus.run() handles SIGINT/SIGTERM while it runs; these cover the moments
    # around it (after "ready", before run() installs its own), so a stop signal
    # is always graceful. A second signal during close() acts as usual.
    previous = _catch_stop_signals()
    try:
        bus.start()
        _say(f"{PROG} worker: ready: {described} (Ctrl+C to stop)")
        bus.run()
    except _StopSignal:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bus.close()
        if server is not None:
            server.shutdown()
    _say(f"{PROG} worker: stopped")
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
    _say(f"{PROG} worker: metrics on http://{addr}:{server.server_port}/metrics")
    return server


class _StopSignal(Exception):
    """SIGINT or SIGTERM arrived outside bus.run()'s own handlers."""


def _catch_stop_signals() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: object) -> None:
        raise _StopSignal

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _say(line: str) -> None:
    """One whole line to stderr in one write, so it never interleaves with handler output."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def load_bus(target: str) -> EventBus:
    """The :class:`EventBus` named by ``MODULE[:ATTR]`` (ATTR defaults to ``bus``).

    ATTR may be a dotted path, and may name a callable that returns the bus (a
    factory). The current directory goes first on ``sys.path``, as uvicorn does.
    """
    module_name, _, attr = target.partition(":")
    module_name = module_name.strip()
    if not module_name or (":" in target and not attr.strip()):
        raise UsageError(f"worker {target!r}: write MODULE or MODULE:ATTR, e.g. shop.billing:bus")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(
                f"cannot import {module_name!r}: no module named {exc.name!r} (run the worker "
                "from the directory that contains it, or put that directory on PYTHONPATH)"
            ) from exc
        raise Failure(_user_code_error(f"importing {module_name!r} failed", exc)) from exc
    except EventBusError:
        raise
    except Exception as exc:
        raise Failure(_user_code_error(f"importing {module_name!r} failed", exc)) from exc
    name = attr.strip() or "bus"
    obj: Any = module
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            hint = "" if attr else f" (name it: {module_name}:ATTR)"
            raise UsageError(f"module {module_name!r} has no attribute {name!r}{hint}") from None
    if not isinstance(obj, EventBus) and callable(obj):
        try:
            obj = obj()
        except EventBusError:
            raise
        except Exception as exc:
            raise Failure(_user_code_error(f"calling {target}() failed", exc)) from exc
    if not isinstance(obj, EventBus):
        raise UsageError(f"{module_name}:{name} is a {type(obj).__name__}, not an EventBus")
    if not obj.subscriptions:
        raise UsageError(f"{module_name}:{name} has no handlers; subscribe some with "
                         "@bus.subscribe(pattern, group=...)")
    return obj


def _user_code_error(what: str, exc: BaseException) -> str:
    """Print the traceback of the user's own code (they need it) and return a summary."""
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return f"{what}: {type(exc).__name__}: {exc} (traceback above)"


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


# -- adapters ---------------------------------------------------------------------------------


def _adapter_row(spec: AdapterSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "schemes": list(spec.schemes),
        "default_url": spec.default_url,
        "sdk": spec.sdk,
        "sdk_installed": spec.sdk_installed(),
        "extra": spec.extra,
        "capabilities": spec.capabilities.as_dict(),
    }


def cmd_adapters(args: argparse.Namespace) -> int:
    rows = [_adapter_row(s) for _, s in sorted(adapter_specs().items())]
    errors = load_errors()
    if args.json:
        print(json.dumps({"adapters": rows, "load_errors": errors}, indent=2))
        return 0
    for row in rows:
        if row["sdk"] is None:
            sdk = "built in"
        elif row["sdk_installed"]:
            sdk = f"SDK {row['sdk']} installed"
        else:
            extra = f": pip install 'eventbus[{row['extra']}]'" if row["extra"] else ""
            sdk = f"SDK {row['sdk']} NOT installed{extra}"
        print(f"{row['name']} {row['version']} ({sdk})")
        if row["description"]:
            print(f"  {row['description']}")
        schemes = ", ".join(f"{s}://" for s in row["schemes"]) or "-"
        print(f"  schemes:      {schemes}" + (f"  default: {row['default_url']}"
                                              if row["default_url"] else ""))
        print(f"  capabilities: {_capability_summary(row['capabilities'])}")
    for name, error in errors.items():
        print(f"{PROG}: warning: plugin {name!r} failed to load: {error}", file=sys.stderr)
    return 0


def _capability_summary(caps: dict[str, Any]) -> str:
    flags = [k for k, v in caps.items() if v is True]
    limits = [f"lease {caps['lease_seconds']:g}s"]
    if caps.get("max_message_size"):
        limits.append(f"max message {_size(caps['max_message_size'])}")
    if caps.get("max_header_count"):
        limits.append(f"max {caps['max_header_count']} headers")
    if caps.get("max_header_size"):
        limits.append(f"max headers {_size(caps['max_header_size'])}")
    return " ".join(flags) + "; " + ", ".join(limits)


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} B"


# -- check ----------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    where = cfg.file or "none found; built-in defaults"
    print(f"config:   {where}" + (f" (profile {cfg.profile!r})" if cfg.profile else ""))
    spec = _spec(cfg)
    url = cfg.url or spec.default_url or ""
    sdk = "" if spec.sdk is None else f" (SDK {spec.sdk})"
    print(f"broker:   {spec.name} {spec.version}{sdk}")
    print(f"url:      {redact(url)}")
    if not spec.sdk_installed():
        extra = f"pip install 'eventbus[{spec.extra}]'" if spec.extra else f"install {spec.sdk}"
        raise AdapterNotFound(f"the {spec.name!r} adapter needs {spec.sdk!r}: {extra}")

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
            raise Failure(f"{_where(cfg, spec)}: no answer within {args.timeout:g}s "
                          f"(stuck at: {_next_step(steps)})")
    _show_steps(steps, shown)
    error = outcome.get("error")
    if error is not None:
        if isinstance(error, (ConfigError, AdapterNotFound)):
            raise error
        if isinstance(error, EventBusError):
            raise Failure(f"{_where(cfg, spec)}: {_next_step(steps)} failed: {error}") from error
        raise error
    note = "" if spec.capabilities.cross_process else " (in this process only)"
    print(f"ok: {_where(cfg, spec)} takes and delivers events{note}")
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


# -- log ---------------------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace) -> int:
    cfg = _config(args)
    spec = _spec(cfg)
    if spec.name != "sqlite":
        raise UsageError(
            f"the event log is a feature of the embedded SQLite broker; this config uses "
            f"{spec.name!r} ({redact(cfg.url or spec.default_url or '')}). Use your broker's "
            "own tools, or point --config/EVENTBUS_URL at a sqlite:/// file"
        )
    url = cfg.url or spec.default_url or "sqlite:///eventbus.db"
    path = _sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise Failure(f"no broker file at {path} (from {url}); nothing was published there yet")
    adapter = create_adapter(cfg.broker, cfg.url, cfg.options)
    try:
        if not isinstance(adapter, EventLog):
            raise UsageError(f"the {spec.name!r} adapter has no event log")
        entries = adapter.log(limit=args.limit, after=args.after, pattern=args.pattern)
    finally:
        adapter.close()
    if args.json:
        for entry in entries:
            print(json.dumps(_log_record(entry), ensure_ascii=False))
    else:
        _print_log(entries, args.after)
    if len(entries) == args.limit:
        print(f"(first {args.limit}; more with --after {entries[-1].seq})", file=sys.stderr)
    return 0


def _print_log(entries: Sequence[Any], after: int) -> None:
    rows = [
        (str(e.seq), _iso(e.published_at), e.message.topic, e.message.key or "-",
         e.message.headers.get("id", "-"), _preview(e.message))
        for e in entries
    ]
    if not rows:
        print("(no events)" if not after else f"(no events after {after})")
        return
    header = ("SEQ", "PUBLISHED (UTC)", "TYPE", "KEY", "ID", "DATA")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])


def _sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///rel`` or ``sqlite:////abs`` URL (None if not a plain file)."""
    parts = urlsplit(url)
    if parts.netloc:
        return None
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    return path if path and path != ":memory:" else None


def _iso(ts: float) -> str:
    t = datetime.fromtimestamp(ts, timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def _preview(message: Message, width: int = 60) -> str:
    try:
        text = message.body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(message.body)} bytes>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _log_record(entry: Any) -> dict[str, Any]:
    message: Message = entry.message
    record: dict[str, Any] = {
        "seq": entry.seq,
        "published_at": datetime.fromtimestamp(entry.published_at, timezone.utc)
        .isoformat()
        .replace("+00:00", "Z"),
        "topic": message.topic,
        "key": message.key,
        "attributes": dict(message.headers),
    }
    try:
        data = decode(message).data
    except DecodeError as exc:
        record["decode_error"] = str(exc)
        data = message.body
    if isinstance(data, bytes):
        import base64

        record["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        record["data"] = data
    return record


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """Progress of long work on stderr: one line rewritten in place on a terminal,
    else a plain line at most every ``every`` seconds (logs stay readable)."""

    def __init__(self, what: str, total: int | None = None, every: float = 2.0) -> None:
        self.what = what
        self.total = total
        self.every = every
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = sys.stderr.isatty()
        self._width = 0

    def _text(self, done: int, note: str) -> str:
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total:
            pct = min(100.0, 100.0 * done / self.total)
            body = f"{self.what}: {done}/{self.total} ({pct:.0f}%)"
        else:
            body = f"{self.what}: {done}"
        body += f", {rate:.0f}/s, {elapsed:.1f}s"
        return f"{body} {note}".rstrip()

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if self._tty:
            if now - self._last < 0.1:
                return
            text = self._text(done, note)
            sys.stderr.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            if now - self._last < self.every:
                return
            sys.stderr.write(self._text(done, note) + "\n")
        sys.stderr.flush()
        self._last = now

    def finish(self, line: str) -> None:
        if self._tty and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


# -- outbox -----------------------------------------------------------------------------------


def cmd_outbox(args: argparse.Namespace) -> int:
    cfg = _config(args)
    spec = _spec(cfg)
    settings = cfg.publish_settings
    if not settings.outbox:
        print("the outbox is off for this config (publish.outbox = false); nothing waits")
        return 0
    if not os.path.exists(settings.outbox_path):
        print(f"outbox {settings.outbox_path}: no file; nothing waits for {_where(cfg, spec)}")
        return 0
    with EventBus(config=cfg) as bus:
        waiting = bus.outbox_pending()
        print(f"outbox {settings.outbox_path}: {waiting} event(s) wait for {_where(cfg, spec)}")
        if not args.drain or not waiting:
            return 0
        progress = Progress("draining the outbox", total=waiting)
        deadline = time.monotonic() + args.timeout
        left = waiting
        while left and time.monotonic() < deadline:
            bus.flush(min(0.5, max(0.0, deadline - time.monotonic())))
            left = bus.outbox_pending()
            note = f"(breaker {bus.breaker.state})" if bus.breaker.state != "closed" else ""
            progress.update(waiting - left, note)
        if left:
            progress.finish(f"drained {waiting - left} of {waiting}; {left} still wait")
            raise Failure(f"{_where(cfg, spec)} did not take {left} event(s) within "
                          f"{args.timeout:g}s (breaker {bus.breaker.state}); they stay in the "
                          "outbox and are sent when a bus on this file finds the broker")
        progress.finish(f"drained {waiting} event(s) to {_where(cfg, spec)}")
    return 0


# -- dlq ----------------------------------------------------------------------------------------

#: How many dead letters ``dlq show`` and ``dlq replay`` look through (and count) at most.
DLQ_SCAN = 10_000
#: Dead letters moved per adapter call by ``dlq replay`` (progress between calls).
REPLAY_BATCH = 100


def _dlq_no_action(args: argparse.Namespace) -> int:
    raise UsageError("dlq: name an action: list, show, replay or purge ('eventbus dlq --help')")


@contextmanager
def _dlq_adapter(args: argparse.Namespace) -> Iterator[tuple[DeadLetterTools, str]]:
    """The configured adapter (closed afterwards) and where it points, for ``dlq`` actions."""
    cfg = _config(args)
    spec = _spec(cfg)
    if not spec.capabilities.cross_process:
        raise UsageError(
            f"the {spec.name!r} broker lives inside one process, so its dead letters are not "
            "reachable from another; use the bus's adapter in that process"
        )
    adapter = create_adapter(cfg.broker, cfg.url, cfg.options)
    try:
        if not isinstance(adapter, DeadLetterTools):
            raise UsageError(f"the {spec.name!r} adapter has no dead-letter tooling")
        yield adapter, _where(cfg, spec)
    finally:
        adapter.close()


def _dead_record(delivery: Any, reason: str) -> dict[str, Any]:
    message: Message = delivery.message
    record: dict[str, Any] = {
        "id": message.headers.get("id"),
        "topic": message.topic,
        "key": message.key,
        "attempt": delivery.attempt,
        "reason": reason,
        "attributes": dict(message.headers),
    }
    try:
        data = decode(message).data
    except DecodeError as exc:
        record["decode_error"] = str(exc)
        data = message.body
    if isinstance(data, bytes):
        import base64

        record["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        record["data"] = data
    return record


def _confirm(question: str, yes: bool) -> bool:
    """True if ``--yes`` or the user says yes; no terminal and no ``--yes``: a usage error."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: refusing without --yes (no terminal to ask on)")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_dlq_list(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, where):
        letters = adapter.dead_letters(args.group, args.limit)
    if args.json:
        for d, reason in letters:
            print(json.dumps(_dead_record(d, reason), ensure_ascii=False))
    elif not letters:
        print(f"(no dead letters in group {args.group!r} on {where})")
    else:
        rows = [(d.message.headers.get("id", "-"), d.message.topic or "-", str(d.attempt),
                 " ".join(reason.split())) for d, reason in letters]  # fmt: skip
        header = ("ID", "TYPE", "ATTEMPT", "REASON")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        for r in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    if len(letters) == args.limit:
        print(f"(first {args.limit}; more with --limit)", file=sys.stderr)
    return 0


def cmd_dlq_show(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, where):
        letters = adapter.dead_letters(args.group, DLQ_SCAN)
    for d, reason in letters:
        if d.message.headers.get("id") == args.event_id:
            print(json.dumps(_dead_record(d, reason), ensure_ascii=False, indent=2))
            return 0
    looked = f"the first {DLQ_SCAN} of " if len(letters) == DLQ_SCAN else ""
    raise Failure(f"no dead letter with id {args.event_id!r} in {looked}group "
                  f"{args.group!r} on {where} ({len(letters)} there)")


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, where):
        there = len(adapter.dead_letters(args.group, min(args.limit or DLQ_SCAN, DLQ_SCAN)))
        if not there:
            print(f"no dead letters in group {args.group!r} on {where}; nothing to replay")
            return 0
        # Bounded by what is there now: a handler that fails again must not loop us.
        target = min(args.limit, there) if args.limit else there
        if not _confirm(f"replay {target} dead letter(s) of group {args.group!r} on {where}?",
                        args.yes):  # fmt: skip
            print("nothing replayed", file=sys.stderr)
            return 1
        progress = Progress(f"replaying dead letters of {args.group!r}", total=target)
        done = 0
        while done < target:
            asked = min(REPLAY_BATCH, target - done)
            moved = adapter.replay_dead_letters(args.group, asked)
            done += moved
            progress.update(done)
            if moved < asked:
                break
        progress.finish(f"replayed {done} dead letter(s) of group {args.group!r} on {where}")
    if there == DLQ_SCAN and not args.limit:
        print(f"(replayed at most {DLQ_SCAN} in one go; run again for the rest)", file=sys.stderr)
    return 0


def cmd_dlq_purge(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, where):
        if not _confirm(f"delete every dead letter of group {args.group!r} on {where}, for good?",
                        args.yes):  # fmt: skip
            print("nothing deleted", file=sys.stderr)
            return 1
        purged = adapter.purge_dead_letters(args.group)
    print(f"purged {purged} dead letter(s) of group {args.group!r} on {where}")
    return 0


# -- tail ---------------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:
    from .._routing import validate_pattern
    from ..observability._tail import can_delete_groups, format_line, json_record, tail

    try:
        validate_pattern(args.pattern)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"pattern {args.pattern!r}: {exc}") from None
    cfg = _config(args)
    spec = _spec(cfg)
    if not spec.capabilities.cross_process:
        raise UsageError(
            f"the {spec.name!r} broker lives inside one process, so a tail in another process "
            "sees nothing; tail a broker that processes share (sqlite, rabbitmq, ...)"
        )
    adapter = create_adapter(cfg.broker, cfg.url, cfg.options)
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())

    def ready(group: str) -> None:
        kept = "" if can_delete_groups(adapter) else " (kept for the next tail: this adapter " \
            "cannot remove groups)"
        _say(f"{PROG} tail: {args.pattern!r} on {_where(cfg, spec)} through group "
             f"{group!r}{kept}; Ctrl+C stops")

    def show(item: Any) -> None:
        if args.json:
            line = json.dumps(json_record(item), ensure_ascii=False, default=str)
        else:
            line = format_line(item)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        count, group, removed = tail(adapter, args.pattern, show, limit=args.limit, stop=stop,
                                     on_ready=ready)  # fmt: skip
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        adapter.close()
    end = f"group {group!r} removed" if removed else f"group {group!r} left on the broker"
    _say(f"{PROG} tail: {count} event(s); {end}")
    return 0


# -- asyncapi -----------------------------------------------------------------------------------


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from ..observability._asyncapi import asyncapi_document

    if getattr(args, "config", None):
        os.environ["EVENTBUS_CONFIG"] = os.path.abspath(args.config)
    if getattr(args, "profile", None):
        os.environ["EVENTBUS_PROFILE"] = args.profile
    bus = load_bus(args.target)
    try:
        title = args.title or args.target.partition(":")[0]
        doc = asyncapi_document(bus, title=title, version=args.doc_version)
    finally:
        bus.close()
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise Failure(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        _say(f"{PROG} asyncapi: wrote {args.output} ({len(doc['operations'])} operation(s), "
             f"{len(doc['channels'])} channel(s))")
    else:
        sys.stdout.write(text)
    return 0


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return int(run_demo(orders=args.orders, keep=args.keep))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

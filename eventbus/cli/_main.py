"""The ``eventbus`` command line: the parser, ``main``, exit codes and error handling.

    eventbus publish TYPE [DATA|-] [--key K] [--subject S] [--source S] [--header NAME=VALUE]...
                     [--no-outbox]
    eventbus worker MODULE[:ATTR] [--group NAME]... [--concurrency N]
    eventbus adapters [--json]
    eventbus check [--timeout SECONDS]
    eventbus log [--limit N] [--after SEQ] [--pattern P] [--json]
    eventbus demo [--orders N] [--keep]
    eventbus tail PATTERN [--json] [--limit N]
    eventbus asyncapi MODULE[:ATTR] [--output FILE] [--title T] [--version V]
    eventbus outbox [--drain] [--timeout SECONDS]
    eventbus dlq list [GROUP] [--limit N] [--json]
    eventbus dlq show GROUP EVENT_ID|#N|--index N
    eventbus dlq replay GROUP [--limit N] [--yes]
    eventbus dlq purge GROUP [--yes]

Each command lives in a module of its own (``_publish.py``, ``_worker.py``, ...)
whose ``register(commands, common)`` adds its subparser; this module only
assembles them. Global options (before or after the command): ``--config
PATH``, ``--profile NAME``, ``--debug``. Exit codes: 0 ok, 1 runtime failure
(broker unreachable or refusing, a handler module that fails to import, the
demo lost an event), 2 usage or config error (a URL or option the adapter
rejects too), 3 ``publish`` kept the event in the outbox, not yet delivered.
A mistake of the user prints ``eventbus: error: <message>`` and no traceback;
``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from .. import __version__
from .._errors import AdapterNotFound, ConfigError, EncodeError, EventBusError
from ..observability._logging import redact_text
from . import (
    _adapters,
    _asyncapi,
    _check,
    _console,
    _demo,
    _dlq,
    _log,
    _outbox,
    _publish,
    _schema,
    _tail,
    _worker,
)
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    Failure,
    Parser,
    UsageError,
    print_traceback,
    settings_origin,
)

__all__ = ["build_parser", "main"]

#: The command modules, in the order ``eventbus --help`` lists them.
COMMANDS = (
    _publish,
    _worker,
    _adapters,
    _check,
    _log,
    _demo,
    _tail,
    _asyncapi,
    _schema,
    _outbox,
    _dlq,
    _console,
)


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
        return EXIT_USAGE
    if not getattr(args, "own_logging", False):  # the worker sets up its own (--log-level)
        _show_warnings()
    try:
        with _restored_environ():
            return command(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        return _fail(exc, EXIT_USAGE, debug, settings_origin(args, str(exc)))
    except ValueError as exc:  # a settings value an adapter rejects without a ConfigError
        return _fail(exc, EXIT_USAGE, debug, settings_origin(args, str(exc)))
    except (UsageError, AdapterNotFound, EncodeError) as exc:
        return _fail(exc, EXIT_USAGE, debug)
    except (Failure, EventBusError) as exc:
        return _fail(exc, EXIT_FAILURE, debug)


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


def _fail(exc: BaseException, code: int, debug: bool, origin: str = "") -> int:
    if debug:
        print_traceback(exc)
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ValueError):
        message = f"invalid setting: {message}"
    print(f"{PROG}: error: {redact_text(message + origin)}", file=sys.stderr)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    common = Parser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $EVENTBUS_CONFIG, ./eventbus.toml, "
        "[tool.eventbus] in ./pyproject.toml)",
    )
    g.add_argument(
        "--profile",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="profile (default: $EVENTBUS_PROFILE, or the file's 'profile')",
    )
    g.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )

    parser: argparse.ArgumentParser = Parser(
        prog=PROG,
        parents=[common],
        description="One event bus API on RabbitMQ, Kafka, SQS, Azure Service Bus, "
        "or the embedded SQLite broker, chosen by a config file.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 publish: "
        "kept in the local outbox, not yet delivered. "
        f"'{PROG} COMMAND --help' describes a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.register(commands, common)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

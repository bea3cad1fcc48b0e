"""What the commands share: errors, argument types, config and adapter lookup, output.

Every command module has a ``register(commands, common)`` that adds its subparser
to ``commands`` (with ``common``, the global options, as a parent) and sets
``run`` to the function that runs it (``args -> exit code``).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

from .._bus import EventBus
from .._config import BusConfig, load_config, redact
from .._envelope import Message, decode
from .._errors import DecodeError, EventBusError
from .._plugins import AdapterSpec, create_adapter, find_spec, spec_for_url
from ..adapter import Adapter
from ..observability._logging import redact_text

PROG = "eventbus"

#: Exit codes (docs/cli.md has the table).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: ``publish``: the broker did not take the event now; it waits in the local outbox.
EXIT_KEPT = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A wrong command line: printed as one line, exit code 2."""


class Failure(Exception):
    """A runtime failure already explained in one line: exit code 1."""


class Parser(argparse.ArgumentParser):
    """Usage errors as one ``eventbus ...: error: ...`` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


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


positive_int = _number(int, "a whole number", lambda v: v >= 1, "at least 1")
non_negative_int = _number(int, "a whole number", lambda v: v >= 0, "0 or more")
positive_float = _number(float, "a number", lambda v: v > 0, "more than 0")


# -- config and adapter -------------------------------------------------------------------


def config(args: argparse.Namespace) -> BusConfig:
    cfg = load_config(getattr(args, "config", None), getattr(args, "profile", None))
    args.loaded_config = cfg  # for settings_origin() if the adapter rejects a setting
    return cfg


def settings_origin(args: argparse.Namespace, message: str) -> str:
    """Where the broker settings an error is about came from (``""`` if it says already)."""
    cfg: BusConfig | None = getattr(args, "loaded_config", None)
    if cfg is None or (cfg.file and cfg.file in message):
        return ""
    if os.environ.get("EVENTBUS_URL"):
        url = "EVENTBUS_URL"
    elif cfg.file:
        url = f"key 'url' of {cfg.file}" + (f" (profile {cfg.profile!r})" if cfg.profile else "")
    else:
        url = "the built-in default"
    options = f", the options from [options] of {cfg.file}" if cfg.options and cfg.file else ""
    return f" (the broker URL comes from {url}{options})"


def spec(cfg: BusConfig) -> AdapterSpec:
    if cfg.broker:
        return find_spec(cfg.broker)
    return spec_for_url(cfg.url or "sqlite:///eventbus.db")


def where(cfg: BusConfig, spec: AdapterSpec) -> str:
    url = cfg.url or spec.default_url or ""
    return f"{spec.name} at {redact(url)}" if url else spec.name


def shared_adapter(args: argparse.Namespace, alone: str) -> tuple[BusConfig, AdapterSpec, Adapter]:
    """The config, spec and a new adapter of a broker other processes share.

    ``alone`` ends the usage error for an in-process broker (``memory://``).
    """
    cfg = config(args)
    found = spec(cfg)
    if not found.capabilities.cross_process:
        raise UsageError(f"the {found.name!r} broker lives inside one process, so {alone}")
    return cfg, found, create_adapter(cfg.broker, cfg.url, cfg.options)


def hand_over_config(args: argparse.Namespace) -> None:
    """--config/--profile for code that builds its bus with ``EventBus()`` (the environment)."""
    if getattr(args, "config", None):
        os.environ["EVENTBUS_CONFIG"] = os.path.abspath(args.config)
    if getattr(args, "profile", None):
        os.environ["EVENTBUS_PROFILE"] = args.profile


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
        raise UsageError(
            f"{module_name}:{name} has no handlers; subscribe some with "
            "@bus.subscribe(pattern, group=...)"
        )
    return obj


def print_traceback(exc: BaseException) -> None:
    """``exc``'s traceback on stderr, credentials masked (source lines may hold URLs)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(redact_text(text))
    sys.stderr.flush()


def _user_code_error(what: str, exc: BaseException) -> str:
    """Print the traceback of the user's own code (they need it) and return a summary."""
    print_traceback(exc)
    return f"{what}: {type(exc).__name__}: {exc} (traceback above)"


# -- output -------------------------------------------------------------------------------


def say(line: str) -> None:
    """One whole line to stderr in one write, so it never interleaves with handler output."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one is not padded (free text)."""
    last = len(header) - 1
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(last)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:last], widths, strict=True)) + "  " + r[last])


def iso(ts: float) -> str:
    t = datetime.fromtimestamp(ts, timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def preview(message: Message, width: int = 60) -> str:
    try:
        text = message.body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(message.body)} bytes>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def add_data(record: dict[str, Any], message: Message) -> dict[str, Any]:
    """``record`` with the event's ``data`` (or ``data_base64``, and ``decode_error``)."""
    try:
        data = decode(message).data
    except DecodeError as exc:
        record["decode_error"] = str(exc)
        data = message.body
    if isinstance(data, bytes):
        record["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        record["data"] = data
    return record


def confirm(question: str, yes: bool) -> bool:
    """True if ``--yes`` or the user says yes; no terminal and no ``--yes``: a usage error."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: refusing without --yes (no terminal to ask on)")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


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

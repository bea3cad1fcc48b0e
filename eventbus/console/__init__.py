"""``eventbus console``: a local web page to see and repair the bus (``docs/console.md``).

Groups with their counts and charts, dead letters (look, replay, purge), the
local outbox (drain), the SQLite event log (search), a live tail and the
app's AsyncAPI document, for whichever broker the config names; what an
adapter cannot show is said on the page. Needs the ``console`` extra
(``pip install 'eventbus[console]'``: Starlette and uvicorn).

    serve(config, host="127.0.0.1", port=8642, token=None, bus=None, groups=())
    main(argv)  # the command line: python -m eventbus.console --help

Binds to 127.0.0.1 by default; replay, purge and drain need the token printed
at startup (or ``--token`` / ``$EVENTBUS_CONSOLE_TOKEN`` / ``token`` in the config
file's ``[console]`` table, e.g. ``token = "${CONSOLE_TOKEN}"``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._bus import EventBus
from .._config import BusConfig, load_config
from .._errors import AdapterNotFound, ConfigError, EventBusError
from ..observability import redact_text

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ._state import Console

__all__ = ["DEFAULT_PORT", "build_app", "main", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642
TOKEN_ENV = "EVENTBUS_CONSOLE_TOKEN"  # noqa: S105 - the variable's name, not a token


def _require_stack() -> None:
    """Starlette and uvicorn, or AdapterNotFound (the CLI's "install this" error, exit 2)."""
    for module in ("starlette", "uvicorn"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise AdapterNotFound(
                f"eventbus console needs {module!r}, which is not installed: "
                "pip install 'eventbus[console]'"
            ) from exc


def build_app(
    config: BusConfig | None = None,
    *,
    token: str,
    bus: EventBus | None = None,
    groups: Sequence[str] = (),
    hosts: Sequence[str] = (),
    sample_every: float = 5.0,
    handlers_here: bool = True,
) -> tuple[Starlette, Console]:
    """The console's ASGI app and its :class:`Console` (closed when the app shuts down).

    ``bus``: an app's bus (its adapter is used, and its subscriptions and AsyncAPI
    document are shown); else an adapter is made from ``config`` (default: the
    config file found as ``EventBus()`` finds it). ``groups``: more groups to show
    on adapters that cannot list theirs. ``hosts``: Host names to answer besides
    the loopback ones. ``handlers_here``: ``bus`` runs its handlers in this process
    (then the charts count what they finish, on brokers without an event log).
    """
    _require_stack()
    from ._app import create_app
    from ._state import Console

    if config is None and bus is None:
        config = load_config()
    console = Console(
        config or BusConfig(),
        bus=bus,
        groups=groups,
        sample_every=sample_every,
        handlers_here=handlers_here,
    )
    loopback = ("127.0.0.1", "localhost", "::1", "[::1]")
    app = create_app(
        console, token, hosts=tuple(dict.fromkeys([*loopback, *hosts])), on_close=console.close
    )
    console.start_sampling()
    return app, console


def serve(
    config: BusConfig | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    bus: EventBus | None = None,
    groups: Sequence[str] = (),
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    sample_every: float = 5.0,
    handlers_here: bool = True,
) -> None:
    """Run the console until Ctrl+C (or ``stop`` is set); blocks.

    ``token`` (default: ``$EVENTBUS_CONSOLE_TOKEN``, else a new random one) guards
    replay, purge and drain. ``on_ready(url)`` gets the URL with the token once the
    server listens (default: print it to stderr). ``port=0`` picks a free port.
    ``sample_every``: seconds between the charts' samples. ``handlers_here=False``: ``bus``
    only describes the app (``--app``); its handlers run elsewhere.
    """
    _require_stack()
    import uvicorn

    token = token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(18)
    sock = _listen(host, port)  # before anything starts: a taken port is a clean error
    bound = sock.getsockname()[1]
    hosts = () if host in ("127.0.0.1", "localhost", "::1") else (host,)
    try:
        app, console = build_app(
            config,
            token=token,
            bus=bus,
            groups=groups,
            hosts=hosts,
            sample_every=sample_every,
            handlers_here=handlers_here,
        )
    except BaseException:
        sock.close()
        raise
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    )

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if not server.started:
            return
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/?token={token}"
        if on_ready is not None:
            on_ready(url)
        else:
            print(
                f"eventbus console: {console.where} on {url} (Ctrl+C stops)",
                file=sys.stderr,
                flush=True,
            )
        if stop is not None:
            stop.wait()
            server.should_exit = True

    threading.Thread(target=announce, name="eventbus-console-ready", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        server.should_exit = True  # the announcer stops waiting if the server never started
        console.close()
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eventbus console",
        description="A local web page to see and repair the bus: groups, dead letters, the "
        "outbox, the event log, a live tail, the AsyncAPI document.",
    )
    p.add_argument("--host", help="address to bind (default: [console] host, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="default: [console] port, else 8642; 0 picks one")
    p.add_argument(
        "--token",
        help=f"token for replay/purge/drain (default: ${TOKEN_ENV}, else [console] token "
        "of the config file, else a new random one, printed)",
    )
    p.add_argument(
        "--app",
        metavar="MODULE[:ATTR]",
        help="the app's EventBus: shows its groups and AsyncAPI document",
    )
    p.add_argument(
        "--group",
        dest="groups",
        action="append",
        default=[],
        metavar="NAME",
        help="a group to show on brokers that cannot list theirs; repeatable",
    )
    p.add_argument("--config", metavar="PATH", help="config file (as for every command)")
    p.add_argument("--profile", metavar="NAME", help="config profile")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``eventbus console`` as a function; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, args.profile)
        bus = None
        if args.app:
            try:
                bus = _load_app(args.app, args.config, args.profile)
            except EventBusError:
                raise
            except Exception as exc:  # the loader's own usage errors, already one line
                print(f"eventbus: error: {redact_text(str(exc))}", file=sys.stderr)
                return 2
        table = config.console  # the config file's [console] table; flags win
        serve(
            config,
            host=args.host or table.get("host", DEFAULT_HOST),
            port=args.port if args.port is not None else table.get("port", DEFAULT_PORT),
            token=args.token or os.environ.get(TOKEN_ENV) or table.get("token"),
            bus=bus,
            groups=args.groups,
            handlers_here=False,
        )
    except KeyboardInterrupt:
        return 130
    except (ConfigError, AdapterNotFound) as exc:
        print(f"eventbus: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except (EventBusError, OSError) as exc:
        print(f"eventbus: error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _load_app(target: str, config: str | None, profile: str | None) -> Any:
    # The app builds its bus with EventBus(), which reads the config through the
    # environment; the CLI's loader (as for ``eventbus worker``) finds the bus.
    from ..cli._common import load_bus

    if config:
        os.environ["EVENTBUS_CONFIG"] = os.path.abspath(config)
    if profile:
        os.environ["EVENTBUS_PROFILE"] = profile
    return load_bus(target)

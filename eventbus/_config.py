"""Config files: which broker, how to reach it, and the bus's policies.

Where the config comes from, first found wins:

1. the ``path`` argument, or the file named by ``EVENTBUS_CONFIG``;
2. ``eventbus.toml`` in the current directory;
3. the ``[tool.eventbus]`` table of ``pyproject.toml`` in the current directory;
4. nothing: the embedded SQLite broker at ``sqlite:///eventbus.db``.

Then ``EVENTBUS_PROFILE`` (or the ``profile`` key) picks a table under
``[profiles.NAME]`` whose keys override the top level, and ``EVENTBUS_BROKER`` /
``EVENTBUS_URL`` override ``broker`` / ``url``. String values may use
``${VAR}`` or ``${VAR:-default}`` so secrets stay in the environment.

Every error names the file, the key and the fix.

The ``[publish]`` table sets the publish path (retry → circuit breaker → local
outbox; keys and defaults in :class:`eventbus.PublishSettings`)::

    [publish]
    retry_attempts = 3          # direct tries before the outbox takes the event
    retry_timeout = 5.0         # seconds one publish spends on those tries
    breaker_failures = 5        # failed sends in a row that open the breaker
    breaker_reset = 5.0         # seconds open before a trial send
    outbox = true               # false: raise instead of keeping the event
    outbox_path = ".eventbus/outbox.db"

``[worker]`` takes, besides ``prefetch``, ``poll_interval``, ``concurrency`` and
``timeout``: ``inbox``, a URL of the idempotent-consumer store
(``sqlite:///.eventbus/inbox.db``, ``redis://127.0.0.1:6379/0``,
``postgresql://user@host/db``) that makes every group drop duplicate event
ids, and ``inbox_lease``, the seconds a member's claim on an event lasts.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._errors import ConfigError
from .resilience._publisher import PUBLISH_KEYS, PublishSettings
from .resilience._retry import RetryPolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["BusConfig", "load_config"]

DEFAULT_URL = "sqlite:///eventbus.db"

_TOP_KEYS = {
    "broker": str,
    "url": str,
    "source": str,
    "content_mode": str,
    "profile": str,
    "options": dict,
    "retry": dict,
    "worker": dict,
    "publish": dict,
    "console": dict,
    "profiles": dict,
}
_CONSOLE_KEYS = {"token": str, "host": str, "port": int}
_RETRY_KEYS = {
    "max_attempts": int,
    "initial_delay": (int, float),
    "multiplier": (int, float),
    "max_delay": (int, float),
    "jitter": (int, float),
}
_WORKER_KEYS = {
    "prefetch": int,
    "poll_interval": (int, float),
    "concurrency": int,
    "timeout": (int, float),
    "inbox": str,
    "inbox_lease": (int, float),
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class BusConfig:
    """The settings a bus is built from; see the module docstring for where they come from."""

    broker: str | None = None
    url: str | None = DEFAULT_URL
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    prefetch: int = 100
    poll_interval: float = 0.5
    concurrency: int = 1
    timeout: float | None = None
    publish: Mapping[str, Any] = field(default_factory=dict)
    content_mode: str = "binary"
    file: str | None = None
    profile: str | None = None
    inbox: str | None = None
    inbox_lease: float | None = None
    #: The ``[console]`` table (``token``, ``host``, ``port``) of ``eventbus console``.
    console: Mapping[str, Any] = field(default_factory=dict)

    @property
    def publish_settings(self) -> PublishSettings:
        """The ``[publish]`` table as a typed record (raises :class:`ConfigError`)."""
        return PublishSettings.from_mapping(self.publish, f"{self.file or '<config>'}: publish")

    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***`` (for logs and errors)."""
        return redact(self.url or "")

    def __repr__(self) -> str:  # the URL and options may hold credentials: never show them
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "url" and isinstance(value, str):
                value = redact(value)
            elif f.name == "options" and isinstance(value, Mapping):
                value = _masked("options", value)
            elif f.name == "inbox" and isinstance(value, str):
                value = redact(value)
            elif f.name == "console" and isinstance(value, Mapping):
                value = _masked("console", value)
            shown.append(f"{f.name}={value!r}")
        return f"BusConfig({', '.join(shown)})"


_SECRET_KEY = re.compile(r"(?i)password|passwd|secret|token|key|sig|credential")


def _masked(key: object, value: Any) -> Any:
    """``value`` of option ``key`` for showing: secret-named keys masked at any depth."""
    if isinstance(value, Mapping):
        return {k: _masked(k, v) for k, v in value.items()}
    if _SECRET_KEY.search(str(key)):
        return "***"
    if isinstance(value, (list, tuple)):
        return [_masked(key, v) for v in value]
    return redact(value) if isinstance(value, str) else value


# scheme://user:password@host: the password runs to the *last* "@" of the authority
# (the part before the first "/", "?" or "#"), as pika and urllib read it.
_URL_PASSWORD = re.compile(r"(//[^/?#@:\s]*:)[^/?#\s]*@")
_QUERY_SECRET = re.compile(r"(?i)((?:password|secret|key|token|sig)[^=&;]*=)[^&;]*")


def redact(url: str) -> str:
    """``url`` with the password and secret-looking query values masked."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def _where(file: str, key: str) -> str:
    return f"{file}: key {key!r}"


def _interpolate(value: Any, file: str, key: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{_where(file, key)} uses ${{{name}}}, which is not set; "
                f"export {name}=... or write ${{{name}:-default}}"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, file, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _check(table: Mapping[str, Any], schema: Mapping[str, Any], file: str, prefix: str) -> None:
    for key, value in table.items():
        full = f"{prefix}{key}"
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            known = ", ".join(sorted(schema))
            fix = f"did you mean {close[0]!r}?" if close else f"known keys: {known}"
            raise ConfigError(f"{_where(file, full)} is not a setting; {fix}")
        want = schema[key]
        if not isinstance(value, want) or (isinstance(value, bool) and want in (int, (int, float))):
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise ConfigError(
                f"{_where(file, full)} must be {names}, not {type(value).__name__} ({value!r})"
            )


def _read(path: Path, table: str | None, origin: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        fix = "unset EVENTBUS_CONFIG" if origin == "env" else "check the path"
        raise ConfigError(f"{path}: config file not found; create it or {fix}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    if table is None:
        if "eventbus" in doc and isinstance(doc["eventbus"], dict) and len(doc) == 1:
            return dict(doc["eventbus"])  # tolerate an [eventbus] table in eventbus.toml
        return doc
    tool = doc.get("tool", {})
    found = tool.get(table, {}) if isinstance(tool, dict) else {}
    return dict(found) if isinstance(found, dict) else {}


def _locate(
    path: str | os.PathLike[str] | None,
) -> tuple[Path | None, str | None, str]:
    """The config file, the ``[tool.X]`` table to read in it (or None), and who chose it."""
    origin = "path"
    chosen = path
    if chosen is None and os.environ.get("EVENTBUS_CONFIG"):
        chosen, origin = os.environ["EVENTBUS_CONFIG"], "env"
    if chosen is not None:
        p = Path(chosen)
        return p, ("eventbus" if p.name == "pyproject.toml" else None), origin
    here = Path.cwd()
    if (here / "eventbus.toml").is_file():
        return here / "eventbus.toml", None, "cwd"
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        try:
            with pyproject.open("rb") as f:
                tool = tomllib.load(f).get("tool", {})
        except (OSError, tomllib.TOMLDecodeError):
            tool = {}
        if "eventbus" in tool:
            return pyproject, "eventbus", "cwd"
    return None, None, "default"


def _names_other_adapter(url: str, broker: str) -> bool:
    """True if ``url``'s scheme belongs to an installed adapter other than ``broker``."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        return False
    from ._plugins import adapter_specs  # late: plugins are loaded only when needed

    specs = adapter_specs()
    mine = specs.get(broker.strip().lower().replace("-", "_"))
    if mine is not None and (scheme in mine.schemes or scheme == mine.name):
        return False
    return any(scheme in s.schemes for s in specs.values())


def _content_mode(value: str, file: str) -> str:
    if value not in ("binary", "structured"):
        raise ConfigError(
            f'{_where(file, "content_mode")} is {value!r}; use "binary" (attributes in '
            'broker headers, the default) or "structured" (one application/cloudevents+json body)'
        )
    return value


def load_config(
    path: str | os.PathLike[str] | None = None, profile: str | None = None
) -> BusConfig:
    """Read the bus config (see the module docstring for the search order)."""
    file, table, origin = _locate(path)
    name = str(file) if file else "<defaults>"
    raw: dict[str, Any] = _read(file, table, origin) if file else {}
    if table:
        name = f"{file} [tool.{table}]"
    _check(raw, _TOP_KEYS, name, "")
    profiles = raw.pop("profiles", {})
    chosen = profile or os.environ.get("EVENTBUS_PROFILE") or raw.pop("profile", None)
    picked_by = (
        "" if profile else " (from EVENTBUS_PROFILE)" if os.environ.get("EVENTBUS_PROFILE") else ""
    )
    raw.pop("profile", None)
    if chosen:
        if chosen not in profiles:
            close = difflib.get_close_matches(chosen, list(profiles), n=1)
            defined = ", ".join(sorted(profiles)) or "none"
            fix = f"did you mean {close[0]!r}?" if close else f"defined profiles: {defined}"
            raise ConfigError(
                f"{_where(name, 'profiles.' + chosen)}{picked_by}: no such profile; {fix}"
            )
        over = profiles[chosen]
        if not isinstance(over, dict):
            raise ConfigError(f"{_where(name, 'profiles.' + chosen)} must be a table")
        _check(
            over,
            {k: v for k, v in _TOP_KEYS.items() if k not in ("profiles", "profile")},
            name,
            f"profiles.{chosen}.",
        )
        _check(over.get("retry", {}), _RETRY_KEYS, name, f"profiles.{chosen}.retry.")
        _check(over.get("worker", {}), _WORKER_KEYS, name, f"profiles.{chosen}.worker.")
        _check(over.get("publish", {}), PUBLISH_KEYS, name, f"profiles.{chosen}.publish.")
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
    raw = _interpolate(raw, name, "")
    if os.environ.get("EVENTBUS_BROKER"):
        raw["broker"] = os.environ["EVENTBUS_BROKER"]
    if os.environ.get("EVENTBUS_URL"):
        raw["url"] = os.environ["EVENTBUS_URL"]
        if not os.environ.get("EVENTBUS_BROKER") and raw.get("broker"):
            # EVENTBUS_URL=memory:// must move a bus whose file says broker = "rabbitmq".
            if _names_other_adapter(raw["url"], str(raw["broker"])):
                del raw["broker"]
    retry_raw = raw.get("retry", {})
    _check(retry_raw, _RETRY_KEYS, name, "retry.")
    try:
        retry = RetryPolicy(**retry_raw)
    except ValueError as exc:
        raise ConfigError(f"{_where(name, 'retry')}: {exc}") from None
    worker = raw.get("worker", {})
    _check(worker, _WORKER_KEYS, name, "worker.")
    for key in ("prefetch", "concurrency"):
        if key in worker and worker[key] < 1:
            raise ConfigError(f"{_where(name, 'worker.' + key)} must be at least 1")
    for key in ("poll_interval", "timeout", "inbox_lease"):
        if key in worker and worker[key] <= 0:
            raise ConfigError(f"{_where(name, 'worker.' + key)} must be more than 0 seconds")
    publish = raw.get("publish", {})
    _check(publish, PUBLISH_KEYS, name, "publish.")
    console = raw.get("console", {})
    _check(console, _CONSOLE_KEYS, name, "console.")
    PublishSettings.from_mapping(publish, f"{name}: key 'publish'")  # values in range
    url = raw.get("url")
    if url is None and not raw.get("broker"):
        url = DEFAULT_URL
    return BusConfig(
        broker=raw.get("broker"),
        url=url,
        options=raw.get("options", {}),
        source=raw.get("source"),
        content_mode=_content_mode(raw.get("content_mode", "binary"), name),
        retry=retry,
        prefetch=worker.get("prefetch", 100),
        poll_interval=float(worker.get("poll_interval", 0.5)),
        concurrency=worker.get("concurrency", 1),
        timeout=worker.get("timeout"),
        publish=publish,
        file=str(file) if file else None,
        profile=chosen,
        inbox=worker.get("inbox"),
        inbox_lease=float(worker["inbox_lease"]) if "inbox_lease" in worker else None,
        console=console,
    )

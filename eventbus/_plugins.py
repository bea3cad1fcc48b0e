"""Finding adapters: pluggy over the ``eventbus.adapters`` entry-point group."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pluggy

from . import hookspecs
from ._errors import AdapterNotFound, ConfigError
from .adapter._capabilities import Capabilities
from .adapter._contract import Adapter

__all__ = ["AdapterSpec", "adapter_specs", "create_adapter", "find_spec", "require"]

ENTRY_POINT_GROUP = "eventbus.adapters"

AdapterFactory = Callable[[str, Mapping[str, Any]], Adapter]


@dataclass(frozen=True)
class AdapterSpec:
    """How to build one adapter, as a plugin declares it.

    ``factory(url, options)`` returns a connected :class:`~eventbus.Adapter`.
    ``schemes`` are the URL schemes that select this adapter when the config
    gives only a URL. ``extra`` is the pip extra that installs the SDK
    (``"rabbitmq"`` for ``pip install 'eventbus[rabbitmq]'``); ``sdk`` the
    module the factory imports, so ``eventbus adapters`` can say if it is there.
    """

    name: str
    factory: AdapterFactory
    schemes: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    version: str = "0"
    extra: str | None = None
    sdk: str | None = None
    description: str = ""
    default_url: str | None = None

    def sdk_installed(self) -> bool:
        if self.sdk is None:
            return True
        try:
            return importlib.util.find_spec(self.sdk) is not None
        except (ImportError, ValueError):
            return False


def require(
    module: str, adapter: str, extra: str | None = None, *, hint: str | None = None
) -> ModuleType:
    """Import an adapter's SDK, or raise :class:`AdapterNotFound` with the install hint.

    ``extra`` names eventbus's pip extra (``pip install 'eventbus[kafka]'``); a
    third-party adapter passes its own ``hint`` instead (``"pip install eventbus-nats"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        how = hint or (f"pip install 'eventbus[{extra}]'" if extra else f"pip install {module}")
        raise AdapterNotFound(
            f"the {adapter!r} adapter needs {module.split('.')[0]!r}, which is not installed: {how}"
        ) from exc


_lock = threading.Lock()
_specs: dict[str, AdapterSpec] | None = None
_load_errors: dict[str, str] = {}

# Adapters this distribution knows about, to suggest the extra even when a
# third-party or optional plugin is missing entirely.
_KNOWN_EXTRAS = {
    "rabbitmq": "rabbitmq",
    "kafka": "kafka",
    "sqs": "sqs",
    "azure_servicebus": "azure-servicebus",
}


def _load() -> dict[str, AdapterSpec]:
    global _specs
    with _lock:
        if _specs is not None:
            return _specs
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin must not hide the others
            _load_errors["<entry points>"] = f"{type(exc).__name__}: {exc}"
            pm = _load_one_by_one()
        specs: dict[str, AdapterSpec] = {}
        for result in pm.hook.eventbus_adapters():
            for spec in result:
                specs.setdefault(spec.name, spec)
        _specs = specs
        return specs


def _load_one_by_one() -> pluggy.PluginManager:
    from importlib.metadata import entry_points

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            _load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
    return pm


def adapter_specs() -> dict[str, AdapterSpec]:
    """Every installed adapter by name (loaded once per process)."""
    return dict(_load())


def load_errors() -> dict[str, str]:
    """Plugins that failed to load, by entry-point name, with the error."""
    _load()
    return dict(_load_errors)


def find_spec(name: str) -> AdapterSpec:
    """The adapter called ``name`` (``-`` and ``_`` are the same), or a helpful error."""
    specs = _load()
    key = name.strip().lower().replace("-", "_")
    if key in specs:
        return specs[key]
    for spec in specs.values():
        if key in spec.schemes:
            return spec
    names = sorted(set(specs) | set(_KNOWN_EXTRAS))
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    hint = ""
    if close:
        extra = _KNOWN_EXTRAS.get(close[0])
        hint = f"; did you mean {close[0]!r}?"
        if extra and close[0] not in specs:
            hint += f" (pip install 'eventbus[{extra}]')"
    raise AdapterNotFound(f"no adapter named {name!r}{hint} Installed: {', '.join(sorted(specs))}")


def spec_for_url(url: str) -> AdapterSpec:
    """The adapter whose URL scheme ``url`` uses."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed '['
        raise ConfigError(f"broker URL is not valid ({exc})") from None
    if not scheme:
        raise ConfigError(
            f"broker URL {url!r} has no scheme; write e.g. 'sqlite:///eventbus.db' "
            "or 'amqp://guest:guest@localhost:5672/'"
        )
    return find_spec(scheme)


def create_adapter(
    broker: str | None, url: str | None, options: Mapping[str, Any] | None = None
) -> Adapter:
    """Build an adapter from a broker name and/or URL (the name wins if both are given)."""
    if broker:
        spec = find_spec(broker)
    elif url:
        spec = spec_for_url(url)
    else:
        spec = find_spec("sqlite")
    use_url = url or spec.default_url or ""
    return spec.factory(use_url, dict(options or {}))

"""The plugin boilerplate of an adapter package, as two calls.

An adapter package's ``__init__.py`` must not import its SDK (``eventbus
adapters`` lists every plugin, installed SDK or not), yet it registers a
factory, exports its classes and reports a version. With this module::

    from eventbus.adapter import adapter_spec, hookimpl, lazy_exports

    SPEC = adapter_spec(
        name="rabbitmq", settings=RabbitMQSettings, adapter="._adapter:RabbitMQAdapter",
        package=__name__, schemes=("amqp", "amqps"), capabilities=CAPABILITIES,
        extra="rabbitmq", sdk="pika", description="RabbitMQ (pika)", default_url=DEFAULT_URL,
    )
    __getattr__ = lazy_exports(__name__, {"RabbitMQAdapter": "._adapter"})

    @hookimpl
    def eventbus_adapters() -> list[AdapterSpec]:
        return [SPEC]

The factory reads the settings first (a config mistake is reported before the
SDK loads), then imports the adapter module; a missing SDK there becomes
:class:`~eventbus.AdapterNotFound` with the install hint.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import AdapterNotFound
from .._plugins import AdapterSpec
from ._capabilities import Capabilities
from ._contract import Adapter
from ._settings import Settings

__all__ = ["AdapterSpec", "adapter_spec", "lazy_exports"]


def _import(package: str, target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name, package)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.startswith(package):
            raise  # our own module is missing: a packaging bug, not an install hint
        raise AdapterNotFound(f"{package}: {exc}") from exc
    obj: Any = module
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def _version(package: str) -> str:
    top = package.split(".")[0]
    try:
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def adapter_spec(
    *,
    name: str,
    settings: type[Settings],
    adapter: str,
    package: str,
    schemes: tuple[str, ...] = (),
    capabilities: Capabilities | None = None,
    extra: str | None = None,
    sdk: str | None = None,
    description: str = "",
    default_url: str | None = None,
    version: str | None = None,
) -> AdapterSpec:
    """The :class:`~eventbus.AdapterSpec` of an adapter whose class is ``adapter``.

    ``adapter`` is ``"module:Class"``, relative to ``package`` (``"._adapter:KafkaAdapter"``):
    the adapter is built as ``Class(settings)`` (``"module:Class.from_settings"`` names
    another callable). ``version`` defaults to the
    installed distribution's (eventbus's own for the adapters it ships).
    """

    def factory(url: str, options: Mapping[str, Any]) -> Adapter:
        parsed = settings.from_url(url, options)  # config errors before the SDK loads
        cls = _import(package, adapter)
        return cls(parsed)  # type: ignore[no-any-return]

    return AdapterSpec(
        name=name,
        factory=factory,
        schemes=schemes,
        capabilities=capabilities or Capabilities(),
        version=version or _version(package),
        extra=extra,
        sdk=sdk,
        description=description,
        default_url=default_url,
    )


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names`` (name -> relative module) on first use."""

    def __getattr__(name: str) -> Any:
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(_import(package, where), name)

    return __getattr__

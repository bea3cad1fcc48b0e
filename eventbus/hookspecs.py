"""Hook specifications for adapter plugins (pluggy).

A plugin is a module (or object) registered under the ``eventbus.adapters``
entry-point group; the embedded adapters register exactly the same way::

    [project.entry-points."eventbus.adapters"]
    mybroker = "eventbus_mybroker"

and implements :func:`eventbus_adapters` with :data:`hookimpl`::

    from eventbus import AdapterSpec, hookimpl

    @hookimpl
    def eventbus_adapters():
        return [AdapterSpec(name="mybroker", factory=_make, schemes=("mybroker",), ...)]

The plugin module must import quickly and without its broker SDK: import the
SDK inside the factory, and turn ``ImportError`` into an install hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._plugins import AdapterSpec

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "eventbus"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def eventbus_adapters() -> Sequence[AdapterSpec]:  # type: ignore[empty-body]
    """Return the adapters this plugin provides.

    Called once when the plugin manager loads; must not connect to anything.
    Each :class:`~eventbus.AdapterSpec` names the adapter, its URL schemes, its
    capabilities, the extra that installs its SDK, and a factory that builds
    an adapter from a URL and an options mapping.
    """

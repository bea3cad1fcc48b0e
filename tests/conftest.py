"""Fixtures every test directory sees: the shared broker fixtures of ``tests/_brokers``.

``--import-mode=importlib`` puts no test directory on ``sys.path``, so the package
is registered here by path as ``eventbus_test_brokers`` and its modules are loaded
as plugins. Each broker starts at most once per session, when a test first asks
for it (see the modules for the ``EVENTBUS_*`` variables that pick external ones).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PACKAGE = "eventbus_test_brokers"


def _register() -> None:
    if _PACKAGE in sys.modules:
        return
    where = Path(__file__).with_name("_brokers")
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, where / "__init__.py", submodule_search_locations=[str(where)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    spec.loader.exec_module(module)


_register()

pytest_plugins = [f"{_PACKAGE}.{name}" for name in ("kafka", "sqs", "servicebus", "rabbitmq")]

"""The public surface is what __all__ says, sorted, and nothing private leaks."""

from __future__ import annotations

import pytest

import eventbus
import eventbus.testing

pytestmark = pytest.mark.memory


@pytest.mark.parametrize("module", [eventbus, eventbus.testing])
def test_all_is_sorted_and_complete(module) -> None:
    names = module.__all__
    assert names == sorted(names)
    public = {
        n
        for n in dir(module)
        if not n.startswith("_") and not isinstance(getattr(module, n), type(module))
    }
    public -= {"annotations"}
    assert public <= set(names) | {"hookspecs", "testing"}, public - set(names)
    for n in names:
        assert hasattr(module, n)


def test_core_imports_no_broker_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, eventbus, eventbus.testing; eventbus.adapter_specs();"
        "bad = [m for m in ('pika', 'confluent_kafka', 'boto3', 'azure', 'proton')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

"""``eventbus demo`` end to end: real processes, counted, on a temporary SQLite file."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite


def test_demo_loses_nothing_while_billing_is_down(run_cli) -> None:
    r = run_cli("demo", "--orders", "6", timeout=120)
    assert r.code == 0, r.out + r.err
    out = r.out
    assert "published 6, invoiced 6, notified 6: nothing lost" in out
    stopped = out.index("billing is STOPPED")
    restarted = out.index("billing starts again")
    # while billing was down orders kept publishing and notifications kept up...
    between = out[stopped:restarted]
    assert re.search(r"orders\s+\| published order 6\b", between)
    assert re.search(r"notifications\s+\| notified \w+ about order 6\b", between)
    assert "invoice INV-000006" not in between
    assert re.search(r"billing missed \d+ order\(s\)", between)
    # ...and billing caught up after it came back.
    after = out[restarted:]
    for i in range(3, 7):
        assert f"invoice INV-00000{i} for order {i}" in after
    assert "the broker's event log holds 6 order event(s)" in out
    assert "Traceback" not in out + r.err


def test_demo_keep_leaves_a_broker_file_the_log_command_reads(run_cli) -> None:
    r = run_cli("demo", "--orders", "3", "--keep", timeout=120)
    assert r.code == 0, r.out + r.err
    m = re.search(r"kept (\S+); look at it with: eventbus --config (\S+) log", r.out)
    assert m, r.out
    kept, config = Path(m.group(1)), m.group(2)
    try:
        log = run_cli("--config", config, "log", "--json", "--pattern", "order.created")
        assert log.code == 0, log.err
        records = [json.loads(line) for line in log.out.splitlines()]
        assert [rec["data"]["id"] for rec in records] == [1, 2, 3]
        assert records[0]["data"] == {"id": 1, "user": "Ana", "total": 42.9}
        assert records[0]["attributes"]["source"] == "//shop/orders"
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_console_script_is_installed() -> None:
    import subprocess

    script = Path(sys.executable).with_name("eventbus")
    found = str(script) if script.exists() else shutil.which("eventbus")
    if found is None:
        pytest.skip("the 'eventbus' console script is not installed next to this Python")
    proc = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("eventbus ")

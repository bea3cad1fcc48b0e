"""``eventbus worker``: real worker processes on a SQLite file, and its user errors."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from eventbus import EventBus, load_config

pytestmark = pytest.mark.sqlite

SHOP = """
from eventbus import EventBus

bus = EventBus()

@bus.subscribe("order.*", group="audit")
def audit(event):
    print(f"audit saw {event.type} {event.data['id']}", flush=True)

@bus.subscribe("order.created", group="mail")
async def mail(event):
    print(f"mail for {event.data['id']}", flush=True)


def create():
    return bus
"""


def publish_orders(n: int, *, config: Path | None = None, first: int = 1) -> None:
    with EventBus(config=load_config(config)) as bus:
        for i in range(first, first + n):
            bus.publish("order.created", {"id": i, "user": "Ana", "total": 10.0 + i})


def ready(lines: list[str]) -> bool:
    return any("worker: ready:" in line for line in lines)


def stop(proc, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(30)


def test_example_billing_worker_invoices_and_stops_on_sigterm(
    spawn, watch, repo, sqlite_config
) -> None:
    proc = spawn("worker", "eventbus.examples.orders_billing.billing:bus", PYTHONPATH=str(repo))
    out = watch(proc)
    lines = out.wait_for(ready)
    assert any("ready: billing <- order.created" in line for line in lines)
    publish_orders(3)
    out.wait_for(lambda ls: sum(line.startswith("invoice INV-") for line in ls) >= 3)
    assert stop(proc) == 0
    text = out.text()
    for i in (1, 2, 3):
        assert f"invoice INV-00000{i} for order {i}: Ana owes {10.0 + i:.2f}" in text
    assert text.rstrip().endswith("eventbus worker: stopped")
    assert "Traceback" not in text


def test_events_published_while_the_worker_is_down_wait_for_it(
    spawn, watch, repo, sqlite_config
) -> None:
    proc = spawn("worker", "eventbus.examples.orders_billing.billing", PYTHONPATH=str(repo))
    watch(proc).wait_for(ready)  # the group exists now
    assert stop(proc) == 0
    publish_orders(4)  # nobody is running
    proc = spawn("worker", "eventbus.examples.orders_billing.billing", PYTHONPATH=str(repo))
    out = watch(proc)
    out.wait_for(lambda ls: sum(line.startswith("invoice INV-") for line in ls) >= 4)
    assert stop(proc, signal.SIGINT) == 0


def test_module_alone_means_its_bus_and_the_cwd_is_importable(
    spawn, watch, write, sqlite_config
) -> None:
    write("shop.py", SHOP)
    proc = spawn("worker", "shop")
    out = watch(proc)
    lines = out.wait_for(ready)
    assert any("ready: audit <- order.*; mail <- order.created" in line for line in lines)
    publish_orders(2)
    out.wait_for(lambda ls: {"audit saw order.created 2", "mail for 2"} <= set(ls))
    assert stop(proc) == 0


def test_factory_and_group_filter(spawn, watch, write, sqlite_config) -> None:
    write("shop.py", SHOP)
    proc = spawn("worker", "shop:create", "--group", "mail", "--concurrency", "2")
    out = watch(proc)
    lines = out.wait_for(ready)
    assert any("ready: mail <- order.created (Ctrl+C" in line for line in lines)
    publish_orders(3)
    out.wait_for(lambda ls: {"mail for 1", "mail for 2", "mail for 3"} <= set(ls))
    assert stop(proc) == 0
    assert "audit saw" not in out.text()


def test_config_option_reaches_the_modules_bus(spawn, watch, write, workdir: Path) -> None:
    other = write("conf/other.toml", 'url = "sqlite:///other.db"\n[worker]\npoll_interval = 0.1\n')
    write("shop.py", SHOP)
    proc = spawn("worker", "shop:bus", "--config", "conf/other.toml", "--group", "audit")
    out = watch(proc)
    out.wait_for(ready)
    assert (workdir / "other.db").exists()
    publish_orders(1, config=other)
    out.wait_for(lambda ls: "audit saw order.created 1" in ls)
    assert stop(proc) == 0


# -- user errors: exit 2 (1 for a crash in the user's code), never our traceback ----------


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch):
    """Modules the worker imports in this process are forgotten after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("module", "target", "message"),
    [
        (None, "nosuchmodule_xyz:bus", "cannot import 'nosuchmodule_xyz': no module named"),
        (None, "nosuchpkg_xyz.billing:bus", "no module named 'nosuchpkg_xyz'"),
        ("x = 1\n", "wk_noattr:bus", "module 'wk_noattr' has no attribute 'bus'"),
        ("x = 1\n", "wk_noattr2", "has no attribute 'bus' (name it: wk_noattr2:ATTR)"),
        ("bus = 42\n", "wk_notbus:bus", "wk_notbus:bus is a int, not an EventBus"),
        (
            "from eventbus import EventBus\nbus = EventBus()\n",
            "wk_nohandlers:bus",
            "has no handlers",
        ),
        (None, "wk_x:", "write MODULE or MODULE:ATTR"),
        (None, ":bus", "write MODULE or MODULE:ATTR"),
        (
            SHOP,
            "wk_shop:bus --group nosuch",
            "no group named 'nosuch' in this bus; its groups: audit, mail",
        ),
    ],
)
def test_worker_user_errors(
    cli, write, sqlite_config, isolated_imports, module: str | None, target: str, message: str
) -> None:
    name = (target.split(":")[0].split() or ["_"])[0]
    if module is not None:
        write(f"{name}.py", module)
    r = cli("worker", *target.split())
    assert r.code == 2, r
    assert r.err.startswith("eventbus: error: ")
    assert message in r.err
    assert "Traceback" not in r.err


def test_a_crash_in_the_users_module_shows_their_traceback(
    cli, write, sqlite_config, isolated_imports
) -> None:
    write("wk_broken.py", "import json\nraise RuntimeError('boom at import')\n")
    r = cli("worker", "wk_broken:bus")
    assert r.code == 1
    assert "Traceback" in r.err and "wk_broken.py" in r.err  # their code: they need it
    last = r.err.rstrip().splitlines()[-1]
    assert last.startswith("eventbus: error: importing 'wk_broken' failed: RuntimeError")


def test_a_missing_dependency_of_the_users_module_is_not_called_a_missing_module(
    cli, write, sqlite_config, isolated_imports
) -> None:
    write("wk_deps.py", "import nosuchdependency_xyz\n")
    r = cli("worker", "wk_deps:bus")
    assert r.code == 1
    assert "importing 'wk_deps' failed: ModuleNotFoundError" in r.err


@pytest.mark.rabbitmq
def test_the_example_moves_to_rabbitmq_by_config_only(spawn, watch, repo) -> None:
    """The same billing module, the RabbitMQ variant of the example's config file."""
    import os
    import random
    import subprocess
    from urllib.parse import urlsplit

    config = str(repo / "eventbus" / "examples" / "orders_billing" / "eventbus.rabbitmq.toml")
    env = {"PYTHONPATH": str(repo)}
    given = os.environ.get("EVENTBUS_RABBITMQ_URL")
    if given:  # the example's file reads the broker's address from these
        parts = urlsplit(given)
        env.update(
            RABBITMQ_USER=parts.username or "guest",
            RABBITMQ_PASSWORD=parts.password or "guest",
            RABBITMQ_HOST=parts.hostname or "localhost",
        )
    billing = "eventbus.examples.orders_billing.billing:bus"
    proc = spawn("worker", billing, "--config", config, **env)
    out = watch(proc)
    out.wait_for(ready)
    first = random.randrange(10**6, 10**7)  # ids of this run only: the broker is shared
    subprocess.run(
        [
            sys.executable,
            "-m",
            "eventbus.examples.orders_billing.orders",
            "--count",
            "3",
            "--first-id",
            str(first),
            "--interval",
            "0",
        ],
        cwd=repo,
        env={**child_env(), **env, "EVENTBUS_CONFIG": config},
        check=True,
        timeout=60,
    )
    wanted = {f"for order {first + i}:" for i in range(3)}
    out.wait_for(lambda ls: all(any(w in line for line in ls) for w in wanted), timeout=30)
    assert stop(proc) == 0
    assert "RabbitMQAdapter" in out.text()


def child_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("EVENTBUS_")}

"""The same application code moves between brokers by editing the config file only."""

from __future__ import annotations

import threading

import pytest

from eventbus import EventBus, MemoryAdapter

pytestmark = [pytest.mark.sqlite, pytest.mark.memory]


def shop_app() -> tuple[EventBus, list[int]]:
    """Application code: it never names a broker."""
    bus = EventBus()
    handled: list[int] = []
    done = threading.Event()

    @bus.subscribe("order.created", group="billing")
    def bill(event):  # type: ignore[no-untyped-def]
        handled.append(event.data["id"])
        if len(handled) == 3:
            done.set()

    bus.declare()  # the group exists before anything is published
    for i in range(3):
        bus.publish("order.created", {"id": i, "user": "Ana", "total": 42.9})
    bus.start()
    assert done.wait(15), f"handled only {handled}"
    bus.close()
    return bus, sorted(handled)


def test_sqlite_to_memory_by_editing_the_config_file(write, workdir) -> None:
    from eventbus import SqliteAdapter

    write("eventbus.toml", 'url = "sqlite:///shop.db"\n')
    bus, handled = shop_app()
    assert isinstance(bus.adapter, SqliteAdapter)
    assert handled == [0, 1, 2]
    assert (workdir / "shop.db").exists()

    write("eventbus.toml", 'url = "memory://"\n')
    bus, handled = shop_app()
    assert isinstance(bus.adapter, MemoryAdapter)
    assert handled == [0, 1, 2]


def test_a_profile_switches_the_broker(write, workdir) -> None:
    from eventbus import SqliteAdapter

    write(
        "eventbus.toml",
        """
        url = "sqlite:///shop.db"

        [profiles.test]
        url = "memory://"
        """,
    )
    bus, _ = shop_app()
    assert isinstance(bus.adapter, SqliteAdapter)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVENTBUS_PROFILE", "test")
        bus, handled = shop_app()
    assert isinstance(bus.adapter, MemoryAdapter)
    assert handled == [0, 1, 2]

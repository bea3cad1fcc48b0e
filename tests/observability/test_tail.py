"""``eventbus tail``: a live view through a group of its own."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from eventbus import EventBus, MemoryAdapter, Message, SqliteAdapter
from eventbus.adapter import GroupAdmin
from eventbus.observability import format_line, json_record, tail, tail_group

from .conftest import run_cli, start_cli, wait_for


class _Tail:
    """``tail()`` on a thread, collecting what it hands over."""

    def __init__(self, adapter: Any, pattern: str, **kw: Any) -> None:
        self.items: list[Any] = []
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, args=(adapter, pattern), kwargs=kw)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self, adapter: Any, pattern: str, **kw: Any) -> None:
        self.result = tail(
            adapter,
            pattern,
            self.items.append,
            stop=self.stop,
            poll=0.05,
            on_ready=lambda g: self.ready.set(),
            **kw,
        )

    def close(self) -> Any:
        self.stop.set()
        self.thread.join(10)
        return self.result


@pytest.mark.memory
def test_tail_shows_matching_events_and_disturbs_no_group() -> None:
    adapter = MemoryAdapter()
    bus = EventBus(adapter)
    billed: list[Any] = []
    bus.subscribe("order.*", billed.append, group="billing")
    bus.start()
    t = _Tail(adapter, "order.#")
    try:
        bus.publish("order.created", {"id": 1}, key="k1", correlationid="c1")
        bus.publish("user.created", {"id": 2})
        bus.publish("order.paid", b"\x00\x01")
        adapter.publish([Message("order.raw", b"not an event", {})])  # foreign: shown, not lost
        wait_for(lambda: len(t.items) == 3 and len(billed) == 2, 10, "the events")
    finally:
        count, group, removed = t.close()
        bus.close()
    assert count == 3 and group.startswith("eventbus-tail.") and removed
    assert group not in adapter._groups
    first, second, raw = t.items
    assert first.event.data == {"id": 1}
    line = format_line(first)
    assert "order.created" in line and "key=k1" in line and "corr=c1" in line
    assert '{"id":1}' in line
    assert "<2 bytes>" in format_line(second)
    assert "undecodable" in format_line(raw)
    record = json_record(second)
    assert record["data_base64"] == "AAE=" and record["attributes"]["type"] == "order.paid"
    assert json_record(raw)["decode_error"]
    assert [e.data for e in billed] == [{"id": 1}, b"\x00\x01"]


@pytest.mark.memory
def test_tail_removes_its_group_where_the_adapter_can() -> None:
    adapter = MemoryAdapter()  # a GroupAdmin: it can drop a group
    t = _Tail(adapter, "#", limit=1)
    EventBus(adapter).publish("a.b", 1)
    t.thread.join(10)
    count, group, removed = t.result
    assert (count, removed) == (1, True)
    assert group.startswith("eventbus-tail.") and isinstance(adapter, GroupAdmin)
    EventBus(adapter).publish("a.c", 2)  # a group still there would keep this one
    assert adapter.depth(group) == 0


@pytest.mark.sqlite
def test_a_reused_tail_group_skips_what_waited_since_the_last_tail(tmp_path: Path) -> None:
    class Keeping(SqliteAdapter):
        """A broker that cannot remove groups (no GroupAdmin): the tail reuses one per pattern."""

        delete_group = None  # type: ignore[assignment]  # opts out of the Protocol

    adapter = Keeping(tmp_path / "bus.db")
    assert tail_group("x.*", adapter) == tail_group("x.*", adapter)
    bus = EventBus(adapter)
    try:
        t = _Tail(adapter, "x.*")
        bus.publish("x.one", 1)
        wait_for(lambda: len(t.items) == 1, 10, "x.one")
        t.close()
        old = bus.event("x.two", 2, time=bus.event("x").time.replace(year=2000))
        bus.publish_many([old])  # waits in the reused group: not shown as new
        t = _Tail(adapter, "x.*")
        bus.publish("x.three", 3)
        wait_for(lambda: len(t.items) == 1, 10, "x.three")
        t.close()
        assert [i.event.data for i in t.items] == [3]
    finally:
        bus.close()


@pytest.mark.sqlite
def test_the_tail_command(tmp_path: Path) -> None:
    (tmp_path / "eventbus.toml").write_text('url = "sqlite:///bus.db"\n')
    proc = start_cli("tail", "order.*", "--json", "--limit", "2", cwd=tmp_path)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "through group 'eventbus-tail." in line, line
        publisher = EventBus(f"sqlite:///{tmp_path / 'bus.db'}")
        publisher.publish("user.created", {"id": 0})
        publisher.publish("order.created", {"id": 1})
        publisher.publish("order.paid", {"id": 1, "total": 4.5})
        publisher.close()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    records = [json.loads(ln) for ln in out.splitlines()]
    assert [r["topic"] for r in records] == ["order.created", "order.paid"]
    assert records[1]["data"] == {"id": 1, "total": 4.5}
    assert "2 event(s)" in err


@pytest.mark.memory
def test_the_tail_command_explains_what_it_cannot_do(tmp_path: Path) -> None:
    result = run_cli("tail", "#", cwd=tmp_path, timeout=20, EVENTBUS_URL="memory://")
    assert result.returncode == 2
    assert "inside one process" in result.stderr and "Traceback" not in result.stderr
    bad = run_cli("tail", "order.*x", cwd=tmp_path, timeout=20, EVENTBUS_URL="sqlite:///bus.db")
    assert bad.returncode == 2 and "pattern" in bad.stderr


@pytest.mark.rabbitmq
def test_the_tail_command_on_rabbitmq(
    tmp_path: Path, rabbitmq_url: str, exchange: str, raw_channel: Any
) -> None:
    from eventbus_rabbitmq import RabbitMQAdapter, RabbitMQSettings

    (tmp_path / "eventbus.toml").write_text(
        f'url = "{rabbitmq_url}"\n[options]\nexchange = "{exchange}"\n'
    )
    adapter = RabbitMQAdapter(rabbitmq_url, exchange=exchange)
    group = tail_group("shop.#", adapter)
    settings = RabbitMQSettings.from_url(rabbitmq_url, {"exchange": exchange})
    proc = start_cli("tail", "shop.#", "--limit", "1", cwd=tmp_path)
    try:
        assert proc.stderr is not None
        assert "Ctrl+C" in proc.stderr.readline()
        with EventBus(adapter) as bus:
            bus.publish("shop.order.created", {"id": 9})
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for queue in (settings.queue(group), settings.dead_queue(group)):
            raw_channel.queue_delete(queue)  # the adapter cannot remove groups (yet)
    assert proc.returncode == 0, err
    assert "shop.order.created" in out and '{"id":9}' in out

"""The console's HTTP endpoints, with an HTTP client, on a real SQLite bus (and RabbitMQ)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest

from eventbus import BusConfig, Event, EventBus, MemoryAdapter
from eventbus.testing import eventually

pytestmark = pytest.mark.sqlite

GROUP = "billing"


def _letters(client: httpx.Client) -> list[dict]:
    r = client.get(f"/api/groups/{GROUP}/dead")
    assert r.status_code == 200, r.text
    return r.json()["dead_letters"]


def test_groups_show_patterns_counts_and_dead_letters(client, worker) -> None:
    worker.dead(3)
    r = client.get("/api/groups")
    assert r.status_code == 200
    body = r.json()
    assert body["broker"] == "sqlite" and body["note"] is None
    [billing] = [g for g in body["groups"] if g["name"] == GROUP]
    assert billing["patterns"] == ["order.*"]
    assert billing["dead_letters"] == 3 and billing["waiting"] == 0
    page = client.get("/").text
    assert 'data-group="billing"' in page and f'href="/groups/{GROUP}/dead">3<' in page


def test_dead_letters_list_with_reason_and_data(client, worker) -> None:
    events = worker.dead(2)
    letters = _letters(client)
    assert [x["id"] for x in letters] == [e.id for e in events]
    assert letters[0]["data"] == {"order": 0, "total": 10}
    assert "card declined for order 0" in letters[0]["reason"]
    page = client.get(f"/groups/{GROUP}/dead/{events[1].id}").text
    assert "card declined for order 1" in page and "&quot;total&quot;: 11" in page


def test_mutations_need_the_token_and_get_never_mutates(client, worker, token) -> None:
    worker.dead(2)
    assert client.post(f"/groups/{GROUP}/replay").status_code == 403
    assert client.post(f"/groups/{GROUP}/purge", data={"token": "wrong"}).status_code == 403
    r = client.post(f"/groups/{GROUP}/purge", headers={"X-Eventbus-Token": "wrong"})
    assert r.status_code == 403 and "token" in r.json()["error"]
    assert client.get(f"/groups/{GROUP}/purge").status_code == 405
    assert client.post(f"/groups/{GROUP}/purge", data={"token": "é"}).status_code == 403
    assert client.get("/", params={"token": "é"}, follow_redirects=False).status_code == 303
    r = client.post(
        f"/groups/{GROUP}/replay", params={"limit": "-1"}, headers={"X-Eventbus-Token": token}
    )
    assert r.status_code == 409 and "at least 1" in r.json()["error"]
    # The right token in a form asks first; nothing happens before "yes".
    r = client.post(f"/groups/{GROUP}/purge", data={"token": token})
    assert r.status_code == 200 and "for good?" in r.text and 'name="confirmed"' in r.text
    assert len(_letters(client)) == 2


def test_replay_one_reaches_the_handler_and_purge_deletes(client, worker, token) -> None:
    events = worker.dead(3)
    auth = {"X-Eventbus-Token": token}
    r = client.post(f"/groups/{GROUP}/replay", params={"limit": "1"}, headers=auth)
    assert r.status_code == 200 and r.json()["replayed"] == 1
    eventually(lambda: worker.handled or None, what="the replayed event")
    assert [e.id for e in worker.handled] == [events[0].id]
    assert [x["id"] for x in _letters(client)] == [e.id for e in events[1:]]
    r = client.post(f"/groups/{GROUP}/purge", headers=auth)
    assert r.json()["purged"] == 2
    assert _letters(client) == []


def test_replay_up_to_a_letter_by_form(client, worker, token) -> None:
    events = worker.dead(3)
    form = {"token": token, "upto": events[1].id, "confirmed": "yes"}
    r = client.post(f"/groups/{GROUP}/replay", data=form)
    assert r.status_code == 200 and "replayed 2 dead letter(s)" in r.text
    eventually(lambda: len(worker.handled) == 2 or None, what="the replayed events")
    assert {e.id for e in worker.handled} == {events[0].id, events[1].id}
    form["upto"] = "no-such-letter"
    r = client.post(f"/groups/{GROUP}/replay", data=form)
    assert r.status_code == 409 and "no dead letter" in r.text


def test_log_search_by_type_id_correlation_time_and_paging(client, worker) -> None:
    bus = worker.bus
    for i in range(5):
        bus.publish("order.paid", {"i": i}, correlationid=f"c-{i % 2}")
    shipped = bus.publish("parcel.shipped", {"n": 1})
    eventually(lambda: len(worker.handled) == 5 or None, what="the orders handled")
    log = lambda **q: client.get("/api/log", params=q).json()  # noqa: E731
    assert [x["topic"] for x in log(type="parcel.*")["entries"]] == ["parcel.shipped"]
    assert [x["id"] for x in log(id=shipped.id)["entries"]] == [shipped.id]
    assert [x["data"]["i"] for x in log(correlationid="c-1")["entries"]] == [1, 3]
    assert log(until="2000-01-01T00:00")["entries"] == []
    assert len(log(since="2000-01-01T00:00")["entries"]) == 6
    assert client.get("/api/log", params={"since": "yesterday"}).status_code == 400
    bad = client.get("/log", params={"type": "order.**x"})
    assert bad.status_code == 400 and "a wildcard must be a whole word" in bad.text
    assert client.get("/tail", params={"pattern": "order.**x"}).status_code == 400
    # Paging through the HTML page: 50 a page, "next" continues after the last one.
    for i in range(60):
        bus.publish("audit.note", {"n": i})
    page = client.get("/log", params={"type": "audit.*"}).text
    assert page.count('<tr><td class="num">') == 50
    after = re.search(r'id="next" href="/log\?([^"]+)"', page)
    assert after is not None
    rest = client.get("/log?" + after.group(1).replace("&amp;", "&")).text
    assert rest.count('<tr><td class="num">') == 10 and 'id="next"' not in rest


def test_security_headers_and_unknown_hosts(client) -> None:
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_startup_url_keeps_the_token_for_the_forms(client, worker, token) -> None:
    worker.dead(1)
    r = client.get("/", params={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    page = client.get(f"/groups/{GROUP}/dead").text  # the client kept the cookie
    assert f'name="token" value="{token}"' in page
    client.cookies.clear()
    assert token not in client.get(f"/groups/{GROUP}/dead").text


def test_charts_count_published_events_and_dead_letters(client, worker) -> None:
    history = lambda: client.get(f"/api/groups/{GROUP}/history").json()  # noqa: E731
    eventually(lambda: history()["throughput"] or None, what="the first sample")
    worker.bus.publish_many([Event(type="order.paid", data={"order": i}) for i in range(3)])
    worker.bus.publish("parcel.shipped", {})  # not the group's: not counted
    eventually(lambda: len(worker.handled) == 3 or None, what="the orders handled")
    worker.dead(2)

    def counted() -> bool | None:
        h = history()
        return (sum(h["throughput"]) == 5 and max(h["dead_letters"]) == 2) or None

    eventually(counted, what="the samples")
    assert "event log" in history()["throughput_counts"]
    svg = client.get(f"/chart/{GROUP}.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<polyline" in svg.text


def test_asyncapi_of_an_app_and_without_one(start_console, client) -> None:
    assert "--app" in client.get("/asyncapi").text
    bus = EventBus(MemoryAdapter(), config=BusConfig(broker="memory", url=None))

    @bus.subscribe("order.*", group="shipping")
    def ship(event: Event) -> None:
        """Ship the order."""

    base = start_console(None, bus=bus)
    with httpx.Client(base_url=base) as c:
        doc = c.get("/api/asyncapi").json()
        assert any(op.get("x-eventbus-group") == "shipping" for op in doc["operations"].values())
        page = c.get("/asyncapi").text
        assert "Ship the order." in page and "shipping" in page
        groups = c.get("/api/groups").json()["groups"]  # the app's groups, in-process broker
        assert [g["name"] for g in groups] == ["shipping"]
    bus.close()


@pytest.mark.rabbitmq
def test_rabbitmq_says_what_it_cannot_show_and_hides_the_password(start_console) -> None:
    base = start_console(BusConfig(url="amqp://guest:guest@127.0.0.1:5672/"), groups=["billing"])
    with httpx.Client(base_url=base) as c:
        home = c.get("/").text
        assert "cannot list its groups" in home and "waiting and in-flight counts" in home
        assert "n/a" in home and 'data-group="billing"' in home
        log = c.get("/log").text
        assert "feature of the embedded SQLite broker" in log
        assert c.get("/api/log").status_code == 501
        assert "guest:guest" not in home
    wrong = "amqp://guest:wrong-pass-71x@127.0.0.1:5672/"
    base = start_console(BusConfig(url=wrong), groups=["billing"])
    with httpx.Client(base_url=base) as c:
        for path in ("/", "/groups/billing/dead", "/api/groups", "/outbox", "/tail"):
            r = c.get(path)
            assert "wrong-pass-71x" not in r.text, path
        assert "refused the login" in c.get("/groups/billing/dead").text


def test_the_command_prints_the_url_with_the_token(config, worker, db) -> None:
    """``python -m eventbus.console`` (what ``eventbus console`` runs) serves until stopped."""
    (db.parent / "shop.py").write_text(
        "from eventbus import EventBus\n"
        "bus = EventBus()\n"
        "@bus.subscribe('order.*', group='billing')\n"
        "def bill(event):\n"
        "    'Bill the order.'\n"
    )
    env = {**os.environ, "EVENTBUS_URL": config.url or "", "EVENTBUS_CONSOLE_TOKEN": "tok-42"}
    r = subprocess.run(
        [sys.executable, "-m", "eventbus.console", "--app", "nosuchmodule"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert r.returncode == 2 and "cannot import 'nosuchmodule'" in r.stderr
    assert "Traceback" not in r.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventbus.console", "--port", "0", "--app", "shop:bus"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=tok-42", line)
        assert url is not None, line
        assert 'data-group="billing"' in httpx.get(url.group(1)).text
        assert "Bill the order." in httpx.get(url.group(1) + "asyncapi").text
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl+C: a graceful stop, the CLI's exit code for it
        code = proc.wait(15)
    assert code == 130
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_outbox_pending_age_and_drain(db, start_console, token) -> None:
    """Events kept in the outbox while the broker file was locked are shown and drained."""
    config = BusConfig(
        url="sqlite:///bus.db",
        options={"busy_timeout": 0.1},
        publish={"retry_attempts": 1, "retry_timeout": 0.2, "close_timeout": 0.1},
    )
    bus = EventBus(config=config)
    bus.publish("order.paid", {"order": 0})
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the broker file
    kept = [bus.publish("order.paid", {"order": i}) for i in (1, 2)]
    bus.close()
    lock.execute("ROLLBACK")
    lock.close()
    assert [r.outcome for r in kept] == ["outbox", "outbox"]
    with httpx.Client(base_url=start_console(config), timeout=30) as c:
        state = c.get("/api/outbox").json()
        assert state["pending"] == 2 and state["oldest_age"] >= 0
        page = c.get("/outbox").text
        assert 'id="outbox-pending">2<' in page and "Drain now" in page
        assert c.post("/outbox/drain").status_code == 403
        r = c.post("/outbox/drain", data={"token": token, "confirmed": "yes"})
        assert r.status_code == 200 and "sent 2 event(s) from the outbox" in r.text
        assert c.get("/api/outbox").json()["pending"] == 0
        ids = [x["id"] for x in c.get("/api/log").json()["entries"]]
        assert ids[1:] == [r.id for r in kept]


def test_tail_streams_events_and_removes_its_group(client, worker, db) -> None:
    from eventbus import SqliteAdapter

    def tail_groups() -> list[str]:
        a = SqliteAdapter(db)
        try:
            return [g for g in a.groups() if g.startswith("eventbus-tail.")]
        finally:
            a.close()

    assert client.get("/tail/events", params={"pattern": "order.**x"}).status_code == 400
    with client.stream("GET", "/tail/events", params={"pattern": "order.*"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = (ln for ln in r.iter_lines() if ln.startswith("data: "))
        ready = json.loads(next(lines)[6:])
        assert ready["ready"] in tail_groups()
        sent = worker.bus.publish("order.created", {"order": 5})
        item = json.loads(next(lines)[6:])
        assert item["attributes"]["id"] == sent.id and item["data"] == {"order": 5}
    eventually(lambda: tail_groups() == [] or None, what="the tail's group to go")


def test_a_taken_port_is_a_clean_error(served, config) -> None:
    from eventbus.console import serve

    port = int(served("").rsplit(":", 1)[1])
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
        serve(config, port=port, token="x")


def test_the_token_and_port_can_come_from_the_config_file(tmp_path) -> None:
    """``[console] token`` (a ``${VAR}`` in real configs) and ``port`` from the file;
    the token is masked in ``repr(BusConfig)``."""
    from eventbus import load_config

    cfg_file = tmp_path / "eventbus.toml"
    cfg_file.write_text(
        f'url = "sqlite:///{tmp_path / "bus.db"}"\n[console]\ntoken = "from-file-9"\nport = 0\n'
    )
    assert "from-file-9" not in repr(load_config(cfg_file))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBUS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventbus.console", "--config", str(cfg_file)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert re.search(r"http://127\.0\.0\.1:\d+/\?token=from-file-9", line), line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)

"""The SQS wire form, filter policies, queue names and settings (no server needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from eventbus_sqs import (
    MAX_MESSAGE_SIZE,
    SqsAdapter,
    SqsSettings,
    filter_policy,
    from_wire,
    sqs_size,
    to_wire,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import ConfigError, Event, EventBus, Message, MessageTooLarge, encode
from eventbus.adapter import H_REASON

pytestmark = [pytest.mark.sqs]


def _round_trip(message: Message) -> Message:
    wire = to_wire(message)
    assert len(wire.attributes) <= 10
    back, ours = from_wire(wire.body, wire.attributes)
    assert ours
    return back


def test_an_event_round_trips_exactly() -> None:
    weird = "Ünïcødé \"quoted\" 'single' / slashes \\ back ✓ 注文\n\ttab"
    event = Event(
        type="order.created",
        data={"id": 1, "note": weird},
        source="/orders",
        subject=weird,
        correlationid="c-1",
        causationid=weird,
        traceparent="00-ab-cd-01",
        key="k/ü 1",
        dataschema="https://x/schema.json",
        extensions={"tenant": "acme", "note": weird},
    )
    m = encode(event)
    back = _round_trip(m)
    assert back.body == m.body and back.topic == m.topic and back.key == m.key
    assert back.headers == m.headers


@pytest.mark.parametrize(
    "body",
    [b"", b"plain text", bytes(range(256)), b"with\r\ncrlf", "\ufffe".encode(), b"\xff\xfe"],
)
def test_payloads_round_trip_byte_exact(body: bytes) -> None:
    m = encode(Event(type="blob.x", data=body, source="/s"))
    assert _round_trip(m).body == body


def test_headers_the_core_would_not_write_still_round_trip() -> None:
    m = Message(topic="a.b", body=b"x", headers={"type": "other", "x": ""}, key="k")
    back = _round_trip(m)
    assert (back.topic, back.headers, back.key) == ("a.b", {"type": "other", "x": ""}, "k")
    m = Message(topic="a.b", body=b"x", headers={"specversion": "0.3", "partitionkey": "p"})
    back = _round_trip(m)
    assert back.headers == {"specversion": "0.3", "partitionkey": "p"}  # no type: none
    assert back.key is None


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(
        st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
        st.text(st.characters(blacklist_characters="\x00"), max_size=30),
        max_size=12,
    ),
    body=st.binary(max_size=64),
    key=st.none() | st.text(max_size=10),
)
def test_any_message_round_trips(headers: dict[str, str], body: bytes, key: str | None) -> None:
    m = Message(topic="t.x", body=body, headers=headers, key=key)
    back = _round_trip(m)
    assert (back.topic, back.body, back.headers, back.key) == (m.topic, body, headers, key)


def test_the_wire_is_no_bigger_than_message_size_for_typical_events() -> None:
    for data in ({"id": 1, "user": "Ana", "total": 42.9}, "text", b"x" * 1000):
        bus_event = Event(
            type="order.created",
            data=data,
            source="//eventbus/host/123",
            time=__import__("datetime").datetime.now(__import__("datetime").timezone.utc),
            subject="orders/1",
            correlationid="corr-1",
            extensions={"tenant": "acme"},
        )
        m = encode(bus_event)
        assert to_wire(m).size <= m.size


def test_sqs_size_counts_names_types_and_values() -> None:
    attrs = {
        "ab": {"DataType": "String", "StringValue": "é"},
        "b": {"DataType": "Binary", "BinaryValue": b"123"},
    }
    assert sqs_size("xy", attrs) == 2 + (2 + 6 + 2) + (1 + 6 + 3)


def test_foreign_messages_come_as_they_are() -> None:
    attrs = {
        "type": {"DataType": "String", "StringValue": "ext.raw"},
        "ce": {"DataType": "String", "StringValue": "[not ours"},
        "n": {"DataType": "Number", "StringValue": "3"},
        H_REASON: {"DataType": "String", "StringValue": "why"},
        "deadletter": {"DataType": "String", "StringValue": "{}"},  # as older versions wrote
    }
    m, ours = from_wire("\ufffdnot json", attrs)
    assert not ours
    assert m.topic == "ext.raw" and m.body == "\ufffdnot json".encode()
    assert m.headers == {"type": "ext.raw", "ce": "[not ours", "n": "3"}
    m, ours = from_wire("x", None)
    assert not ours and m.topic == "" and m.headers == {}


@pytest.mark.parametrize("ce", ["[true]", "[5]", "[0,1]", '[1,"id"]', "{}", '[0,{"a":1}]'])
def test_damaged_envelopes_are_foreign_not_errors(ce: str) -> None:
    m, ours = from_wire("!!", {"ce": {"DataType": "String", "StringValue": ce}})
    assert not ours and m.headers == {"ce": ce}


def test_over_256_kib_as_sqs_counts_is_refused_before_sending() -> None:
    adapter = SqsAdapter(SqsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    try:
        bus = EventBus(adapter)
        # 200,000 random-ish bytes pass the core's 262,144 check, but go base64 on the wire
        with pytest.raises(MessageTooLarge, match="base64"):
            bus.publish("blob.x", bytes(range(256)) * 800)
        with pytest.raises(MessageTooLarge):
            bus.publish("blob.x", b"x" * MAX_MESSAGE_SIZE)
    finally:
        adapter.close()


# -- filter policies ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patterns", "policy"),
    [
        (["order.created"], {"type": ["order.created"]}),
        (["order.*"], {"type": [{"prefix": "order."}]}),
        (["order.#"], {"type": [{"prefix": "order"}]}),
        (["a.b.*.c", "x"], {"type": [{"prefix": "a.b."}, "x"]}),
        (["a.#.b"], {"type": [{"prefix": "a"}]}),
        (["*.created"], None),
        (["order.created", "#"], None),
    ],
)
def test_filter_policy(patterns: list[str], policy: dict[str, object] | None) -> None:
    assert filter_policy(patterns) == policy


# -- settings and names -----------------------------------------------------------------
def test_url_and_options() -> None:
    s = SqsSettings.from_url(
        "sqs://127.0.0.1:4566?region=eu-west-1&fifo=true&lease=7.5&mode=sqs", {"prefix": "p-"}
    )
    assert s.endpoint_url == "http://127.0.0.1:4566" and s.region == "eu-west-1"
    assert s.fifo and s.mode == "sqs" and s.prefix == "p-" and s.visibility == 8
    assert s.capabilities.ordering_per_key and s.capabilities.dedup
    assert s.capabilities.lease_seconds == 8.0
    assert SqsSettings.from_url("sqs://").endpoint_url is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqs://key:secret@host", "credentials"),
        ("sqs://?regoin=x", "did you mean 'region'"),
        ("sqs://?mode=kafka", "mode"),
        ("sqs://?lease=0", "lease"),
        ("sqs://?fifo=maybe", "true or false"),
        ("sqs://?max_receive_count=2.5", "whole number"),
        ("sqs://?prefix=a.b", "prefix"),
        ("sqs://?topic=x.fifo", "topic"),
    ],
)
def test_bad_settings_say_what_to_fix(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        SqsSettings.from_url(url)
    assert "secret" not in str(info.value)


def test_queue_names_are_valid_unique_and_never_a_dlq_name() -> None:
    s = SqsSettings(prefix="eb-")
    assert s.queue_name("billing") == "eb-billing"
    assert s.dlq_name("billing") == "eb-billing-dlq"
    names = {s.queue_name(g) for g in ("shop.billing", "shop-billing", "x-dlq", "a" * 200, "")}
    assert len(names) == 5
    for name in names:
        assert len(name) <= 76 and not s.is_dlq_name(name)
        assert all(c.isalnum() or c in "-_" for c in name)
    f = SqsSettings(prefix="eb-", fifo=True)
    assert f.queue_name("b") == "eb-b.fifo" and f.dlq_name("b") == "eb-b-dlq.fifo"
    assert len(f.dlq_name("a" * 200)) <= 80


def test_the_plugin_is_found_and_imports_no_sdk() -> None:
    code = (
        "import sys, eventbus\n"
        "spec = eventbus.find_spec('sqs')\n"
        "assert spec.schemes == ('sqs',) and spec.extra == 'sqs' and spec.sdk == 'boto3'\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
        "print(spec.capabilities.max_message_size)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(MAX_MESSAGE_SIZE)


def test_policy_json_is_what_sns_takes() -> None:
    policy = filter_policy(["order.*", "user.created"])
    assert json.loads(json.dumps(policy)) == {"type": [{"prefix": "order."}, "user.created"]}


def test_batches_hold_at_most_10_messages_and_256_kib() -> None:
    adapter = SqsAdapter(SqsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    try:
        small = [encode(Event(type="a.b", data=i, source="/s")) for i in range(25)]
        big = [encode(Event(type="a.b", data="x" * 100_000, source="/s")) for _ in range(5)]
        items = [(m, to_wire(m)) for m in small + big]
        batches = list(adapter._batches(items))
        assert [len(b) for b in batches] == [10, 10, 7, 2, 1]
        assert all(sum(w.size for _, w in b) <= MAX_MESSAGE_SIZE for b in batches)
        assert [m for b in batches for m, _ in b] == small + big
    finally:
        adapter.close()

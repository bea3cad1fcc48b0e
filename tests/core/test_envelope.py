"""The envelope: CloudEvents attributes, payload kinds, and a decoder that trusts nothing."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import DecodeError, EncodeError, Event, Message, decode, encode

pytestmark = pytest.mark.memory


def ev(data, **kw) -> Event:
    return Event(type="order.created", data=data, source="/orders", **kw)


def test_json_round_trip_with_every_attribute() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    e = ev(
        {"id": 1, "user": "Ana", "total": 42.9},
        time=t,
        subject="o/1",
        correlationid="c",
        causationid="k",
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        key="ana",
        dataschema="https://example/s",
        extensions={"tenant": "acme"},
    )
    m = encode(e)
    assert m.headers["datacontenttype"] == "application/json"
    assert m.headers["time"] == "2026-01-02T03:04:05.678000Z"
    assert m.key == "ana"
    back = decode(m)
    assert back == e.replace(datacontenttype="application/json")


@pytest.mark.parametrize("payload", [b"", bytes(range(256)), b"\x00\xff" * 1000, bytearray(b"ab")])
def test_bytes_pass_through_byte_exact(payload) -> None:
    m = encode(ev(payload))
    assert m.body == bytes(payload)
    assert m.headers["datacontenttype"] == "application/octet-stream"
    assert decode(m).data == bytes(payload)


def test_text_payload_is_utf8_text() -> None:
    m = encode(ev("héllo ✓"))
    assert m.body == "héllo ✓".encode()
    assert decode(m).data == "héllo ✓"


@pytest.mark.parametrize("bad", [object(), {1, 2}, math.nan, {"x": math.inf}, "\ud800"])
def test_unserialisable_payload_is_a_clear_encode_error(bad) -> None:
    with pytest.raises(EncodeError):
        encode(ev(bad))


@pytest.mark.parametrize(
    "kw",
    [
        {"subject": 5},
        {"extensions": {"Bad-Name": "x"}},
        {"extensions": {"id": "x"}},
        {"subject": "a\x00b"},
        {"subject": "caf\u00e9 \ud800"},  # not encodable as UTF-8 (a lone surrogate)
        {"extensions": {"tenant": "\udc80"}},
    ],
)
def test_bad_attributes_are_encode_errors(kw) -> None:
    with pytest.raises(EncodeError):
        encode(ev({}, **kw))


def test_wildcard_or_empty_type_cannot_be_published() -> None:
    for t in ("order.*", ""):
        with pytest.raises(EncodeError):
            encode(Event(type=t, data={}, source="/s"))


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({}, b"{}", "missing required"),
        ({"id": "1", "source": "/s", "type": "t", "specversion": "0.3"}, b"{}", "specversion"),
        ({"id": "1", "source": "/s", "type": "t", "specversion": "1.0"}, b"\xff", "UTF-8"),
        ({"id": "1", "source": "/s", "type": "t", "specversion": "1.0"}, b"{nope", "JSON"),
        (
            {"id": "1", "source": "/s", "type": "t", "specversion": "1.0", "time": "yesterday"},
            b"1",
            "RFC 3339",
        ),
        (
            {"id": "1", "source": "/s", "type": "t", "specversion": "1.0", "time": "2026-11-28"},
            b"1",
            "no time zone",
        ),
    ],
)
def test_malformed_messages_are_decode_errors_with_reason(headers, body, why) -> None:
    with pytest.raises(DecodeError, match=why):
        decode(Message(topic="t", body=body, headers=headers))


@pytest.mark.parametrize(
    "text", ["2026-11-28T10:00:00.5Z", "2026-11-28T10:00:00.5z", "2026-11-28T11:00:00.5+01:00"]
)
def test_time_reads_any_rfc3339_zone(text: str) -> None:
    headers = {"id": "1", "source": "/s", "type": "t", "specversion": "1.0", "time": text}
    t = decode(Message("t", b"1", headers)).time
    assert t == datetime(2026, 11, 28, 10, 0, 0, 500000, tzinfo=timezone.utc)


def test_decoder_never_evaluates_or_unpickles() -> None:
    import pickle

    payload = pickle.dumps({"x": 1})
    m = Message(
        "t",
        payload,
        {
            "id": "1",
            "source": "/s",
            "type": "t",
            "specversion": "1.0",
            "datacontenttype": "application/python-pickle",
        },
    )
    assert decode(m).data == payload  # opaque bytes, never unpickled


header_values = st.one_of(st.text(max_size=30), st.binary(max_size=10), st.integers(), st.none())


@settings(max_examples=1500, deadline=None)
@given(
    st.binary(max_size=200),
    st.dictionaries(
        st.one_of(
            st.sampled_from(
                [
                    "id",
                    "source",
                    "type",
                    "specversion",
                    "time",
                    "datacontenttype",
                    "subject",
                    "partitionkey",
                ]
            ),
            st.text(max_size=10),
        ),
        header_values,
        max_size=10,
    ),
)
def test_fuzz_decoder_returns_event_or_decode_error(body: bytes, headers: dict) -> None:
    try:
        event = decode(Message(topic="t", body=body, headers=headers))  # type: ignore[arg-type]
    except DecodeError:
        return
    assert isinstance(event, Event)


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_value_round_trips(value) -> None:
    assert decode(encode(ev(value))).data == value


# -- the fast paths give exactly what the plain ones give ------------------------


def test_events_built_on_the_fast_path_are_plain_frozen_events() -> None:
    import dataclasses

    from eventbus import EventBus

    bus = EventBus("memory://", source="/orders")
    fast = bus.event("order.created", {"n": 1}, key="k1", subject="s")
    assert type(fast) is Event
    slow = Event(**{f.name: getattr(fast, f.name) for f in dataclasses.fields(Event)})
    assert fast == slow and repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.type = "other"  # type: ignore[misc]
    decoded = decode(encode(fast))
    assert type(decoded) is Event and decoded == fast.replace(datacontenttype="application/json")


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        ' {"a": [1, 2]} ',
        '{"a":1}\n',
        "  3",
        '"s"',
        "null",
        '{"a":1}x',
        "1 2",
        "[1,",
        "nul",
        " ",
        '{"a":NaN}',
        '{"a":1} {"b":2}',
    ],
)
def test_json_payloads_decode_exactly_as_json_loads(text: str) -> None:
    import json

    message = encode(ev(b""))
    message.body = text.encode()
    message.headers["datacontenttype"] = "application/json"
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(DecodeError, match="not valid JSON") as got:
            decode(message)
        assert str(exc)[:60] in str(got.value)
    else:
        assert decode(message).data == expected


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(timezones=st.sampled_from([timezone.utc, None]))
    | st.datetimes(timezones=st.timezones())
)
def test_time_text_is_isoformat_with_z(t: datetime) -> None:
    reference = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).isoformat()
    assert encode(ev(None, time=t)).headers["time"] == reference.replace("+00:00", "Z")


def test_max_size_counts_header_values_not_only_the_body() -> None:
    from eventbus import MessageTooLarge

    event = ev({"n": 1}, subject="x" * 5000)
    size = encode(event).size
    assert encode(event, max_size=size).size == size
    with pytest.raises(MessageTooLarge, match=f"is {size} bytes"):
        encode(event, max_size=size - 1)
    small = ev({"n": 1})
    assert encode(small, max_size=encode(small).size).body == b'{"n":1}'

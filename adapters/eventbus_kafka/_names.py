"""Kafka names for eventbus things: topics per event type, internal topics, groups, regexes.

One Kafka topic per event type. Kafka topic names allow only ``[A-Za-z0-9._-]``
(at most 249 characters), while an event type is any string of dot-separated
words. So a type is *escaped*: ``A-Z a-z 0-9 -`` and the dots stay as they are,
every other character (``_`` included) becomes ``_XX`` per UTF-8 byte, upper-case
hex. ``order.created`` stays ``order.created``; ``user_signed-up`` becomes
``user_5Fsigned-up``; ``commande.créée`` becomes ``commande.cr_C3_A9_C3_A9e``.

Why ``_`` is escaped too: an escaped type never contains ``_`` except as
``_`` + two upper-case hex digits. Names outside that alphabet (``__eventbus...``,
``__consumer_offsets``) can therefore never be an event topic, and the regexes
below never match them. It also avoids Kafka's refusal to create ``a_b`` when
``a.b`` exists (they collide in its metric names).

Internal topics of a group live under ``<prefix>__eventbus.``: ``retry.<group>``
(non-blocking retries) and ``dlt.<group>`` (dead letters).
"""

from __future__ import annotations

import functools
import hashlib
import re

from eventbus import EncodeError

__all__ = [
    "MAX_TOPIC",
    "dead_topic",
    "escape",
    "group_regex",
    "is_wild",
    "marks_group",
    "pattern_regex",
    "retry_topic",
    "topic_for",
    "unescape",
]

MAX_TOPIC = 249  # Kafka's limit on topic names
_PLAIN = re.compile(r"[A-Za-z0-9.\-]*\Z")
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_ESCAPES = re.compile(r"(?:_[0-9A-F]{2})+")
_LEGAL_PREFIX = re.compile(r"[A-Za-z0-9._\-]*\Z")
#: One word of an escaped topic, as a regex both Python and librdkafka accept
#: (librdkafka's regex has no ``(?:...)``; ``{n}`` is avoided too).
WORD = "([A-Za-z0-9-]|_[0-9A-F][0-9A-F])*"
INTERNAL = "__eventbus."


def check_prefix(prefix: str) -> str:
    if not _LEGAL_PREFIX.match(prefix) or len(prefix) > 100:
        raise ValueError(
            f"prefix {prefix!r}: Kafka names allow only A-Z a-z 0-9 . _ - (at most 100 here)"
        )
    return prefix


def escape(text: str) -> str:
    """``text`` in the topic-name alphabet (dots kept; see the module docstring)."""
    if _PLAIN.match(text):
        return text
    return "".join(
        ch if ch in _KEEP else "".join(f"_{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in text
    )


def unescape(name: str) -> str:
    """The inverse of :func:`escape` (invalid UTF-8 becomes U+FFFD)."""
    if "_" not in name:
        return name
    return _ESCAPES.sub(
        lambda m: bytes.fromhex(m.group(0).replace("_", "")).decode("utf-8", "replace"), name
    )


@functools.lru_cache(maxsize=8192)
def topic_for(event_type: str, prefix: str = "") -> str:
    """The Kafka topic of ``event_type``; :class:`EncodeError` if Kafka can't name it."""
    name = prefix + escape(event_type)
    if len(name) > MAX_TOPIC:
        raise EncodeError(
            f"event type {event_type[:60]!r}... makes a Kafka topic name of {len(name)} "
            f"characters; Kafka allows {MAX_TOPIC} (non-ASCII characters take 3-9 each)"
        )
    if name in (".", ".."):
        raise EncodeError(f"event type {event_type!r} cannot be a Kafka topic name")
    return name


def _internal(prefix: str, kind: str, group: str) -> str:
    name = f"{prefix}{INTERNAL}{kind}.{escape(group)}"
    if len(name) > MAX_TOPIC:  # keep it unique and legal: cut, then a hash of the whole
        digest = hashlib.sha256(group.encode()).hexdigest()[:12]
        name = name[: MAX_TOPIC - 13] + "-" + digest
    return name


def retry_topic(prefix: str, group: str) -> str:
    """The topic holding ``group``'s retries until they are due."""
    return _internal(prefix, "retry", group)


def dead_topic(prefix: str, group: str) -> str:
    """The topic holding ``group``'s dead letters."""
    return _internal(prefix, "dlt", group)


def marks_group(kafka_group: str) -> str:
    """The companion consumer group that records how far each partition was handed out."""
    return f"{kafka_group}.__eventbus-marks"


def is_wild(pattern: str) -> bool:
    return "*" in pattern or "#" in pattern


def pattern_regex(pattern: str) -> str:
    """The body of a regex matching the escaped topics of ``pattern`` (AMQP topic rules).

    Same construction as :func:`eventbus.pattern_to_regex`, in the escaped-topic
    alphabet: a word is :data:`WORD`, ``#`` is zero or more of them. Property-tested
    against :func:`eventbus.matches` in ``tests/kafka/test_names.py``; the consumer
    still applies :class:`eventbus.Matcher` to every message as the exact check.
    """
    words: list[str] = []
    for word in pattern.split("."):
        if not (word == "#" and words and words[-1] == "#"):  # '#.#' means '#'
            words.append(word)
    if words == ["#"]:
        return f"{WORD}(\\.{WORD})*"
    out = ""
    for i, word in enumerate(words):
        if word == "#":
            out += f"({WORD}\\.)*" if i == 0 else f"(\\.{WORD})*"
            continue
        sep = "" if i == 0 or (i == 1 and words[0] == "#") else "\\."
        out += sep + (WORD if word == "*" else re.escape(escape(word)).replace("\\-", "-"))
    return out


def group_regex(prefix: str, pattern: str) -> str:
    """The anchored subscription regex for ``pattern`` (librdkafka wants a leading ``^``)."""
    return "^" + re.escape(prefix).replace("\\-", "-") + pattern_regex(pattern) + "$"

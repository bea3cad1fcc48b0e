"""Service Bus entities for a bus: names, rules, and who creates them.

One topic per bus; one subscription per group. A group's subscription has
these rules (rules of a subscription are OR-ed):

- ``eventbus-<hash of its filter>``: SQL ``eventbus_to IS NULL AND (<pattern> OR ...)``,
  as many rules as it takes to keep each filter within Service Bus's 1,024
  characters (a group with many patterns has several); each pattern
  a coarse ``sys.Label`` (= subject = event type) test: ``=`` for a pattern
  without wildcards, else ``LIKE`` with every run of wildcard words turned
  into ``%``. ``LIKE`` cannot say "one word", so this matches a superset; the
  consumer checks every message with :class:`eventbus.Matcher` and completes
  the ones that are not the group's (the exact AMQP-topic meaning).
- ``eventbus-retry``: a correlation filter on ``eventbus_to = <subscription>``.
  A retry with a delay is a scheduled copy sent to the topic addressed to one
  subscription; the pattern rules keep it away from every other group.

Pattern rules are named by their filter, so new patterns mean new rules: they
are created before the old ones are deleted, and the subscription never
matches nothing in between.

Who creates them (``entities=``):

- ``"create"``: :class:`AdministrationEntities`, the SDK's
  ``ServiceBusAdministrationClient`` (needs the Manage right; the emulator and
  many production namespaces don't allow it).
- ``"existing"``: :class:`ExistingEntities`: nothing is created; the topic and
  subscriptions must exist (the emulator's ``Config.json``, Bicep, ...). Their
  rules may be coarser (even ``$Default``, match-all); the exact check holds.
- any object with ``ensure_topic`` / ``ensure_subscription`` / ``close``
  (the :class:`Entities` protocol), e.g. the test broker's
  ``TestBrokerEntities``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from ._codec import ATTEMPT, DEFAULT_SESSION, RETRY_TO, session_for_key

__all__ = [
    "ATTEMPT",
    "DEFAULT_SESSION",
    "MAX_SQL",
    "RETRY_RULE",
    "RETRY_TO",
    "AdministrationEntities",
    "Entities",
    "ExistingEntities",
    "RuleSpec",
    "SubscriptionSpec",
    "pattern_rules",
    "pattern_sql",
    "session_for_key",
    "subscription_name",
    "subscription_spec",
]

#: Service Bus's limit on the length of a SQL filter (characters).
MAX_SQL = 1024
#: The rule that lets a group's scheduled retry copies (``eventbus_to``) in.
RETRY_RULE = "eventbus-retry"

_NAME_OK = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,48}[a-z0-9])?\Z")


@dataclass(frozen=True)
class RuleSpec:
    """A subscription rule: a SQL filter or a correlation filter (exactly one)."""

    name: str
    sql: str | None = None
    correlation: Mapping[str, Any] | None = None  # {"properties": {...}, "subject": ...}

    def as_config(self) -> dict[str, Any]:
        """The rule in the emulator's Config.json shape."""
        if self.sql is not None:
            return {
                "Name": self.name,
                "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": self.sql}},
            }
        corr = dict(self.correlation or {})
        out: dict[str, Any] = {}
        for key, value in corr.items():
            camel = "".join(w.capitalize() for w in key.split("_"))
            out[camel] = dict(value) if key == "properties" else value
        return {
            "Name": self.name,
            "Properties": {"FilterType": "Correlation", "CorrelationFilter": out},
        }


@dataclass(frozen=True)
class SubscriptionSpec:
    """What a group's subscription must look like."""

    topic: str
    name: str
    rules: tuple[RuleSpec, ...]
    lock_duration: float = 30.0
    max_delivery_count: int = 10
    extra: Mapping[str, Any] = field(default_factory=dict)
    requires_session: bool = False


class Entities(Protocol):
    """Makes sure the bus's topic and a group's subscription exist as specified."""

    def ensure_topic(self, topic: str) -> None: ...

    def ensure_subscription(self, spec: SubscriptionSpec) -> None: ...

    def close(self) -> None: ...


def subscription_name(group: str) -> str:
    """The subscription for ``group``: the group itself when Service Bus allows it.

    Service Bus names are case-insensitive, at most 50 characters of letters,
    digits, ``.``, ``-``, ``_``. Any other group becomes a readable prefix plus
    a hash, so two groups never share a subscription.
    """
    if _NAME_OK.match(group):
        return group
    digest = hashlib.sha1(group.encode("utf-8")).hexdigest()[:10]  # noqa: S324 - a name, not security
    readable = re.sub(r"[^a-z0-9._-]+", "-", group.lower()).strip("-._")[:38]
    return f"{readable}-{digest}" if readable else f"g-{digest}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _escape_like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def pattern_sql(pattern: str) -> str | None:
    """A SQL test on ``sys.Label`` matching every topic ``pattern`` matches (and maybe more).

    None means "everything" (a pattern made only of wildcards).
    """
    words = pattern.split(".")
    if "*" not in words and "#" not in words:
        return f"sys.Label = {_quote(pattern)}"
    groups: list[list[str]] = [[]]
    previous_wild = False
    for word in words:
        if word in ("*", "#"):
            if not previous_wild:
                groups.append([])
            previous_wild = True
        else:
            groups[-1].append(word)
            previous_wild = False
    like = "%".join(".".join(_escape_like(w) for w in g) for g in groups)
    if like.strip("%") == "":
        return None
    return f"sys.Label LIKE {_quote(like)} ESCAPE '!'"


def subscription_spec(
    topic: str,
    group: str,
    patterns: Sequence[str],
    *,
    lock_duration: float,
    max_delivery_count: int,
    requires_session: bool = False,
) -> SubscriptionSpec:
    """The subscription of ``group``: its pattern rules, then the retry rule."""
    name = subscription_name(group)
    rules = tuple(RuleSpec(_rule_name(sql), sql=sql) for sql in pattern_rules(patterns))
    rules += (RuleSpec(RETRY_RULE, correlation={"properties": {RETRY_TO: name}}),)
    return SubscriptionSpec(
        topic, name, rules, lock_duration, max_delivery_count, requires_session=requires_session
    )


def pattern_rules(patterns: Sequence[str]) -> list[str]:
    """The SQL filters for ``patterns``: as few as can be, each at most ``MAX_SQL`` characters
    (Service Bus's limit; a subscription's rules are OR-ed, so splitting keeps the meaning)."""
    tests = [pattern_sql(p) for p in dict.fromkeys(patterns)]
    if any(t is None for t in tests) or not tests:
        return [f"{RETRY_TO} IS NULL"]
    chunks: list[list[str]] = [[]]
    for t in tests:
        assert t is not None
        if chunks[-1] and len(_sql(chunks[-1] + [t])) > MAX_SQL:
            chunks.append([])
        chunks[-1].append(t)
    return [_sql(c) for c in chunks]


def _sql(tests: list[str]) -> str:
    return f"{RETRY_TO} IS NULL AND (" + " OR ".join(tests) + ")"


def _rule_name(sql: str) -> str:
    """A pattern rule is named by its filter: a change of patterns creates the new rules
    before the old ones are deleted, so the subscription never matches nothing."""
    return "eventbus-" + hashlib.sha256(sql.encode("utf-8")).hexdigest()[:12]


class ExistingEntities:
    """Creates nothing: the topic and subscriptions must already exist."""

    def ensure_topic(self, topic: str) -> None:
        return None

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        return None

    def close(self) -> None:
        return None


class AdministrationEntities:
    """Creates and updates entities with the SDK's ``ServiceBusAdministrationClient``.

    Needs the Manage right on the namespace. Subscriptions are created with the
    spec's lock duration, max delivery count and ``requires_session``; their
    rules are replaced by the spec's (``$Default`` is removed). Existing
    subscriptions keep their settings except the rules; one whose
    ``requires_session`` differs from the spec's is an error (Service Bus
    cannot change it: delete the subscription, or use another group name).
    """

    def __init__(
        self, connection_string: str | None = None, *, client: Any = None, **client_kwargs: Any
    ) -> None:
        if client is None:
            from azure.servicebus.management import ServiceBusAdministrationClient

            client = ServiceBusAdministrationClient.from_connection_string(
                connection_string or "", **client_kwargs
            )
        self._client = client
        self._topics: set[str] = set()

    def ensure_topic(self, topic: str) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        if topic in self._topics:
            return
        try:
            self._client.get_topic(topic)
        except ResourceNotFoundError:
            try:
                self._client.create_topic(topic)
            except ResourceExistsError:
                pass
        self._topics.add(topic)

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
        from azure.servicebus.management import CorrelationRuleFilter, SqlRuleFilter

        try:
            props = self._client.get_subscription(spec.topic, spec.name)
        except ResourceNotFoundError:
            try:
                self._client.create_subscription(
                    spec.topic,
                    spec.name,
                    lock_duration=timedelta(seconds=spec.lock_duration),
                    max_delivery_count=spec.max_delivery_count,
                    requires_session=spec.requires_session,
                    **dict(spec.extra),
                )
            except ResourceExistsError:
                pass
        else:
            if bool(getattr(props, "requires_session", False)) != spec.requires_session:
                raise ValueError(
                    f"subscription {spec.topic}/{spec.name} has requires_session="
                    f"{not spec.requires_session}; the adapter's sessions setting needs "
                    f"{spec.requires_session} (Service Bus cannot change it: delete it first)"
                )
        wanted = {r.name: r for r in spec.rules}
        existing = {r.name: r for r in self._client.list_rules(spec.topic, spec.name)}
        for rule in spec.rules:  # first every rule wanted, then away with the others
            current = existing.get(rule.name)
            if current is not None and _same_rule(current, rule):
                continue
            if current is not None:  # same name, another filter: the retry rule, or by hand
                self._client.delete_rule(spec.topic, spec.name, rule.name)
            if rule.sql is not None:
                flt: Any = SqlRuleFilter(rule.sql)
            else:
                corr = dict(rule.correlation or {})
                flt = CorrelationRuleFilter(
                    properties=dict(corr.pop("properties", {}) or {}), **corr
                )
            try:
                self._client.create_rule(spec.topic, spec.name, rule.name, filter=flt)
            except ResourceExistsError:
                pass
        for name in existing:
            if name not in wanted:
                self._client.delete_rule(spec.topic, spec.name, name)

    def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a subscription; a missing one is not an error."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._client.delete_subscription(topic, name)
        except ResourceNotFoundError:
            pass

    def close(self) -> None:
        self._client.close()


def _same_rule(current: Any, rule: RuleSpec) -> bool:
    flt = getattr(current, "filter", None)
    if rule.sql is not None:
        return getattr(flt, "sql_expression", None) == rule.sql
    props = getattr(flt, "properties", None)
    return dict(props or {}) == dict((rule.correlation or {}).get("properties", {}))

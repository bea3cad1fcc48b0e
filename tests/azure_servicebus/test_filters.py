"""Rule filters: the test broker's SQL subset, and the adapter's pattern -> SQL translation."""

from __future__ import annotations

import pytest
from eventbus_azure_servicebus import pattern_sql, subscription_name, subscription_spec
from eventbus_test_brokers.servicebus_broker._filters import (
    FilterError,
    compile_sql,
    correlation_matches,
)
from eventbus_test_brokers.servicebus_broker._store import Rule
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import matches

pytestmark = [pytest.mark.azure_servicebus]


def sql(expr: str, subject: str | None = None, **user: object) -> bool:
    system = {} if subject is None else {"subject": subject}
    return compile_sql(expr)(system, user)


def test_like_with_wildcards_and_escape() -> None:
    assert sql("sys.Label LIKE 'order.%'", "order.created")
    assert not sql("sys.Label LIKE 'order.%'", "orders")
    assert sql("sys.Label LIKE 'a_c'", "abc") and not sql("sys.Label LIKE 'a_c'", "abbc")
    assert sql("sys.Label LIKE 'a!_b%' ESCAPE '!'", "a_b.x")
    assert not sql("sys.Label LIKE 'a!_b%' ESCAPE '!'", "axb.x")
    assert sql("sys.Label NOT LIKE 'x%'", "order")
    assert sql("sys.Subject = 'it''s'", "it's")


def test_three_valued_logic_with_missing_properties() -> None:
    assert sql("region IS NULL", "s") and not sql("region IS NOT NULL", "s")
    assert not sql("region <> 'eu'", "s")  # unknown is not true
    assert not sql("NOT (region = 'eu')", "s")
    assert sql("region = 'eu' OR TRUE", "s")
    assert not sql("region = 'eu' AND TRUE", "s")
    assert sql("user.region = 'eu'", "s", region="eu")
    assert sql("[odd-name] = 1", None, **{"odd-name": 1})
    assert sql("EXISTS(tenant) AND tenant IN ('a', 'b')", None, tenant="b")
    assert not sql("tenant NOT IN ('a', 'b')", None, tenant="b")
    assert sql("n >= 2 AND n < 3", None, n=2)
    assert sql("1=1")


@pytest.mark.parametrize("bad", ["sys.Nope = 1", "a = ", "(a = 1", "a LIKE 1", "a = 1 b", "a ! 1"])
def test_sql_errors_are_reported(bad: str) -> None:
    with pytest.raises(FilterError):
        compile_sql(bad)


def test_correlation_filter() -> None:
    spec = {"subject": "order.created", "properties": {"tenant": "acme"}}
    assert correlation_matches(spec, {"subject": "order.created"}, {"tenant": "acme"})
    assert not correlation_matches(spec, {"subject": "order.created"}, {"tenant": "other"})
    assert not correlation_matches(spec, {}, {"tenant": "acme"})


def test_rules_from_the_emulator_config_shape() -> None:
    rule = Rule.from_config(
        {
            "Name": "r",
            "Properties": {
                "FilterType": "Correlation",
                "CorrelationFilter": {"Label": "x", "Properties": {"p": "v"}},
            },
        }
    )
    assert rule.matches({"subject": "x"}, {"p": "v"})
    assert not rule.matches({"subject": "y"}, {"p": "v"})
    with_action = {
        "FilterType": "Sql",
        "SqlFilter": {"SqlExpression": "x = 1"},
        "Action": {"SqlExpression": "SET x = 2"},
    }
    with pytest.raises(FilterError):
        Rule.from_config({"Name": "a", "Properties": with_action})


# -- the adapter's rules: a superset of the exact AMQP-topic meaning -------------------------
words = st.sampled_from(["a", "b", "order", "x_y", "50%", "it's", "!", ""])
topics = st.lists(words, min_size=1, max_size=5).map(".".join)
pattern_words = st.one_of(words, st.sampled_from(["*", "#"]))
patterns = st.lists(pattern_words, min_size=1, max_size=5).map(".".join)


@settings(max_examples=400, deadline=None)
@given(patterns, topics)
def test_pattern_rule_passes_every_topic_the_pattern_matches(pattern: str, topic: str) -> None:
    spec = subscription_spec("t", "g", [pattern], lock_duration=30, max_delivery_count=10)
    rule = Rule.from_config(spec.rules[0].as_config())
    if matches(pattern, topic):
        assert rule.matches({"subject": topic}, {}), (pattern, topic, rule.sql)
    if "*" not in pattern and "#" not in pattern:
        assert rule.matches({"subject": topic}, {}) == (pattern == topic)


def test_retry_copies_reach_only_their_own_subscription() -> None:
    mine = subscription_spec("t", "billing", ["order.*"], lock_duration=30, max_delivery_count=10)
    other = subscription_spec("t", "audit", ["#"], lock_duration=30, max_delivery_count=10)
    retry = {"eventbus_to": "billing"}

    def gets(spec: object, user: dict[str, str]) -> bool:
        rules = [Rule.from_config(r.as_config()) for r in spec.rules]  # type: ignore[attr-defined]
        return any(r.matches({"subject": "order.created"}, user) for r in rules)

    assert gets(mine, retry) and not gets(other, retry)
    assert gets(mine, {}) and gets(other, {})
    assert pattern_sql("#") is None and pattern_sql("*.*") is None


def test_subscription_names_follow_service_bus_rules() -> None:
    assert subscription_name("t1a2b3c001-billing") == "t1a2b3c001-billing"
    groups = ("Billing", "billing ", "app.handlers.<locals>.f", "x" * 80, "✓")
    odd = [subscription_name(g) for g in groups]
    assert all(len(n) <= 50 and n == n.lower() for n in odd)
    assert len(set(odd)) == len(odd) and "billing" not in odd

"""The speed goals of the issues, as data, and what one run measured of each.

A goal is either an absolute rate of an embedded case (``baseline`` None: events/s of
``bench_embedded.py``'s ``metric`` case) or a ratio: eventbus's ``metric`` case over the
``baseline`` (contender, case) of the same broker's throughput rows, from the same run.
A typed-contracts goal (``baseline`` ``CONTRACTS``) is the consume rate of handlers
taking ``metric`` models over the dict path's, from ``bench_contracts.py``.
A missed goal is profiled with ``bench_profile.py --target <profile>``; a ``:by-hand``
target shows the profile of the same case against raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from results import (
    BATCHED,
    BY_HAND,
    CONSUME,
    RAW,
    SINGLE,
    contracts,
    embedded,
    ratio,
    throughput,
)

#: the baseline of the typed-contracts goals: the dict path of the same run
CONTRACTS = ("the dict path", "consume")


@dataclass(frozen=True)
class Goal:
    issue: str
    broker: str
    text: str
    metric: str  # an embedded case, or the case of the eventbus row
    baseline: tuple[str, str] | None  # (contender, case) of the ratio; None: absolute events/s
    target: float
    profile: str

    @property
    def unit(self) -> str:
        return "events/s" if self.baseline is None else "x"


_HAND = "the same job by hand on confluent-kafka"
GOALS: tuple[Goal, ...] = (
    Goal(
        "#2",
        "memory",
        "memory: publish -> handler >= 50,000 events/s",
        "memory publish->handler",
        None,
        50_000,
        "memory:publish",
    ),
    Goal(
        "#2",
        "sqlite",
        "sqlite: publish >= 5,000 events/s",
        "sqlite publish",
        None,
        5_000,
        "sqlite:publish",
    ),
    Goal(
        "#2",
        "sqlite",
        "sqlite: consume-with-ack between two processes >= 3,000 events/s",
        "sqlite publish->consume, 1 worker(s)",
        None,
        3_000,
        "sqlite:consume",
    ),
    Goal(
        "#4",
        "rabbitmq",
        "consume-with-ack >= 0.9 x raw pika",
        CONSUME,
        ("raw pika", CONSUME),
        0.9,
        "rabbitmq:consume",
    ),
    Goal(
        "#4",
        "rabbitmq",
        "confirmed publish (batched, pipelined) >= 5 x kombu",
        BATCHED,
        ("kombu", SINGLE),
        5.0,
        "rabbitmq:publish_many",
    ),
    Goal(
        "#5",
        "kafka",
        "publish (publish_many) >= 0.8 x raw produce",
        BATCHED,
        ("raw confluent-kafka", BATCHED),
        0.8,
        "kafka:publish_many",
    ),
    Goal(
        "#5",
        "kafka",
        "publish one by one >= 0.8 x raw produce+flush",
        SINGLE,
        ("raw confluent-kafka", SINGLE),
        0.8,
        "kafka:publish",
    ),
    Goal(
        "#5",
        "kafka",
        "consume (trivial handler) >= 0.8 x raw consume (json.loads + callback)",
        CONSUME,
        ("raw confluent-kafka", CONSUME),
        0.8,
        "kafka:consume",
    ),
    Goal(
        "#5",
        "kafka",
        f"publish (publish_many) >= 0.8 x {_HAND}",
        BATCHED,
        (BY_HAND, BATCHED),
        0.8,
        "kafka:publish_many:by-hand",
    ),
    Goal(
        "#5",
        "kafka",
        f"publish one by one >= 0.8 x {_HAND}",
        SINGLE,
        (BY_HAND, SINGLE),
        0.8,
        "kafka:publish:by-hand",
    ),
    Goal(
        "#5",
        "kafka",
        f"consume (trivial handler) >= 0.8 x {_HAND}",
        CONSUME,
        (BY_HAND, CONSUME),
        0.8,
        "kafka:consume:by-hand",
    ),
    Goal(
        "#6",
        "sqs",
        f"{BATCHED} >= 0.8 x raw boto3",
        BATCHED,
        ("raw boto3", BATCHED),
        0.8,
        "sqs:publish_many",
    ),
    Goal(
        "#6",
        "sqs",
        f"{SINGLE} >= 0.8 x raw boto3",
        SINGLE,
        ("raw boto3", SINGLE),
        0.8,
        "sqs:publish",
    ),
    Goal(
        "#6",
        "sqs",
        f"{CONSUME} >= 0.8 x raw boto3",
        CONSUME,
        ("raw boto3", CONSUME),
        0.8,
        "sqs:consume",
    ),
    *(
        Goal(
            "#18",
            broker,
            f"consume into a {kind} >= 0.9 x the dict path",
            kind,
            CONTRACTS,
            0.9,
            "",
        )
        for broker in ("memory", "rabbitmq")
        for kind in ("dataclass", "msgspec")
    ),
)


def measured(report: dict[str, Any], g: Goal) -> float | None:
    """What the run measured of one goal (events/s or a ratio); None if it didn't."""
    if g.baseline is None:
        return embedded(report).get(g.metric)
    if g.baseline == CONTRACTS:
        return contracts(report).get(g.broker, {}).get(g.metric)
    rows, _ = throughput(report, g.broker)
    who, case = g.baseline
    return ratio(rows.get("eventbus", {}).get(g.metric), rows.get(who, {}).get(case))


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal with what this run measured; met is None if not measured."""
    out = []
    for g in GOALS:
        value = measured(report, g)
        out.append(
            {
                "issue": g.issue,
                "broker": g.broker,
                "goal": g.text,
                "value": value,
                "target": g.target,
                "unit": g.unit,
                "profile": g.profile,
                "met": None if value is None else value >= g.target,
            }
        )
    return out


def goal_against_raw(broker: str, case: str) -> float | None:
    """The target of the goal eventbus / the broker's raw client in ``case``, if there is one."""
    for g in GOALS:
        if g.broker == broker and g.metric == case and g.baseline == (RAW.get(broker), case):
            return g.target
    return None

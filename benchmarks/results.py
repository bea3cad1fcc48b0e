"""Reading one run's report: each broker's throughput rows, the embedded cases, the latency rows.

The report is what ``runner.run`` collects (and ``docs/benchmarks.json`` holds): one result
per step, each ``{"ok": ..., "data": <the JSON the script wrote>}``. The tables below map the
keys each script writes to the page's rows (contenders) and columns (cases).
"""

from __future__ import annotations

from typing import Any

SINGLE, BATCHED, CONSUME = "publish single", "publish batched", "consume+ack"
CASES = (SINGLE, BATCHED, CONSUME)
BY_HAND = "raw + CloudEvents by hand"

#: the row of each broker's raw client: the baseline of the ratios eventbus / raw
RAW = {
    "rabbitmq": "raw pika",
    "kafka": "raw confluent-kafka",
    "sqs": "raw boto3",
    "azure_servicebus": "raw azure-servicebus",
}

Keys = dict[str, dict[str, str]]  # {contender: {case: key in the script's results}}
Rows = dict[str, dict[str, float]]  # {contender: {case: events/s}}

_KAFKA_RAW = {SINGLE: "raw produce+flush", BATCHED: "raw produce", CONSUME: "raw consume"}
#: bench_kafka.py's ``results``
KAFKA_KEYS: Keys = {
    "raw confluent-kafka": _KAFKA_RAW,
    "raw + CloudEvents headers": {BATCHED: "raw produce + ce headers"},
    BY_HAND: {
        SINGLE: "raw produce+flush, CloudEvents by hand",
        BATCHED: "raw produce, CloudEvents by hand",
        CONSUME: "raw consume, CloudEvents by hand",
    },
    "raw + cloudevents SDK": {
        BATCHED: "raw produce + cloudevents SDK",
        CONSUME: "raw consume + cloudevents SDK",
    },
    "eventbus": {SINGLE: "publish", BATCHED: "publish_many", CONSUME: "consume"},
    "eventbus adapter only": {BATCHED: "adapter publish", CONSUME: "adapter receive"},
}
#: bench_kafka_peers.py's ``results``
KAFKA_PEERS_KEYS: Keys = {
    "FastStream (confluent)": {
        SINGLE: "faststream publish",
        BATCHED: "faststream publish batched",
        CONSUME: "faststream consume",
    },
    "raw confluent-kafka (peers run)": _KAFKA_RAW,
}
#: bench_sqs.py's ``runs`` (each a list of repeats; the best counts)
SQS_KEYS: Keys = {
    "raw boto3": {
        SINGLE: "publish single|raw",
        BATCHED: "publish|raw",
        CONSUME: "consume (worker)|raw",
    },
    "eventbus": {
        SINGLE: "publish single|eventbus",
        BATCHED: "publish|eventbus",
        CONSUME: "consume (worker)|eventbus",
    },
    "eventbus adapter only": {CONSUME: "consume (adapter only)|eventbus"},
}


def data(report: dict[str, Any], step: str) -> dict[str, Any] | None:
    """The JSON a step's script wrote, or None if the step failed or didn't run."""
    s = report["steps"].get(step)
    if not (s and s.get("ok")):
        return None
    d: dict[str, Any] = s["data"]
    return d


def _measured(figures: dict[str, float], keys: Keys) -> Rows:
    """The rows of ``keys`` with the cases ``figures`` has (a row may end up empty)."""
    return {
        who: {c: v for c, k in cases.items() if (v := figures.get(k))}
        for who, cases in keys.items()
    }


def throughput(report: dict[str, Any], broker: str) -> tuple[Rows, str]:
    """{contender: {case: events/s}} and the name of the raw client's row."""
    raw_name = RAW.get(broker, "")
    if broker == "rabbitmq":
        d = data(report, "rabbitmq")
        return (d["best"] if d else {}), raw_name
    if broker == "kafka":
        rows: Rows = {}
        for step, keys in (("kafka", KAFKA_KEYS), ("kafka_peers", KAFKA_PEERS_KEYS)):
            d = data(report, step)
            if d:
                rows.update(_measured(d["results"], keys))
        return rows, raw_name
    if broker == "sqs":
        d = data(report, "sqs")
        if not d:
            return {}, raw_name
        best = {k: max(v) for k, v in d["runs"].items()}
        rows = {who: {c: best[k] for c, k in cases.items()} for who, cases in SQS_KEYS.items()}
        return rows, raw_name
    if broker == "azure_servicebus":
        d = data(report, "azure_servicebus")
        if not d:
            return {}, raw_name
        return {raw_name: d["best"]["raw"], "eventbus": d["best"]["eventbus"]}, raw_name
    return {}, raw_name


def embedded(report: dict[str, Any]) -> dict[str, float]:
    """{case: events/s} of bench_embedded.py (memory and SQLite)."""
    d = data(report, "embedded")
    return {r["case"]: r["events_per_s"] for r in d["results"]} if d else {}


def latency_results(report: dict[str, Any], broker: str) -> dict[str, Any]:
    """{contender: bench_latency.py's figures (or its error)} of one broker."""
    d = data(report, f"latency:{broker}")
    return d["results"] if d else {}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt_rate(v: float | None) -> str:
    return "" if v is None else f"{v:,.0f}"


def fmt_ratio(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def contracts(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{broker: {model kind: events/s over the dict path's}} of bench_contracts.py."""
    d = data(report, "contracts")
    return {b: r["ratio_vs_dict"] for b, r in d["brokers"].items()} if d else {}

"""The page's prose that depends on the run: notes under each broker's tables, why each missed
goal is missed, the profiles of the misses.

Every sentence is built from the figures of the same run (``results``) and the profiles
``runner.run`` took; nothing here holds a figure of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from results import (
    BATCHED,
    BY_HAND,
    CASES,
    CONSUME,
    SINGLE,
    Rows,
    data,
    fmt_rate,
    fmt_ratio,
    latency_results,
    ratio,
    throughput,
)
from suite import TITLES

#: the row of each broker's raw client in bench_latency.py's results
LATENCY_RAW = {
    "rabbitmq": "pika",
    "kafka": "confluent-kafka",
    "sqs": "boto3",
    "azure_servicebus": "azure-servicebus",
}


def profile_lines(report: dict[str, Any], target: str) -> list[str]:
    p = report["profiles"].get(target)
    if not p or not p.get("ok"):
        return [f"(profile of `{target}` not available: {p.get('error') if p else 'not run'})", ""]
    d = p["data"]
    layers = ", ".join(f"{k} {v:.0f} %" for k, v in d["layers"].items())
    out = [
        f"py-spy, `{target}` ({d['events']:,} events, {d['samples']} samples of the measured "
        f"part): {layers}. Top functions by own time:",
        "",
    ]
    out += [f"- {pct:.0f} % `{name}`" for name, pct in d["self"][:8]]
    incl = [f"`{name.split(' (')[0]}` {pct:.0f} %" for name, pct in d["inclusive"][1:8]]
    if incl:
        out += ["", "Inclusive (eventbus and adapter functions): " + ", ".join(incl) + "."]
    top = [(f, pct, src) for f, pct, src in d.get("lines", [])[:3] if src]
    if top:
        out += [
            "",
            "Busiest lines: "
            + "; ".join(
                f"{pct:.0f} % `{src}` ({f.rpartition(' (')[2].rstrip(')')})" for f, pct, src in top
            )
            + ".",
        ]
    return [*out, ""]


def sdk_line(rows: dict[str, dict[str, float]], case: str, how: str) -> list[str]:
    """What the same records cost without eventbus: raw client + the cloudevents SDK."""
    sdk, ours = rows.get("raw + cloudevents SDK", {}).get(case), rows.get("eventbus", {}).get(case)
    if not sdk or not ours:
        return []
    return [
        "",
        f"The same CloudEvents records without eventbus, {how}: {fmt_rate(sdk)}/s. eventbus "
        f"does that job at {ours / sdk:.2f} x the speed.",
    ]


def hand_line(rows: dict[str, dict[str, float]], case: str) -> list[str]:
    """The same job written directly on confluent-kafka, against header-less raw and eventbus."""
    hand, ours = rows.get(BY_HAND, {}).get(case), rows.get("eventbus", {}).get(case)
    raw = rows.get("raw confluent-kafka", {}).get(case)
    if not hand or not ours or not raw:
        return []
    return [
        "",
        f"The same job written by hand on confluent-kafka, with nothing of eventbus "
        f"(`bench_kafka.py`'s `raw_*_by_hand`: the CloudEvents `ce_` headers, JSON, "
        f"{'delivery callbacks' if case != CONSUME else 'offsets stored after the callback'}): "
        f"{fmt_rate(hand)}/s, {hand / raw:.2f} x the header-less raw loop. eventbus does that "
        f"job at {ours / hand:.2f} x its speed (goal 0.8, in the table above).",
    ]


def why_missed(report: dict[str, Any], g: dict[str, Any]) -> list[str]:
    """The explanation of a missed goal: what the figures of this run say, then the profile."""
    out = [f"### Missed: {TITLES[g['broker']]}: {g['goal']}", ""]
    target = g["profile"]
    if target.endswith(":by-hand"):
        out += [
            "Both sides do the same job on the same client; the gap is eventbus's per-event "
            "Python work (building or decoding the `Event`, dispatch, offsets). The profile of "
            "the same case against raw:",
            "",
            *profile_lines(report, target.removesuffix(":by-hand")),
        ]
        return out
    explain = MISSES_EXPLAINED.get(target)
    if explain:
        rows, _ = throughput(report, g["broker"])
        out += explain(report, rows)
    out += profile_lines(report, target)
    return out


def kafka_publish_many_missed(report: dict[str, Any], rows: Rows) -> list[str]:
    r, ours = rows.get("raw confluent-kafka", {}), rows.get("eventbus", {})
    adapter = rows.get("eventbus adapter only", {})
    headers = rows.get("raw + CloudEvents headers", {}).get(BATCHED)
    if not headers:
        return []
    return [
        f"Raw produce hands ready-made 200-byte values to librdkafka with no headers "
        f"({fmt_rate(r.get(BATCHED))}/s, about {1e6 / r[BATCHED]:.1f} µs per record). "
        f"The same raw loop with the CloudEvents `ce_` headers our records carry runs at "
        f"{fmt_rate(headers)}/s ({headers / r[BATCHED]:.2f} x): the binding alone costs "
        f"more than the goal allows. The adapter on pre-encoded messages reaches "
        f"{fmt_rate(adapter.get(BATCHED))}/s "
        f"({fmt_ratio(ratio(adapter.get(BATCHED), headers))} x raw with headers), and "
        f"`publish_many` adds building and encoding each `Event` (id, time, JSON body, "
        f"attributes, size check): {1e6 / ours[BATCHED]:.1f} µs per event in all. "
        f"So 0.8 x header-less raw produce is out of reach while every record carries the "
        f"CloudEvents binding: the raw client itself, given those headers, reaches "
        f"{headers / r[BATCHED]:.2f} x. The issue set the goal against raw produce at "
        f'"about 87,000 messages/s", measured when it was filed; the raw loop of this '
        f"run (produce in a loop, one flush at the end) is {r[BATCHED] / 87_000:.0f} x "
        f"that, so the bar moved with the baseline. What eventbus can still improve "
        f"is the core's per-event cost (the profile below).",
        *hand_line(rows, BATCHED),
        *sdk_line(
            rows,
            BATCHED,
            "built with the official `cloudevents` SDK "
            "(`CloudEvent`, its Kafka `to_binary`) and produced raw",
        ),
        "",
    ]


def kafka_consume_missed(report: dict[str, Any], rows: Rows) -> list[str]:
    r, ours = rows.get("raw confluent-kafka", {}), rows.get("eventbus", {})
    adapter = rows.get("eventbus adapter only", {})
    if not r.get(CONSUME):
        return []
    return [
        f"Raw consume takes {1e6 / r[CONSUME]:.1f} µs per record (`json.loads` and a "
        f"no-op). The adapter alone (records to `Delivery`, header parsing, offset "
        f"bookkeeping, `json.loads`) takes "
        f"{1e6 / adapter[CONSUME]:.1f} µs; the worker adds decoding to an `Event` "
        f"(CloudEvents attributes, time parsing), middleware and outcome hooks, dispatch "
        f"and acks: {1e6 / ours[CONSUME]:.1f} µs per event in all. At this rate the "
        "difference is pure per-event Python work; a handler doing anything real "
        "dominates it.",
        *hand_line(rows, CONSUME),
        *sdk_line(
            rows,
            CONSUME,
            "read raw and turned into `CloudEvent`s by the "
            "official `cloudevents` SDK's `from_binary`",
        ),
        "",
    ]


def kafka_publish_missed(report: dict[str, Any], rows: Rows) -> list[str]:
    r, ours = rows.get("raw confluent-kafka", {}), rows.get("eventbus", {})
    if not (r.get(SINGLE) and ours.get(SINGLE)):
        return []
    text = (
        f"Both wait for the broker's ack on every event: {1e6 / r[SINGLE]:.0f} µs per "
        f"event raw, {1e6 / ours[SINGLE]:.0f} µs ours."
    )
    prof = report["profiles"].get("kafka:publish", {})
    pd = prof.get("data") if prof.get("ok") else None
    if pd and pd.get("lines"):
        frame, pct, source = pd["lines"][0]
        core = pd["layers"].get("eventbus core", 0.0)
        text += (
            f" The profile puts {pct:.0f} % of eventbus's time on one line, "
            f"`{source}` ({frame.split(' (')[0]}), the wait for the broker's ack: the same "
            f"produce-then-flush raw does. The core's own work (building and encoding "
            f"the event, the publish pipeline) is {core:.0f} %."
        )
    peers_run = data(report, "kafka_peers")
    pr = peers_run["results"] if peers_run else {}
    with_h, plain = pr.get("raw produce+flush + ce headers"), pr.get("raw produce+flush")
    if with_h and plain:
        text += (
            f" Raw with the CloudEvents headers our records carry ran at "
            f"{with_h:,.0f}/s against {plain:,.0f}/s without (peers run, "
            f"{with_h / plain:.2f} x): the headers lengthen every round trip; the adapter "
            f"also registers a delivery callback per record."
        )
    text += (
        " Both sides are bound by a sub-millisecond round trip (a broker write per "
        "event), which makes this ratio sensitive to the shared machine's load."
    )
    return [text, *hand_line(rows, SINGLE), ""]


#: the profile targets whose miss this run's figures can explain (before the profile)
MISSES_EXPLAINED: dict[str, Callable[[dict[str, Any], Rows], list[str]]] = {
    "kafka:publish_many": kafka_publish_many_missed,
    "kafka:consume": kafka_consume_missed,
    "kafka:publish": kafka_publish_missed,
}


def latency_note(report: dict[str, Any], broker: str) -> list[str]:
    """What the latency rows of this run say, in words (only from this run's figures)."""
    ok = {who: r for who, r in latency_results(report, broker).items() if "p50_ms" in r}
    ours, raw_name = ok.get("eventbus"), LATENCY_RAW.get(broker, "")
    raw = ok.get(raw_name)
    out = []
    if ours and raw:
        out.append(
            f"Latency eventbus / {raw_name}: p50 {ours['p50_ms'] / raw['p50_ms']:.2f}, "
            f"p99 {ours['p99_ms'] / raw['p99_ms']:.2f}; peak RSS "
            f"{ours['rss_peak_mb'] / raw['rss_peak_mb']:.2f}."
        )
    if broker == "kafka":
        fw_ours, fw_raw = ok.get("eventbus@fw10"), ok.get("confluent-kafka@fw10")
        if ours and fw_ours:
            out.append(
                "Tansu answers a fetch only when the consumer's `fetch.wait.max.ms` runs out, "
                "not when a record arrives, so that setting decides every client's latency here: "
                f"with librdkafka's default (500 ms) eventbus's p50 is {ours['p50_ms']:.0f} ms, "
                f"with `fetch.wait.max.ms=10` (the `@fw10` rows; for eventbus through "
                f'`KafkaSettings(client={{"fetch.wait.max.ms": 10}})`) {fw_ours["p50_ms"]:.1f} ms'
                + (f" against raw's {fw_raw['p50_ms']:.1f} ms" if fw_raw else "")
                + ". "
                "Apache Kafka answers a fetch as soon as data is there (`fetch.min.bytes=1`)."
            )
        fs = ok.get("faststream")
        if fs and fs["achieved_rate"] < 0.9 * fs["rate"]:
            out.append(
                f"FastStream's publisher managed only {fs['achieved_rate']:.0f} confirmed "
                "publishes/s (its one-by-one publish is slow, see the throughput table), so "
                "its latency row ran at that lower rate."
            )
    if broker == "sqs" and ours and raw and ours["p50_ms"] > 1.5 * raw["p50_ms"]:
        out.append(
            "moto answers a long poll at once when the queue is empty (real SQS holds it up to "
            "`WaitTimeSeconds`). The raw loop therefore calls `ReceiveMessage` back to back; the "
            "adapter, to avoid that hot loop against a broker that doesn't hold long polls, waits "
            "longer after each early empty answer (up to 0.5 s). That wait is its extra latency "
            "here; on SQS, whose long polls return when a message arrives, it does not arise."
        )
    if broker == "azure_servicebus" and ours and raw:
        out.append(
            f"The raw SDK's receive loop on the same test broker sees p50 "
            f"{raw['p50_ms']:.0f} ms too: the wait lies in the SDK's receiving and this "
            "test double, not in what eventbus adds; it says nothing about Azure."
        )
    return [" ".join(out), ""] if out else []


def broker_notes(report: dict[str, Any], broker: str) -> dict[str, list[str]]:
    """{"intro", "throughput", "latency": lines} of a broker's section (a key may be missing)."""
    notes = {"latency": latency_note(report, broker)}
    throughput_notes = THROUGHPUT_NOTES.get(broker)
    if throughput_notes:
        notes.update(throughput_notes(report, *throughput(report, broker)))
    return notes


def rabbitmq_notes(report: dict[str, Any], rows: Rows, raw_name: str) -> dict[str, list[str]]:
    d = data(report, "rabbitmq")
    if not d:
        return {}
    ours = rows.get("eventbus", {})
    intro = [
        f"`bench_rabbitmq.py`: {d['n']:,} persistent messages batched and "
        f"consumed, {d['single']:,} one by one, publisher confirms on, prefetch "
        f"100, best of {d['repeat']}; every contender on its own queue of the "
        "same broker. Batched: raw pika on a `SelectConnection` with pipelined "
        "confirms, FastStream and aio-pika with `asyncio.gather`, eventbus "
        "`publish_many`; kombu has no pipelined confirms (its one-by-one "
        "figure is its best).",
        "",
    ]
    peers = []
    for peer in ("kombu", "FastStream", "aio-pika"):
        p = rows.get(peer, {})
        parts = [
            f"{c} {fmt_ratio(ratio(ours.get(c), p.get(c)))}"
            for c in CASES
            if ratio(ours.get(c), p.get(c))
        ]
        if parts:
            peers.append(f"eventbus / {peer}: " + ", ".join(parts))
    text = "; ".join(peers) + "." if peers else ""
    alone = rows.get("eventbus adapter only", {}).get(BATCHED)
    raw_b = rows.get(raw_name, {}).get(BATCHED)
    if alone and raw_b and ours.get(BATCHED):
        text += (
            f" Batched publishing: the adapter alone (pre-encoded messages) runs at "
            f"{alone / raw_b:.2f} x raw pika's pipelined confirms; `publish_many` adds "
            f"building and encoding each `Event` in the core "
            f"({1e6 / ours[BATCHED] - 1e6 / alone:.0f} µs per event here)."
        )
    return {"intro": intro, "throughput": [text.strip(), ""] if text else []}


def kafka_notes(report: dict[str, Any], rows: Rows, raw_name: str) -> dict[str, list[str]]:
    d, peers_run = data(report, "kafka"), data(report, "kafka_peers")
    intro = []
    if d:
        intro.append(
            f"`bench_kafka.py` ({d['events']:,} events; Tansu, acks=all, "
            "idempotent producer, linger 5 ms; best of 5 per case (3 in the quick tier), "
            "consumers in alternating order; payloads are built before the clock starts "
            "and each batched case waits for one flush at the end, `publish_many` in one "
            "call; `raw + CloudEvents by hand` is the same job written directly on "
            "confluent-kafka: ids, times, JSON, `ce_` headers and delivery callbacks "
            "publishing, offsets stored after the callback consuming, see "
            "[the Kafka page](adapters/kafka.md#speed))"
        )
    if peers_run:
        intro.append(
            f"`bench_kafka_peers.py` (FastStream's confluent broker against the "
            f"same raw baselines, {peers_run['events']:,} events, run right after)"
        )
    notes = {
        "intro": (
            [
                " and ".join(intro) + ". Consumers read records that carry CloudEvents "
                "headers, from the first record to the last.",
                "",
            ]
            if intro
            else []
        )
    }
    ours, raw = rows.get("eventbus", {}), rows.get(raw_name, {})
    fs = rows.get("FastStream (confluent)", {})
    fs_raw = rows.get("raw confluent-kafka (peers run)", {})
    parts = []
    for c in CASES:
        ours_r, fs_r = ratio(ours.get(c), raw.get(c)), ratio(fs.get(c), fs_raw.get(c))
        if ours_r and fs_r:
            parts.append(f"{c} {ours_r / fs_r:.1f}")
    if parts:
        notes["throughput"] = [
            "eventbus / FastStream, each against the raw client of its own run (a ratio of "
            "ratios, since the two scripts run one after the other): " + ", ".join(parts) + ".",
            "",
        ]
    return notes


def sqs_notes(report: dict[str, Any], rows: Rows, raw_name: str) -> dict[str, list[str]]:
    d = data(report, "sqs")
    if not d:
        return {}
    repeats = len(next(iter(d["runs"].values())))
    return {
        "intro": [
            f"`bench_sqs.py` on a moto server: {d['n']} events per case, best of {repeats}, "
            "eventbus and raw boto3 alternating; raw makes the same calls on the same SNS "
            "topic + SQS queue layout (batched: 10 per `publish_batch`; consume: "
            "`receive_message(10)` + `delete_message_batch`). moto is slow and slows as a "
            "queue fills, so only the ratios mean anything.",
            "",
        ]
    }


def servicebus_notes(report: dict[str, Any], rows: Rows, raw_name: str) -> dict[str, list[str]]:
    d = data(report, "azure_servicebus")
    if not d:
        return {}
    return {
        "intro": [
            "`bench_azure_servicebus.py`: no Service Bus namespace is reachable here, so "
            "eventbus and the raw azure-servicebus SDK both run against the project's "
            "Service Bus test broker (a Python AMQP 1.0 test double), "
            f"{d['n']:,} events batched and consumed, {d['single']} one by one, best of "
            f"{d['repeat']}. Its speed says nothing about Azure's; the ratio shows what the "
            "adapter and the core add to the SDK. The issues set no goal for it.",
            "",
        ]
    }


#: each broker's notes on its throughput figures: (report, rows, raw row) -> notes
THROUGHPUT_NOTES: dict[str, Callable[[dict[str, Any], Rows, str], dict[str, list[str]]]] = {
    "rabbitmq": rabbitmq_notes,
    "kafka": kafka_notes,
    "sqs": sqs_notes,
    "azure_servicebus": servicebus_notes,
}

"""The page's charts: ``docs/img/bench-*.png`` (matplotlib), each from one run's report.

Each ``*_charts`` function yields (name, figure) for the charts it can draw from the run
(none where the run has no figures for it); ``make_charts`` saves them as
``bench-<name>.png``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import log
from goals import goal_against_raw
from results import BATCHED, CASES, CONSUME, SINGLE, embedded, latency_results, ratio, throughput
from suite import BROKERS, SERVERS, TITLES

Charts = Iterator[tuple[str, Any]]
CASE_COLORS = {SINGLE: "#8da0cb", BATCHED: "#66c2a5", CONSUME: "#fc8d62"}


def make_charts(report: dict[str, Any], img_dir: Path) -> dict[str, str]:
    """Write docs/img/bench-*.png; returns {name: path relative to docs/}."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no charts")
        return {}
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in img_dir.glob("bench-*.png"):
        old.unlink()
    made: dict[str, str] = {}
    for charts in (throughput_charts, ratios_chart, latency_charts, embedded_chart):
        for name, fig in charts(plt, report):
            path = img_dir / f"bench-{name}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            made[name] = f"img/{path.name}"
    return made


def throughput_charts(plt: Any, report: dict[str, Any]) -> Charts:
    """Per broker: events/s of every contender in every case."""
    for broker in SERVERS:
        rows, _ = throughput(report, broker)
        if not rows:
            continue
        names = list(rows)
        fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) + 1.8))
        h = 0.27
        for k, case in enumerate(CASES):
            ys = [i + (k - 1) * h for i in range(len(names))]
            vals = [rows[w].get(case, 0) or 0 for w in names]
            ax.barh(ys, vals, height=h, color=CASE_COLORS[case], label=case)
            for y, val in zip(ys, vals, strict=True):
                if val:
                    ax.text(val, y, f" {val:,.0f}", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        low = min(v for r in rows.values() for v in r.values() if v)
        ax.set_xlim(left=10 ** math.floor(math.log10(low)))
        ax.set_xlabel("events/s (log scale)")
        ax.set_title(f"{TITLES[broker]}: throughput ({report['machine']['date']})")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
        yield f"throughput-{broker}", fig


def ratios_chart(plt: Any, report: dict[str, Any]) -> Charts:
    """eventbus / the raw client per broker and case, with the goal where there is one."""
    bars: list[tuple[str, float, float | None]] = []
    for broker in SERVERS:
        rows, raw_name = throughput(report, broker)
        ours, raw = rows.get("eventbus", {}), rows.get(raw_name, {})
        for case in CASES:
            r = ratio(ours.get(case), raw.get(case))
            if r:
                bars.append((f"{TITLES[broker]}: {case}", r, goal_against_raw(broker, case)))
    if not bars:
        return
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(bars) + 1.5))
    ys = list(range(len(bars)))
    cols = ["#d95f02" if g and r < g else "#1b9e77" for _, r, g in bars]
    ax.barh(list(ys), [r for _, r, _ in bars], color=cols)
    for y, (_, r, g) in zip(ys, bars, strict=True):
        ax.text(r, y, f" {r:.2f}", va="center", fontsize=8)
        if g:
            ax.plot([g, g], [y - 0.4, y + 0.4], color="black", lw=2)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_yticks(list(ys), [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel("eventbus / raw client, same run (black tick: the goal; orange: missed)")
    ax.set_title("eventbus against the raw client of each broker")
    yield "ratios", fig


def latency_charts(plt: Any, report: dict[str, Any]) -> Charts:
    """Latency p50/p99 and the worker's peak RSS of every contender of every broker."""
    lat: list[tuple[str, float, float, float]] = []
    for broker in BROKERS:
        for who, r in latency_results(report, broker).items():
            if "p50_ms" in r:
                lat.append((f"{TITLES[broker]}: {who}", r["p50_ms"], r["p99_ms"], r["rss_peak_mb"]))
    if not lat:
        return
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(lat) + 1.5))
    ys = list(range(len(lat)))
    ax.barh(
        [y - 0.2 for y in ys],
        [max(x[1], 0.01) for x in lat],
        height=0.4,
        label="p50",
        color="#66c2a5",
    )
    ax.barh(
        [y + 0.2 for y in ys],
        [max(x[2], 0.01) for x in lat],
        height=0.4,
        label="p99",
        color="#fc8d62",
    )
    ax.set_xscale("log")
    ax.set_yticks(ys, [x[0] for x in lat])
    ax.invert_yaxis()
    ax.set_xlabel("ms, send to handler (log scale)")
    ax.set_title(
        "End-to-end latency at a fixed rate\n(500/s; SQS and Service Bus 100/s)", fontsize=10
    )
    ax.legend(fontsize=8)
    yield "latency", fig
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(lat) + 1.5))
    ax.barh(
        ys,
        [x[3] for x in lat],
        color=["#1b9e77" if ": eventbus" in x[0] else "#7570b3" for x in lat],
    )
    for y, x in zip(ys, lat, strict=True):
        ax.text(x[3], y, f" {x[3]:.0f}", va="center", fontsize=8)
    ax.set_yticks(ys, [x[0] for x in lat])
    ax.invert_yaxis()
    ax.set_xlabel("MiB, peak RSS of the consuming process (memory: the whole process)")
    ax.set_title("Worker memory")
    yield "rss", fig


def embedded_chart(plt: Any, report: dict[str, Any]) -> Charts:
    """Embedded brokers: events/s against the number of workers."""
    e = embedded(report)
    if not e:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for prefix, label, marker in (
        ("sqlite publish->consume, {w} worker(s)", "SQLite publish -> consume (processes)", "o"),
        ("sqlite consume backlog, {w} worker(s)", "SQLite backlog drain (processes)", "s"),
    ):
        pts = [(w, e[prefix.format(w=w)]) for w in (1, 2, 4) if prefix.format(w=w) in e]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
    mem = [(1, e.get("memory publish->handler"))] + [
        (w, e.get(f"memory publish->handler, {w} members")) for w in (2, 4)
    ]
    mem_pts = [(w, v) for w, v in mem if v]
    if mem_pts:
        ax.plot(
            [p[0] for p in mem_pts],
            [p[1] for p in mem_pts],
            marker="^",
            label="memory publish -> handler (threads)",
        )
    ax.set_xticks([1, 2, 4])
    ax.set_xlabel("workers (members of the group)")
    ax.set_ylabel("events/s")
    ax.set_ylim(bottom=0)
    ax.set_title("Embedded brokers: scaling with workers (2-core machine)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    yield "embedded", fig

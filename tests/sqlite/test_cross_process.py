"""Several processes on one SQLite file: exactly-once per group between competing
worker processes, and redelivery of what a SIGKILLed worker held."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from eventbus import SqliteAdapter

from .conftest import read_records, wait_for

pytestmark = [pytest.mark.sqlite]


def test_publisher_and_two_worker_processes_handle_each_event_once_per_group(
    db_path, tmp_path, procs
):
    n = 600
    outs = [tmp_path / "w1.txt", tmp_path / "w2.txt"]
    workers = [procs.start("consume", db_path, str(o), "billing,audit") for o in outs]
    publishers = [
        procs.start("publish", db_path, str(n // 2), "--start", str(k * n // 2)) for k in range(2)
    ]
    for p in publishers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and "done" in out, err

    def records():
        return read_records(outs[0]) + read_records(outs[1])

    wait_for(lambda: len(records()) >= 2 * n, timeout=60, what=f"{2 * n} handled events")
    for w in workers:
        _, err = procs.stop(w)
        assert w.returncode == 0, err
    recs = records()
    for group in ("billing", "audit"):
        counts = Counter(num for g, num, _ in recs if g == group)
        assert sorted(counts) == list(range(n)), f"{group}: missing events"
        assert max(counts.values()) == 1, f"{group}: handled twice: {counts.most_common(3)}"
    per_worker = [len(read_records(o)) for o in outs]
    assert all(c > 0 for c in per_worker), f"the workers did not compete: {per_worker}"
    a = SqliteAdapter(db_path)
    try:
        assert a.depth("billing") == a.depth("audit") == 0
        assert len(a.log(limit=10 * n)) == n
    finally:
        a.close()


def test_killed_worker_process_events_go_to_the_other_after_the_lease(db_path, tmp_path, procs):
    n = 40
    lease = 2.0
    a_out, b_out = tmp_path / "a.txt", tmp_path / "b.txt"
    doomed = procs.start(
        "consume", db_path, str(a_out), "g", "--lease", str(lease), "--block-on", "3"
    )
    pub = procs.start("publish", db_path, str(n))
    pub.communicate(timeout=60)
    # the doomed worker is mid-batch: it handled some events and hangs on the third
    wait_for(lambda: len(read_records(a_out)) >= 3, what="the first worker to take a batch")
    survivor = procs.start("consume", db_path, str(b_out), "g", "--lease", str(lease))
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    wait_for(
        lambda: {num for _, num, _ in read_records(b_out)} == set(range(n)),
        timeout=30,
        what="every event at the surviving worker",
    )
    procs.stop(survivor)
    held = {num for _, num, _ in read_records(a_out)}
    attempts = {num: att for _, num, att in read_records(b_out)}
    assert held and all(attempts[num] == 2 for num in held), (held, attempts)
    a = SqliteAdapter(db_path)
    try:
        assert a.depth("g") == 0
    finally:
        a.close()

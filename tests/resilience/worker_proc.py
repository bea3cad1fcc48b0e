"""A worker process for the fault tests: ``worker_proc.py URL TOPIC GROUP LEDGER INBOX DELAY``.

Runs ``EventBus.run()`` (so SIGTERM stops it gracefully) with a SQLite inbox;
the handler waits ``DELAY`` seconds (work) and then writes the event id to the
ledger file. Prints ``ready`` once the worker threads run.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_harness import FAST_RETRY, Ledger

from eventbus import BusConfig, EventBus, SqliteInbox


def main() -> None:
    url, topic, group, ledger_path, inbox_path, delay_s = sys.argv[1:7]
    delay = float(delay_s)
    ledger = Ledger(Path(ledger_path))
    inbox = SqliteInbox(inbox_path)
    bus = EventBus(
        url,
        source="/worker",
        inbox=inbox,
        config=BusConfig(poll_interval=0.1, prefetch=100, inbox_lease=3.0),
    )

    @bus.subscribe(topic, group=group, retry=FAST_RETRY)
    def handle(event: object) -> None:
        if delay:
            time.sleep(delay)  # simulated work
        ledger.record(event.id)  # type: ignore[attr-defined]

    workers = []

    def announce() -> None:
        while bus._worker is None:
            time.sleep(0.01)
        workers.append(bus._worker)
        print("ready", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    bus.run()
    print("dropped", workers[0].duplicates if workers else 0, flush=True)
    bus.close()
    inbox.close()
    ledger.close()


if __name__ == "__main__":
    main()

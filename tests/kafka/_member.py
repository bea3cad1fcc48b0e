"""A group member in its own process, for crash tests (run as a script, not collected).

    python _member.py BOOTSTRAP PREFIX SESSION GROUP PATTERN OUTFILE DELAY

Handles events slowly (DELAY seconds each), appending "<id> <attempt>" per handled
event to OUTFILE (flushed, so a SIGKILL loses nothing written). Prints "ready"
once its worker runs; runs until killed.
"""

from __future__ import annotations

import sys
import time

from eventbus_kafka import KafkaAdapter, KafkaSettings

from eventbus import BusConfig, Event, EventBus


def main() -> None:
    bootstrap, prefix, session, group, pattern, outfile, delay = sys.argv[1:8]
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        prefix=prefix,
        session_timeout=float(session),
        max_poll_interval=float(session) * 2,
        commit_interval=0.2,
        metadata_refresh=1.0,
    )
    bus = EventBus(KafkaAdapter(settings), config=BusConfig(prefetch=20, poll_interval=0.2))
    out = open(outfile, "a", buffering=1)

    @bus.subscribe(pattern, group=group)
    def handle(event: Event) -> None:
        time.sleep(float(delay))  # simulated work
        out.write(f"{event.id} {event.attempt}\n")
        out.flush()

    bus.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

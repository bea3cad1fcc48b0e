"""A worker process for the crash tests: consumes one group and hangs in its handler.

    python _proc.py '<settings json>' GROUP PATTERN

Prints ``ready`` once consuming, then ``got <id> <attempt>`` for each event it is
handed; the handler never returns, so the batch stays unsettled until the
process is killed (the test SIGKILLs it).
"""

from __future__ import annotations

import json
import sys
import threading

from eventbus_sqs import SqsAdapter, SqsSettings

from eventbus import BusConfig, Event, EventBus


def main() -> None:
    settings = SqsSettings(**json.loads(sys.argv[1]))
    group, pattern = sys.argv[2], sys.argv[3]
    bus = EventBus(SqsAdapter(settings), config=BusConfig(prefetch=10, poll_interval=0.2))
    hang = threading.Event()

    @bus.subscribe(pattern, group=group)
    def handle(event: Event) -> None:
        print("got", event.id, event.attempt, flush=True)
        hang.wait()  # a handler stuck mid-batch: never returns

    bus.start()
    print("ready", flush=True)
    hang.wait()


if __name__ == "__main__":
    main()

"""Helper processes for the cross-process SQLite tests (run as a script, not collected).

    _proc.py publish DB N [--start K]          publish N events order.created {"n": i}
    _proc.py consume DB OUT GROUPS [--lease S] [--block-on N]
    _proc.py open USER PATH...                 open each file as USER (see open_as)

``consume`` runs one bus member per group in GROUPS (comma separated), each
recording ``group n attempt`` lines to OUT (flushed per line), prints ``ready``
and runs until SIGTERM. ``--block-on N``: the handler hangs on its N-th call
(to be SIGKILLed mid-batch). ``open`` prints ``ready``, waits for a line on
stdin (so that several processes start at once), then opens each file in turn
and prints ``ok`` or the error for each.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from eventbus import BusConfig, EventBus, Message, SqliteAdapter
from eventbus.resilience import LocalOutbox, SqliteInbox

#: The users of SQLite files, for ``open_as``.
USERS = ("broker", "inbox", "outbox")


def open_as(user: str, path: Path) -> None:
    """Open ``path`` as the broker, the inbox or the local outbox does, write once, close."""
    if user == "broker":
        adapter = SqliteAdapter(path)
        adapter.declare("g", ["x"])
        adapter.close()
    elif user == "inbox":
        inbox = SqliteInbox(path)
        inbox.claim("g", "e1", 5.0)
        inbox.close()
    else:
        outbox = LocalOutbox(path, "dest")
        outbox.add([Message("x", b"{}", {}, None)])
        outbox.close()


def open_at_once(user: str, paths: list[str]) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    for path in paths:
        try:
            open_as(user, Path(path))
            print("ok", flush=True)
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}", flush=True)


def main() -> None:
    if sys.argv[1] == "open":
        open_at_once(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["publish", "consume"])
    parser.add_argument("db")
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--block-on", type=int, default=0)
    args = parser.parse_args()
    adapter = SqliteAdapter(args.db, lease=args.lease)
    if args.mode == "publish":
        bus = EventBus(adapter, config=BusConfig())
        print("ready", flush=True)
        for i in range(args.start, args.start + int(args.rest[0])):
            bus.publish("order.created", {"n": i})
        bus.close()
        print("done", flush=True)
        return
    out_path, groups = args.rest[0], args.rest[1].split(",")
    bus = EventBus(adapter, config=BusConfig(prefetch=50, poll_interval=0.2))
    lock = threading.Lock()
    out = open(out_path, "a", buffering=1)
    calls = 0
    hang = threading.Event()

    def recorder(group: str):  # type: ignore[no-untyped-def]
        def record(event):  # type: ignore[no-untyped-def]
            nonlocal calls
            with lock:
                calls += 1
                out.write(f"{group} {event.data['n']} {event.attempt}\n")
                out.flush()
                block = args.block_on and calls >= args.block_on
            if block:
                hang.wait()  # never set: this process is SIGKILLed here

        return record

    for g in groups:
        bus.subscribe("order.#", recorder(g), group=g)
    bus.declare()
    print("ready", flush=True)
    bus.run()
    bus.close()
    out.close()


if __name__ == "__main__":
    main()

"""``python tests/_brokers/servicebus_broker --port N --config entities.json``.

Run as a directory (a script path), or as a module where ``tests/_brokers`` is
importable (``python -m servicebus_broker``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

if __package__:
    from ._broker import TestBroker
else:  # run by path: import the package from its parent directory
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from servicebus_broker._broker import TestBroker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/_brokers/servicebus_broker",
        description="Service-Bus-compatible AMQP 1.0 test broker (a test double).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672, help="0 picks a free port")
    parser.add_argument(
        "--config", help="entities, in the Service Bus emulator's Config.json shape"
    )
    parser.add_argument("--max-message-size", type=int, default=256 * 1024)
    parser.add_argument(
        "--atom", action="store_true", help="also serve the ATOM management API (HTTPS)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    if not args.verbose:  # clients that drop their sockets make proton log broken pipes
        logging.getLogger("proton").setLevel(logging.CRITICAL)
    config = None
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
    broker = TestBroker(
        args.host, args.port, config=config, max_message_size=args.max_message_size, atom=args.atom
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    broker.start()
    print(f"listening on {args.host}:{broker.port}", flush=True)
    print(broker.connection_string, flush=True)
    if broker.atom is not None:
        print(f"atom on {args.host}:{broker.atom.port} (CA file {broker.atom.ca_file})", flush=True)
        print(broker.admin_connection_string, flush=True)
    done.wait()
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

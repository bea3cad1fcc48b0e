"""moto's server (as ``moto_server`` runs it) with one race fixed, for the SQS tests.

    python _moto.py HOST PORT

moto 5.2.5 answers requests on threads, and its ``ReceiveMessage`` takes no lock:
two receives on one queue at the same moment can both hand out the same visible
message, or, on a FIFO queue, two messages of one message group (each thread
decides which groups are busy before the other marks its message). Real SQS does
neither. Here ``ReceiveMessage`` calls on the same queue run one at a time; every
other request runs as moto runs it. Nothing else is changed.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _queue_lock(environ: dict[str, Any]) -> tuple[threading.Lock | None, bytes]:
    if environ.get("HTTP_X_AMZ_TARGET") != "AmazonSQS.ReceiveMessage":
        return None, b""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        url = str(json.loads(body).get("QueueUrl", ""))
    except ValueError:
        url = ""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    with _guard:
        return _locks.setdefault(name, threading.Lock()), body


def serialize_receives(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        lock, _ = _queue_lock(environ)
        if lock is None:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))  # the whole answer, under the lock

    return wrapped


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        host, port, serialize_receives(app), threaded=True, request_handler=MotoRequestHandler
    )


if __name__ == "__main__":
    main()

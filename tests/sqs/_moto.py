"""moto's server (as ``moto_server`` runs it) with two things made as AWS does them.

    python _moto.py HOST PORT

1. moto 5.2.5 answers requests on threads, and its ``ReceiveMessage`` takes no lock:
   two receives on one queue at the same moment can both hand out the same visible
   message, or, on a FIFO queue, two messages of one message group (each thread
   decides which groups are busy before the other marks its message). Real SQS does
   neither. Here ``ReceiveMessage`` calls on the same queue run one at a time.
2. moto takes messages up to 1 MiB; SNS refuses more than 256 KiB (262,144 bytes,
   counting the body and each attribute's name, type and value), and so does the
   adapter in both modes. Here SQS ``SendMessage``/``SendMessageBatch`` (JSON protocol)
   and SNS ``Publish``/``PublishBatch`` over that are refused with AWS's errors
   (``InvalidParameterValue``/``InvalidParameter``, or ``BatchRequestTooLong`` for a
   batch whose total is over), so a size test against this server means something.

Every other request runs as moto runs it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

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


LIMIT = 262_144
_SQS_SENDS = {"AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"}
_ENTRY = re.compile(r"PublishBatchRequestEntries\.member\.(\d+)\.(.+)")


def _read_body(environ: dict[str, Any]) -> bytes:
    body: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _size(body: str, attributes: Iterable[tuple[str, str, str | bytes]]) -> int:
    n = len(body.encode("utf-8", "surrogatepass"))
    for name, kind, value in attributes:
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        n += len(name) + len(kind) + len(data)
    return n


def _sqs_sizes(request: Mapping[str, Any]) -> list[int]:
    entries = request.get("Entries") if "Entries" in request else [request]
    sizes = []
    for entry in entries or []:
        attributes = [
            (
                name,
                str(a.get("DataType", "")),
                a["StringValue"]
                if "StringValue" in a
                else base64.b64decode(a.get("BinaryValue", "")),
            )
            for name, a in (entry.get("MessageAttributes") or {}).items()
        ]
        sizes.append(_size(str(entry.get("MessageBody", "")), attributes))
    return sizes


def _sns_sizes(form: Mapping[str, str]) -> list[int]:
    """Each message's size in a Publish or PublishBatch form."""
    if form.get("Action") == "Publish":
        messages = {"": {k: v for k, v in form.items()}}
    else:
        messages = {}
        for key, value in form.items():
            found = _ENTRY.fullmatch(key)
            if found:
                messages.setdefault(found.group(1), {})[found.group(2)] = value
    sizes = []
    for fields in messages.values():
        attributes = []
        for key, name in fields.items():
            found = re.fullmatch(r"MessageAttributes\.entry\.(\d+)\.Name", key)
            if found:
                prefix = f"MessageAttributes.entry.{found.group(1)}.Value."
                value: str | bytes = fields.get(prefix + "StringValue", "")
                if prefix + "BinaryValue" in fields:
                    value = base64.b64decode(fields[prefix + "BinaryValue"])
                attributes.append((name, fields.get(prefix + "DataType", ""), value))
        sizes.append(_size(fields.get("Message", ""), attributes))
    return sizes


def _refuse_sqs(code: str, message: str, start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", f"{code};Sender"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _refuse_sns(code: str, message: str, start_response: Callable[..., Any]) -> list[bytes]:
    body = (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>eventbus-test</RequestId></ErrorResponse>"
    ).encode()
    start_response(
        "400 Bad Request", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


def limit_sizes(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Refuse SQS sends and SNS publishes over 256 KiB, as AWS does."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target in _SQS_SENDS:
            try:
                sizes = _sqs_sizes(json.loads(_read_body(environ)))
            except (ValueError, AttributeError, TypeError):
                sizes = []
            if len(sizes) > 1 and sum(sizes) > LIMIT:
                return _refuse_sqs(
                    "BatchRequestTooLong",
                    f"Batch requests cannot be longer than {LIMIT} bytes",
                    start_response,
                )
            if any(n > LIMIT for n in sizes):
                return _refuse_sqs(
                    "InvalidParameterValue",
                    "One or more parameters are "
                    f"invalid. Reason: Message must be shorter than {LIMIT} "
                    "bytes.",
                    start_response,
                )
        elif target is None and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            form = dict(parse_qsl(_read_body(environ).decode("utf-8", "replace")))
            if form.get("Action") in ("Publish", "PublishBatch"):
                sizes = _sns_sizes(form)
                if len(sizes) > 1 and sum(sizes) > LIMIT:
                    return _refuse_sns(
                        "BatchRequestTooLong",
                        "The length of all the messages put together is more than the limit.",
                        start_response,
                    )
                if any(n > LIMIT for n in sizes):
                    return _refuse_sns(
                        "InvalidParameter", "Invalid parameter: Message too long", start_response
                    )
        return app(environ, start_response)

    return wrapped


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = limit_sizes(serialize_receives(DomainDispatcherApplication(create_backend_app)))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

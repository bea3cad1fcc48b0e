"""The test broker's ATOM management endpoint: just what ``AdministrationEntities`` calls.

The SDK's ``ServiceBusAdministrationClient`` speaks HTTPS only: its generated
client hard-codes ``https://{endpoint}`` (``UseDevelopmentEmulator=true``
sets a ``use_tls`` keyword that the management pipeline ignores). So this
endpoint serves TLS with a self-signed certificate made at start (by the
``openssl`` command); the client trusts it with ``connection_verify=<ca_file>``.
It listens on its own port: the connection string for the administration
client names that port (:attr:`TestBroker.admin_connection_string`).

Operations (``?api-version`` is ignored; credentials are not checked):

- ``GET|PUT /<topic>``: a ``TopicDescription`` entry; 404 when missing, 409
  when ``PUT`` finds it;
- ``GET /<topic>/subscriptions``: a feed of them;
  ``GET|PUT|DELETE /<topic>/subscriptions/<name>``: ``SubscriptionDescription``
  (``LockDuration``, ``MaxDeliveryCount``, ``RequiresSession``); a new one has
  the ``$Default`` (true) rule;
- ``GET /<topic>/subscriptions/<name>/rules``: a feed of ``RuleDescription``
  entries; ``PUT|DELETE .../rules/<rule>``: ``SqlFilter``,
  ``CorrelationFilter`` (system fields and ``Properties``), ``TrueFilter``,
  ``FalseFilter``; no rule actions.

Each request runs on the broker's reactor thread (``call``), as every store
operation does.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ._store import BrokerFault, Entity, Rule, Store

__all__ = ["AtomEndpoint"]

ATOM = "http://www.w3.org/2005/Atom"
SB = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
_CORRELATION_FIELDS = (
    "CorrelationId",
    "MessageId",
    "To",
    "ReplyTo",
    "Label",
    "SessionId",
    "ReplyToSessionId",
    "ContentType",
)

StoreCall = Callable[[Callable[[Store], Any]], Any]


def _self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        raise RuntimeError("the ATOM endpoint needs the openssl command for its TLS certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    san = f"IP:{host}" if host.replace(".", "").isdigit() else f"DNS:{host}"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName={san}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class AtomEndpoint:
    """An HTTPS server on a thread, answering ATOM management requests from the store."""

    def __init__(self, call: StoreCall, host: str = "127.0.0.1", port: int = 0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="eventbus-atom-")
        cert, key = _self_signed(Path(self._dir.name), host)
        self.ca_file = str(cert)
        handler = type("Handler", (_Handler,), {"call": staticmethod(call)})
        self._server = ThreadingHTTPServer((host, port), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="eventbus-testbroker-atom", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._dir.cleanup()


class _Handler(BaseHTTPRequestHandler):
    call: StoreCall
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _run(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        try:
            status, doc = self.call(lambda store: _dispatch(store, self.command, parts, body))
        except BrokerFault as fault:
            status, doc = fault.status, _error(fault.status, fault.description)
        except (ET.ParseError, KeyError, ValueError) as exc:
            status, doc = 400, _error(400, f"bad request: {exc}")
        out = doc.encode("utf-8") if doc else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_PUT = do_DELETE = _run


def _error(status: int, detail: str) -> str:
    root = ET.Element("Error")
    ET.SubElement(root, "Code").text = str(status)
    ET.SubElement(root, "Detail").text = detail
    return ET.tostring(root, encoding="unicode")


def _dispatch(store: Store, method: str, parts: list[str], body: bytes) -> tuple[int, str]:
    if len(parts) == 1 and parts[0]:
        return _topic(store, method, parts[0])
    if len(parts) == 2 and parts[1].lower() == "subscriptions" and method == "GET":
        t = store.topics.get(parts[0].lower())
        if t is None:
            raise BrokerFault("amqp:not-found", f"topic {parts[0]} does not exist", 404)
        entries = [
            _entry(s.path.rsplit("/", 1)[-1], _describe(s)) for s in t.subscriptions.values()
        ]
        return 200, _feed(f"{parts[0]}/subscriptions", entries)
    if len(parts) >= 3 and parts[1].lower() == "subscriptions":
        topic, name = parts[0], parts[2]
        if len(parts) == 3:
            return _subscription(store, method, topic, name, body)
        if parts[3].lower() == "rules":
            sub = _find(store, topic, name)
            if len(parts) == 4 and method == "GET":
                return 200, _feed(
                    f"{topic}/subscriptions/{name}/rules", [_rule_entry(r) for r in sub.rules]
                )
            if len(parts) == 5:
                return _rule(sub, method, parts[4], body)
    raise BrokerFault("amqp:not-found", f"no such management resource: /{'/'.join(parts)}", 404)


def _find(store: Store, topic: str, name: str) -> Entity:
    t = store.topics.get(topic.lower())
    sub = t.subscriptions.get(name.lower()) if t else None
    if sub is None:
        raise BrokerFault("amqp:not-found", f"subscription {topic}/{name} does not exist", 404)
    return sub


def _topic(store: Store, method: str, name: str) -> tuple[int, str]:
    exists = name.lower() in store.topics
    if method == "GET" and exists:
        return 200, _entry(name, ET.Element(f"{{{SB}}}TopicDescription"))
    if method == "PUT" and not exists:
        store.ensure_topic(name)
        return 201, _entry(name, ET.Element(f"{{{SB}}}TopicDescription"))
    if method == "PUT":
        raise BrokerFault("com.microsoft:entity-already-exists", f"topic {name} exists", 409)
    raise BrokerFault("amqp:not-found", f"topic {name} does not exist", 404)


def _subscription(store: Store, method: str, topic: str, name: str, body: bytes) -> tuple[int, str]:
    if method == "GET":
        return 200, _entry(name, _describe(_find(store, topic, name)))
    if method == "DELETE":
        if not store.delete_subscription(topic, name):
            raise BrokerFault("amqp:not-found", f"subscription {topic}/{name} does not exist", 404)
        return 200, ""
    t = store.topics.get(topic.lower())
    if t is not None and name.lower() in t.subscriptions:
        raise BrokerFault("com.microsoft:entity-already-exists", f"{topic}/{name} exists", 409)
    desc = _content(body, "SubscriptionDescription")
    props: dict[str, Any] = {}
    for tag in ("LockDuration", "MaxDeliveryCount", "RequiresSession"):
        value = desc.findtext(f"{{{SB}}}{tag}")
        if value is not None:
            props[tag] = value
    sub = store.ensure_subscription(topic, name, props, rules=None)
    return 201, _entry(name, _describe(sub))


def _rule(sub: Entity, method: str, name: str, body: bytes) -> tuple[int, str]:
    current = next((r for r in sub.rules if r.name.lower() == name.lower()), None)
    if method == "GET" and current is not None:
        return 200, _rule_entry(current)
    if method == "DELETE" and current is not None:
        sub.rules.remove(current)
        sub.rule_history.append(tuple(r.name for r in sub.rules))
        return 200, ""
    if method == "PUT" and current is None:
        rule = Rule.from_config(_rule_config(name, _content(body, "RuleDescription")))
        sub.rules.append(rule)
        sub.rule_history.append(tuple(r.name for r in sub.rules))
        return 201, _rule_entry(rule)
    if method == "PUT":
        raise BrokerFault("com.microsoft:entity-already-exists", f"rule {name} exists", 409)
    raise BrokerFault("amqp:not-found", f"rule {name} does not exist", 404)


# -- XML --------------------------------------------------------------------------------------
def _content(body: bytes, tag: str) -> ET.Element:
    root = ET.fromstring(body)
    found = root.find(f"{{{ATOM}}}content/{{{SB}}}{tag}")
    if found is None:
        raise ValueError(f"no {tag} in the request")
    return found


def _entry(title: str, description: ET.Element) -> str:
    return ET.tostring(_entry_element(title, description), encoding="unicode")


def _entry_element(title: str, description: ET.Element) -> ET.Element:
    entry = ET.Element(f"{{{ATOM}}}entry")
    ET.SubElement(entry, f"{{{ATOM}}}title", {"type": "text"}).text = title
    content = ET.SubElement(entry, f"{{{ATOM}}}content", {"type": "application/xml"})
    content.append(description)
    return entry


def _feed(title: str, entries: list[str]) -> str:
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}title", {"type": "text"}).text = title
    for text in entries:
        feed.append(ET.fromstring(text))
    return ET.tostring(feed, encoding="unicode")


def _describe(sub: Entity) -> ET.Element:
    desc = ET.Element(f"{{{SB}}}SubscriptionDescription")
    ET.SubElement(desc, f"{{{SB}}}LockDuration").text = f"PT{sub.lock_duration:g}S"
    ET.SubElement(desc, f"{{{SB}}}RequiresSession").text = str(sub.requires_session).lower()
    ET.SubElement(desc, f"{{{SB}}}MaxDeliveryCount").text = str(sub.max_delivery_count)
    return desc


def _rule_entry(rule: Rule) -> str:
    desc = ET.Element(f"{{{SB}}}RuleDescription")
    flt = ET.SubElement(desc, f"{{{SB}}}Filter")
    if rule.kind == "sql":
        flt.set(f"{{{XSI}}}type", "SqlFilter")
        ET.SubElement(flt, f"{{{SB}}}SqlExpression").text = rule.sql
    elif rule.kind == "correlation":
        flt.set(f"{{{XSI}}}type", "CorrelationFilter")
        corr = rule.as_config()["Properties"]["CorrelationFilter"]
        for tag in _CORRELATION_FIELDS:
            if corr.get(tag) is not None:
                ET.SubElement(flt, f"{{{SB}}}{tag}").text = str(corr[tag])
        props = ET.SubElement(flt, f"{{{SB}}}Properties")
        for key, value in dict(corr.get("Properties") or {}).items():
            kv = ET.SubElement(props, f"{{{SB}}}KeyValueOfstringanyType")
            ET.SubElement(kv, f"{{{SB}}}Key").text = str(key)
            v = ET.SubElement(kv, f"{{{SB}}}Value", {f"{{{XSI}}}type": _xsd_type(value)})
            v.text = str(value).lower() if isinstance(value, bool) else str(value)
    else:
        flt.set(f"{{{XSI}}}type", "TrueFilter" if rule.kind == "true" else "FalseFilter")
        ET.SubElement(flt, f"{{{SB}}}SqlExpression").text = "1=1" if rule.kind == "true" else "1=0"
    ET.SubElement(desc, f"{{{SB}}}Action", {f"{{{XSI}}}type": "EmptyRuleAction"})
    ET.SubElement(desc, f"{{{SB}}}Name").text = rule.name
    return _entry(rule.name, desc)


def _xsd_type(value: Any) -> str:
    ET.register_namespace("d6p1", XSD)
    if isinstance(value, bool):
        return "d6p1:boolean"
    if isinstance(value, int):
        return "d6p1:int"
    if isinstance(value, float):
        return "d6p1:double"
    return "d6p1:string"


def _rule_config(name: str, desc: ET.Element) -> dict[str, Any]:
    flt = desc.find(f"{{{SB}}}Filter")
    if desc.find(f"{{{SB}}}Action[@{{{XSI}}}type='SqlRuleAction']") is not None:
        raise ValueError(f"rule {name!r}: rule actions are not supported")
    kind = flt.get(f"{{{XSI}}}type", "TrueFilter") if flt is not None else "TrueFilter"
    if flt is None or kind in ("TrueFilter", "FalseFilter"):
        return {"Name": name, "Properties": {"FilterType": kind.removesuffix("Filter")}}
    if kind == "SqlFilter":
        sql = flt.findtext(f"{{{SB}}}SqlExpression") or "1=1"
        return {
            "Name": name,
            "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": sql}},
        }
    if kind != "CorrelationFilter":
        raise ValueError(f"rule {name!r}: filter type {kind!r} is not supported")
    corr: dict[str, Any] = {}
    for tag in _CORRELATION_FIELDS:
        text = flt.findtext(f"{{{SB}}}{tag}")
        if text is not None:
            corr[tag] = text
    props: dict[str, Any] = {}
    for kv in flt.iterfind(f"{{{SB}}}Properties/{{{SB}}}KeyValueOfstringanyType"):
        value = kv.find(f"{{{SB}}}Value")
        text = value.text if value is not None else None
        typ = (value.get(f"{{{XSI}}}type", "") if value is not None else "").split(":")[-1]
        converted: Any = text
        if typ in ("int", "long", "short") and text is not None:
            converted = int(text)
        elif typ == "double" and text is not None:
            converted = float(text)
        elif typ == "boolean":
            converted = text == "true"
        props[kv.findtext(f"{{{SB}}}Key") or ""] = converted
    corr["Properties"] = props
    return {"Name": name, "Properties": {"FilterType": "Correlation", "CorrelationFilter": corr}}

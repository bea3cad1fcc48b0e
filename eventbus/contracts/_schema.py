"""Contracts as JSON Schema files, and what changed between two of them.

``eventbus schema export`` writes :func:`export_schemas`'s document;
``eventbus schema check OLD NEW`` prints :func:`breaking_changes` and exits 1
when there is any, so CI can gate a contract change. A change is breaking when
an event valid under one side may be invalid under the other for a consumer
that was written against the old one: a removed type or field, a changed field
type, a field that became required, unknown fields newly refused.
"""

from __future__ import annotations

from typing import Any

from ._registry import REGISTRY, Registry

__all__ = ["breaking_changes", "export_schemas"]

FORMAT = "eventbus-schemas/1"


def export_schemas(registry: Registry | None = None) -> dict[str, Any]:
    """Every bound type's contract: class, version, unknown-field policy and JSON Schema."""
    return {
        "format": FORMAT,
        "types": {
            c.type: {
                "class": f"{c.cls.__module__}.{c.cls.__qualname__}",
                "kind": c.kind.name,
                "version": c.version,
                "unknown": c.unknown,
                "schema": c.schema(),
            }
            for c in (registry or REGISTRY).contracts()
        },
    }


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(breaking, compatible)`` changes from export ``old`` to export ``new``, as lines."""
    for doc, side in ((old, "old"), (new, "new")):
        if doc.get("format") != FORMAT or not isinstance(doc.get("types"), dict):
            raise ValueError(f"the {side} file is not an 'eventbus schema export' document")
    breaking: list[str] = []
    compatible: list[str] = []
    old_types, new_types = old["types"], new["types"]
    for name in sorted(old_types.keys() - new_types.keys()):
        breaking.append(f"{name}: event type removed")
    for name in sorted(new_types.keys() - old_types.keys()):
        compatible.append(f"{name}: new event type")
    for name in sorted(old_types.keys() & new_types.keys()):
        a, b = old_types[name], new_types[name]
        if a.get("unknown") != "reject" and b.get("unknown") == "reject":
            breaking.append(f"{name}: unknown fields are now rejected")
        if b.get("version", 1) != a.get("version", 1):
            compatible.append(f"{name}: version {a.get('version', 1)} -> {b.get('version', 1)}")
        _compare(name, a["schema"], b["schema"], a["schema"], b["schema"], breaking, compatible)
    return breaking, compatible


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 20:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema, seen = target, seen + 1
    return schema


def _shape(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A comparable description of the values a schema accepts (nested objects apart)."""
    schema = _resolve(schema, root)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        return ("any", tuple(sorted(repr(_shape(s, root)) for s in options)))
    if "enum" in schema:
        return ("enum", tuple(sorted(map(repr, schema["enum"]))))
    kind = schema.get("type")
    kinds = tuple(sorted(kind)) if isinstance(kind, list) else kind
    if kind == "array":
        items = schema.get("items")
        return ("array", _shape(items, root) if isinstance(items, dict) else None)
    if kind == "object" and "properties" in schema:
        return "object"
    return (kinds, schema.get("format"))


def _compare(
    path: str,
    a: dict[str, Any],
    b: dict[str, Any],
    root_a: dict[str, Any],
    root_b: dict[str, Any],
    breaking: list[str],
    compatible: list[str],
) -> None:
    a, b = _resolve(a, root_a), _resolve(b, root_b)
    props_a, props_b = a.get("properties", {}), b.get("properties", {})
    req_a, req_b = set(a.get("required", ())), set(b.get("required", ()))
    for field in sorted(props_a.keys() - props_b.keys()):
        breaking.append(f"{path}: field {field!r} removed")
    for field in sorted(props_b.keys() - props_a.keys()):
        if field in req_b:
            breaking.append(f"{path}: new required field {field!r}")
        else:
            compatible.append(f"{path}: new optional field {field!r}")
    for field in sorted(props_a.keys() & props_b.keys()):
        fa, fb = _resolve(props_a[field], root_a), _resolve(props_b[field], root_b)
        where = f"{path}.{field}"
        if field in req_b and field not in req_a:
            breaking.append(f"{path}: field {field!r} is now required")
        sa, sb = _shape(fa, root_a), _shape(fb, root_b)
        if sa != sb:
            breaking.append(f"{where}: type changed from {_say(fa)} to {_say(fb)}")
        elif sa == "object":
            _compare(where, fa, fb, root_a, root_b, breaking, compatible)
    if a.get("additionalProperties") is not False and b.get("additionalProperties") is False:
        if path.count(".") > 0:
            breaking.append(f"{path}: unknown fields are now refused")


def _say(schema: dict[str, Any]) -> str:
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(_say(s) for s in schema.get("anyOf") or schema["oneOf"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type", "any")
    text = "/".join(kind) if isinstance(kind, list) else str(kind)
    return f"{text} ({schema['format']})" if "format" in schema else text

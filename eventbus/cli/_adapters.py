"""``eventbus adapters``: the installed adapters, their SDKs, URL schemes and capabilities."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._plugins import AdapterSpec, adapter_specs, load_errors
from ._common import PROG


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "adapters",
        parents=[common],
        help="list installed adapters",
        description="List the installed adapters: version, SDK, URL schemes and capabilities.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_adapters)


def _adapter_row(spec: AdapterSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "schemes": list(spec.schemes),
        "default_url": spec.default_url,
        "sdk": spec.sdk,
        "sdk_installed": spec.sdk_installed(),
        "extra": spec.extra,
        "capabilities": spec.capabilities.as_dict(),
    }


def cmd_adapters(args: argparse.Namespace) -> int:
    rows = [_adapter_row(s) for _, s in sorted(adapter_specs().items())]
    errors = load_errors()
    if args.json:
        print(json.dumps({"adapters": rows, "load_errors": errors}, indent=2))
        return 0
    for row in rows:
        if row["sdk"] is None:
            sdk = "built in"
        elif row["sdk_installed"]:
            sdk = f"SDK {row['sdk']} installed"
        else:
            extra = f": pip install 'eventbus[{row['extra']}]'" if row["extra"] else ""
            sdk = f"SDK {row['sdk']} NOT installed{extra}"
        print(f"{row['name']} {row['version']} ({sdk})")
        if row["description"]:
            print(f"  {row['description']}")
        schemes = ", ".join(f"{s}://" for s in row["schemes"]) or "-"
        print(
            f"  schemes:      {schemes}"
            + (f"  default: {row['default_url']}" if row["default_url"] else "")
        )
        print(f"  capabilities: {_capability_summary(row['capabilities'])}")
    for name, error in errors.items():
        print(f"{PROG}: warning: plugin {name!r} failed to load: {error}", file=sys.stderr)
    return 0


def _capability_summary(caps: dict[str, Any]) -> str:
    flags = [k for k, v in caps.items() if v is True]
    limits = [f"lease {caps['lease_seconds']:g}s"]
    if caps.get("max_message_size"):
        limits.append(f"max message {_size(caps['max_message_size'])}")
    if caps.get("max_header_count"):
        limits.append(f"max {caps['max_header_count']} headers")
    if caps.get("max_header_size"):
        limits.append(f"max headers {_size(caps['max_header_size'])}")
    return " ".join(flags) + "; " + ", ".join(limits)


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} B"

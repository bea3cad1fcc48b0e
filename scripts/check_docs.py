"""Docs checks (nox -s docs): every public name is documented, every Python block parses,
every relative link points at a file that exists."""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import eventbus

    docs = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    text = "\n".join(p.read_text() for p in docs)
    problems: list[str] = []
    for name in eventbus.__all__:
        if name.startswith("_"):
            continue
        if not re.search(rf"\b{re.escape(name)}\b", text):
            problems.append(f"public name {name!r} appears in no doc")
    for path in docs:
        body = path.read_text()
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", body, re.S)):
            try:
                ast.parse(textwrap.dedent(block))
            except SyntaxError as exc:
                problems.append(f"{path.relative_to(ROOT)}: python block {i + 1}: {exc}")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", body):
            if not (path.parent / target).exists():
                problems.append(f"{path.relative_to(ROOT)}: broken link {target}")
    for p in problems:
        print(p)
    print(f"{len(docs)} docs checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the whole conformance suite on every broken memory adapter and print what fails.

    python scripts/mutation_check.py            # all mutants (a few minutes)
    python scripts/mutation_check.py AckDoesNothing CrashIsClose

The mutants and the tests meant to catch them are in
``tests/core/test_conformance_mutants.py`` (which CI runs, on those tests only).
This script runs every conformance test on each mutant and on the unmodified
memory adapter ("Control"), and prints mutant -> failing tests; it exits 1 if a
mutant passes a test listed for it in ``CATCHES`` or the control fails anything.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "tests" / "core" / "test_conformance_mutants.py"

ROW_FILE = """\
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("eventbus_conformance_mutants", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
{rows}
"""


def _load() -> object:
    spec = importlib.util.spec_from_file_location("eventbus_conformance_mutants", MUTANTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    module = _load()
    catches: dict[str, tuple[str, ...]] = {
        m.__name__: tests
        for m, tests in module.CATCHES.items()  # type: ignore[attr-defined]
    }
    names = argv or [*catches, "Control"]
    rows = "\n".join(f"Test{n} = module.ROWS[{n!r}]" for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "test_rows.py").write_text(ROW_FILE.format(path=str(MUTANTS), rows=rows))
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "EVENTBUS_TIMEOUT_MULTIPLIER": "0.3", "EVENTBUS_TIER": "short"}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "test_rows.py",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                "-o",
                "junit_family=xunit1",
                "-o",
                "timeout=60",
            ],
            cwd=tmp,
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
        )
        failed: dict[str, list[str]] = {n: [] for n in names}
        for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own file
            cls = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("Test")
            if case.find("failure") is not None or case.find("error") is not None:
                failed.setdefault(cls, []).append(case.get("name", ""))
    bad = False
    width = max(map(len, names))
    for n in names:
        expected = set(catches.get(n, ()))
        missed = expected - set(failed[n])
        verdict = "ok" if (not missed if n != "Control" else not failed[n]) else "NOT CAUGHT"
        if n == "Control" and failed[n]:
            verdict = "CONTROL FAILS"
        bad |= verdict != "ok"
        tests = ", ".join(t.removeprefix("test_") for t in sorted(failed[n])) or "-"
        print(f"{n:<{width}}  {verdict:<13}  {tests}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

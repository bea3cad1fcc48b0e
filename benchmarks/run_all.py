"""Run every benchmark that can run here and write docs/benchmarks.md: the entry point.

    python benchmarks/run_all.py [--tier quick|full] [--only memory,sqlite,rabbitmq,...]
    python benchmarks/run_all.py --render docs/benchmarks.json   # the page again, no run

``nox -s bench`` runs this. The work is in the modules beside it, which import each
other (and ``_common``) as top-level modules, like the scripts they drive:

- ``runner``: the command line, running the steps, collecting the report
- ``suite``: the brokers, the tiers, each broker's steps
- ``results``: reading a report (throughput rows, embedded cases, latency)
- ``goals``: the speed goals of the issues, as data, and what a run measured of them
- ``render`` and ``commentary``: the page and its prose
- ``charts``: docs/img/bench-*.png
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import main

if __name__ == "__main__":
    raise SystemExit(main())

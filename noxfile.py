"""nox sessions: tests (per tier and per broker), lint, types, docs, benchmarks.

nox -s tests                 # the short tier, every adapter (what CI runs)
nox -s "tests_full"          # full tier (50 x 5,000 events, long fault tests)
nox -s "broker(name='kafka')"  # one adapter's tests and conformance row
nox -s lint types docs       # lint includes `ruff format --check`
nox -s format                # format the tree (ruff format)
nox -s bench                 # benchmarks, writes docs/benchmarks.md
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_existing_virtualenvs = True

BROKERS = ["memory", "sqlite", "rabbitmq", "kafka", "sqs", "azure_servicebus"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def tests_full(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        *session.posargs,
        env={"EVENTBUS_TIER": "full", "EVENTBUS_TIMEOUT_MULTIPLIER": "2"},
    )


@nox.session
def tests_stress(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-m",
        "conformance",
        *session.posargs,
        env={"EVENTBUS_TIER": "stress", "EVENTBUS_TIMEOUT_MULTIPLIER": "4"},
    )


@nox.session
@nox.parametrize("name", BROKERS)
def broker(session: nox.Session, name: str) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "-m", name, *session.posargs)


SOURCES = ["eventbus", "adapters", "tests", "benchmarks", "scripts", "noxfile.py"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def format(session: nox.Session) -> None:
    """Format the tree with ruff format (the style lint checks)."""
    session.install("ruff")
    session.run("ruff", "check", "--select", "I", "--fix", *SOURCES)
    session.run("ruff", "format", *SOURCES)


@nox.session
def types(session: nox.Session) -> None:
    # the adapters are checked with their SDKs installed; mypy checks the 3.10 path (tomli)
    session.install("-e", ".[all,pydantic,msgspec]", "mypy", "pytest", "hypothesis", "tomli")
    session.run("mypy", "eventbus")
    # the adapters too, each as the plugin package it is (strict, from pyproject.toml)
    session.run(
        "mypy",
        "adapters/eventbus_rabbitmq",
        "adapters/eventbus_kafka",
        "adapters/eventbus_sqs",
        "adapters/eventbus_azure_servicebus",
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Check that docs exist for every public name and their code blocks still import."""
    session.install("-e", ".[test]")
    session.run("python", "scripts/check_docs.py")


@nox.session
def conformance_table(session: nox.Session) -> None:
    """Run the suite on every adapter and regenerate the table in docs/conformance.md."""
    session.install("-e", ".[test]")
    session.run("python", "scripts/conformance_table.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against raw clients and peers; writes docs/benchmarks.md (``-- --tier full``)."""
    session.install(
        "-e",
        ".[test]",
        "kombu",
        "faststream[rabbit,confluent]",
        "aio-pika",
        "matplotlib",
        "py-spy",
    )
    session.run("python", "benchmarks/run_all.py", *session.posargs)

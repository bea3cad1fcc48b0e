"""Opening the SQLite files eventbus keeps: the SQLite broker's, the local outbox's, the inbox's.

All three open their file with :func:`connect`, so they behave alike:

- **autocommit** (``isolation_level=None``): the caller writes its own
  ``BEGIN IMMEDIATE`` … ``COMMIT``, taking the write lock up front;
- **any thread** (``check_same_thread=False``): each caller guards its
  connection with a lock of its own, or keeps it on one thread;
- **busy timeout** (``busy_timeout`` seconds, 5 unless the caller says): a
  statement waits that long for another connection's lock before SQLite gives
  up with "database is locked";
- **WAL mode**: readers never block the writer, and a commit is one append to
  the ``-wal`` file. Switching a file to WAL (which happens once, on a new
  file) takes a lock that SQLite's busy timeout does not wait for: while any
  other connection writes, it fails with "database is locked" at once, so
  processes opening the same new file at the same moment would fail. That
  step is retried, with a pause growing from 5 ms to 100 ms, until the busy
  timeout has passed. A file that cannot be in WAL mode (a network file
  system without shared memory) is refused with :class:`ConfigError` rather
  than used in another mode;
- **synchronous** ``NORMAL`` unless the caller asks otherwise: in WAL mode a
  crash of any process loses nothing committed, a power loss may lose the last
  commits. The local outbox asks for ``FULL`` (an fsync per commit), since its
  commit is what lets ``publish`` return ``"outbox"``; the broker takes its
  ``synchronous`` option.

A path that is a directory, or whose directory does not exist, is a
:class:`ConfigError` too (the outbox and the inbox create their directory
before). Errors SQLite itself raises are raised as they are: each caller turns
them into its own error type with the wording of :func:`describe`.
"""

from __future__ import annotations

import os
import sqlite3
import time

from ._errors import ConfigError

__all__ = ["BUSY_TIMEOUT", "connect", "describe", "error_kind"]

#: Seconds a statement waits for another connection's lock, unless the caller says.
BUSY_TIMEOUT = 5.0

_SYNCHRONOUS = ("off", "normal", "full", "extra")


def connect(
    path: str | os.PathLike[str],
    *,
    what: str,
    busy_timeout: float = BUSY_TIMEOUT,
    synchronous: str = "normal",
) -> sqlite3.Connection:
    """A connection to ``path`` set up as the module docstring says.

    ``what`` names the file's role in error messages (``"sqlite broker"``,
    ``"outbox"``, ``"inbox"``). The file is created if it does not exist.
    """
    path = os.fspath(path)
    mode = synchronous.lower()
    if mode not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {mode!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(
            f"{what} {path}: directory {directory} does not exist; "
            "create it or choose a file in an existing directory"
        )
    if os.path.isdir(path):
        raise ConfigError(f"{what} {path} is a directory; it must name a file")
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=64,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        journal = _enter_wal(conn, busy_timeout)
        if journal.lower() != "wal":
            raise ConfigError(
                f"{what} {path}: cannot switch to WAL mode (got {journal!r}); "
                "put the file on a local file system"
            )
        conn.execute(f"PRAGMA synchronous = {mode}")
    except BaseException:
        conn.close()
        raise
    return conn


def _enter_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """``PRAGMA journal_mode = WAL``, retried on "database is locked" for ``busy_timeout``."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if error_kind(exc) != "locked" or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    for needle, c in (
        ("locked", 5),
        ("not a database", 26),
        ("malformed", 11),
        ("readonly", 8),
        ("unable to open", 14),
        ("disk is full", 13),
    ):
        if needle in text:
            return c
    return 1


def error_kind(exc: sqlite3.Error) -> str:
    """``locked`` (another connection held a lock past the busy timeout), ``corrupt``
    (not an SQLite file, or damaged), ``access`` (cannot open or write it), else ``other``."""
    code = _code(exc)
    if code in (5, 6):  # BUSY, LOCKED
        return "locked"
    if code in (11, 26):  # CORRUPT, NOTADB
        return "corrupt"
    if code in (3, 8, 14, 23):  # PERM, READONLY, CANTOPEN, AUTH
        return "access"
    return "other"


def describe(
    exc: sqlite3.Error,
    *,
    what: str,
    path: str | os.PathLike[str],
    action: str,
    busy_timeout: float,
    busy_fix: str = "find the process that holds it",
) -> str:
    """``"<what> <path>: <action> failed: <error>"`` and, for a known kind, what to do."""
    where = f"{what} {os.fspath(path)}: {action} failed: {exc}"
    kind = error_kind(exc)
    if kind == "locked":
        return (
            f"{where}; another process held the database lock for more than "
            f"{busy_timeout}s ({busy_fix})"
        )
    if kind == "corrupt":
        return (
            f"{where}; the file is not an SQLite database or is corrupt: use another "
            "file, or move this one away to start a new one"
        )
    if kind == "access":
        return (
            f"{where}; check that the file and its directory exist and are writable "
            "(SQLite also creates -wal and -shm files next to it)"
        )
    return where

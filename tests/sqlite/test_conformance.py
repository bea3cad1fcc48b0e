"""The conformance row of the embedded SQLite adapter."""

from __future__ import annotations

import sqlite3

import pytest

from eventbus import SqliteAdapter
from eventbus.testing import AdapterConformance

from .conftest import raw_publish

pytestmark = [pytest.mark.sqlite]


class TestSqliteConformance(AdapterConformance):
    marker = "sqlite"

    @pytest.fixture
    def adapter_factory(self, db_path):
        # Every call is another client of the same file (own connections).
        return lambda: SqliteAdapter(db_path, lease=2.0, max_message_size=64 * 1024)

    @pytest.fixture
    def foreign_publisher(self, db_path):
        return lambda topic, body: raw_publish(db_path, topic, body)

    @pytest.fixture
    def broker_restart(self, db_path):
        # No server: the file is the broker. "Restart" = fold the WAL into the
        # main file and truncate it, so what survives is what is on disk.
        def restart() -> None:
            conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
            try:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 0
            finally:
                conn.close()

        return restart

    @pytest.fixture
    def crash(self):
        # Deliveries are rows leased until visible_at: a member never called again (its
        # process killed or hung) keeps them until the lease runs out.
        return lambda adapter: None

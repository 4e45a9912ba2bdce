"""The gateway's records (API keys, audit log, escalations by tenant) in PostgreSQL.

For replicas on several hosts: `charter serve ... --db postgresql://user@host/charter`.

The same queries as the SQLite store (`records.GatewayRecords`); the tables are created at
connect time under an advisory lock, so replicas starting together do not race.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from charter.errors import StoreError
from charter.extras import requires_extra
from charter.store.records import GatewayRecords

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    charters TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS audit (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    key_id TEXT,
    charter_id TEXT NOT NULL,
    stream INTEGER NOT NULL,
    request TEXT NOT NULL,
    reply TEXT NOT NULL,
    blocked INTEGER NOT NULL,
    block_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost DOUBLE PRECISION,
    ms DOUBLE PRECISION NOT NULL,
    trace TEXT NOT NULL,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit(tenant, id);
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY,
    conversation_id TEXT,
    charter_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    reason TEXT NOT NULL,
    transcript TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    resolution TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    resolved_at DOUBLE PRECISION,
    tenant TEXT
);
CREATE INDEX IF NOT EXISTS escalations_by_tenant ON escalations(tenant, created_at);
CREATE TABLE IF NOT EXISTS memories (
    digest TEXT PRIMARY KEY,
    charter_id TEXT NOT NULL,
    memory TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
)
"""


class PostgresStore(GatewayRecords):
    """The gateway's records in the PostgreSQL database at `url`, shared by replicas.

    Raises StoreError when the `postgres` extra is missing, or the database cannot be reached
    or its tables created; a query that fails also raises StoreError.
    """

    def __init__(self, url: str) -> None:
        with requires_extra("the PostgreSQL store", "postgres", StoreError):
            import psycopg

        self._errors = (psycopg.Error,)
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=5)
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(7202611)")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
        self._lock = threading.Lock()

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            with self._lock, self._db.transaction():
                return int(self._db.execute(sql.replace("?", "%s"), tuple(args)).rowcount)
        except self._errors as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Sequence[Any]]:
        try:
            with self._lock:
                return list(self._db.execute(sql.replace("?", "%s"), tuple(args)).fetchall())
        except self._errors as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_records(db: str | None) -> GatewayRecords:
    """The gateway's store: a PostgreSQL URL, or a SQLite file (default: the Charter home's)."""
    if db is not None and db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db)
    from charter.store.sqlite import Store

    return Store(db)

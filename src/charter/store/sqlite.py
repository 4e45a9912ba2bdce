"""Conversations, messages and turn traces in SQLite (WAL), under the Charter home folder.

Schema changes are numbered migrations applied in order at open time; the database's
`PRAGMA user_version` records how far it has come, so an old database is upgraded in place
and a database from a newer Charter is refused rather than misread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.errors import StoreError
from charter.home import default_db_path
from charter.models.base import Message
from charter.store.records import (
    ESCALATION_COLUMNS,
    INSERT_ESCALATION,
    ApiKey,
    AuditRecord,
    GatewayRecords,
    StoredEscalation,
    escalation_args,
    escalation_of,
)
from charter.turn import Escalation

__all__ = ["ApiKey", "AuditRecord", "Store", "StoredEscalation", "StoredTurn"]

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations, their messages, and one row per turn with its trace
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        charter_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
        content TEXT NOT NULL,
        in_context INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        user_message_id INTEGER NOT NULL REFERENCES messages(id),
        reply_message_id INTEGER NOT NULL REFERENCES messages(id),
        blocked INTEGER NOT NULL,
        block_reason TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        ms REAL NOT NULL,
        trace TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX turns_by_conversation ON turns(conversation_id, id);
    """,
    # 2: escalations to a human, with the transcript at the time
    """
    CREATE TABLE escalations (
        id TEXT PRIMARY KEY,
        conversation_id TEXT REFERENCES conversations(id) ON DELETE SET NULL,
        charter_id TEXT NOT NULL,
        trigger TEXT NOT NULL,
        reason TEXT NOT NULL,
        transcript TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        resolution TEXT,
        created_at REAL NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX escalations_by_status ON escalations(status, created_at);
    """,
    # 3: user profiles that persist across conversations (for dynamic instructions)
    """
    CREATE TABLE profiles (
        user TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (user, key)
    );
    """,
    # 4: gateway API keys (hashed) of tenants, the audit log, escalations by tenant
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        charters TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
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
        cost REAL,
        ms REAL NOT NULL,
        trace TEXT NOT NULL,
        error TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX audit_by_tenant ON audit(tenant, id);
    ALTER TABLE escalations ADD COLUMN tenant TEXT;
    CREATE INDEX escalations_by_tenant ON escalations(tenant, created_at);
    """,
    # 5: what each turn hands to the next (blocked streak, re-anchoring), as JSON
    """
    ALTER TABLE turns ADD COLUMN carry TEXT;
    """,
    # 6: the memory of a gateway conversation's left-out messages, by a digest of them
    """
    CREATE TABLE memories (
        digest TEXT PRIMARY KEY,
        charter_id TEXT NOT NULL,
        memory TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class StoredTurn:
    """One saved turn: the user's message and the reply, blocked or not, its trace and its ms."""

    id: int
    conversation_id: str
    user: str
    reply: str
    blocked: bool
    trace: list[dict[str, Any]]
    ms: float


class Store(GatewayRecords):
    """A SQLite database of conversations. Safe to share between threads."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the process crashing (not a power cut, which
            # may roll back the last commits); FULL's fsync per commit cost ~0.3-0.6 ms of
            # every gateway turn (bench/gateway). PostgreSQL (`--db postgresql://`) is the
            # store for power-cut durability.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._migrate()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this Charter knows "
                f"({len(MIGRATIONS)}); upgrade Charter or use another $CHARTER_HOME"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._transaction() as db:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- conversations --------------------------------------------------------------------

    def create_conversation(self, charter_id: str) -> str:
        conversation_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations (id, charter_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (conversation_id, charter_id, now, now),
            )
        return conversation_id

    def conversation_charter(self, conversation_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT charter_id FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def context_messages(self, conversation_id: str) -> list[Message]:
        """The messages the model should see: everything except blocked turns."""
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content FROM messages "
                "WHERE conversation_id = ? AND in_context = 1 ORDER BY id",
                (conversation_id,),
            ).fetchall()
        return [Message(role=role, content=content) for role, content in rows]

    def record_turn(
        self,
        conversation_id: str,
        *,
        user: str,
        reply: str,
        blocked: bool,
        block_reason: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        ms: float,
        trace: list[dict[str, Any]],
        escalations: Sequence[Escalation] = (),
        carry: dict[str, Any] | None = None,
    ) -> int:
        """Save a turn atomically: both messages, the trace and any escalation it raised."""
        now = time.time()
        in_context = 0 if blocked else 1
        with self._transaction() as db:
            user_id = db.execute(
                "INSERT INTO messages (conversation_id, role, content, in_context, created_at) "
                "VALUES (?, 'user', ?, ?, ?)",
                (conversation_id, user, in_context, now),
            ).lastrowid
            reply_id = db.execute(
                "INSERT INTO messages (conversation_id, role, content, in_context, created_at) "
                "VALUES (?, 'assistant', ?, ?, ?)",
                (conversation_id, reply, in_context, now),
            ).lastrowid
            turn_id = db.execute(
                "INSERT INTO turns (conversation_id, user_message_id, reply_message_id, blocked, "
                "block_reason, prompt_tokens, completion_tokens, ms, trace, carry, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    user_id,
                    reply_id,
                    int(blocked),
                    block_reason,
                    prompt_tokens,
                    completion_tokens,
                    ms,
                    json.dumps(trace),
                    None if carry is None else json.dumps(carry),
                    now,
                ),
            ).lastrowid
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            charter_id = db.execute(
                "SELECT charter_id FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()[0]
            for item in escalations:
                _insert_escalation(db, item, conversation_id, charter_id, now)
        if turn_id is None:  # pragma: no cover - sqlite always returns a rowid here
            raise StoreError("the turn was not saved")
        return turn_id

    def profile(self, user: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM profiles WHERE user = ? ORDER BY key", (user,)
            ).fetchall()
        return {key: value for key, value in rows}

    def set_profile(self, user: str, fields: dict[str, str]) -> None:
        now = time.time()
        with self._transaction() as db:
            for key, value in fields.items():
                db.execute(
                    "INSERT INTO profiles (user, key, value, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (user, key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (user, key, value, now),
                )

    def last_trace(self, conversation_id: str) -> list[dict[str, Any]]:
        """The trace of the conversation's latest turn (empty if it has none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT trace FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
        return [] if row is None else list(json.loads(row[0]))

    def last_carry(self, conversation_id: str) -> dict[str, Any] | None:
        """What the conversation's latest turn handed to the next.

        None when the conversation has no turn yet, or its latest was saved before turns kept
        it.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT carry FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def consecutive_blocked(self, conversation_id: str) -> int:
        """How many of the latest turns, in a row, were blocked."""
        with self._lock:
            rows = self._db.execute(
                "SELECT blocked FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT 20",
                (conversation_id,),
            ).fetchall()
        count = 0
        for (blocked,) in rows:
            if not blocked:
                break
            count += 1
        return count

    # -- escalations ----------------------------------------------------------------------

    def escalation(self, escalation_id: str) -> StoredEscalation | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE id = ?", (escalation_id,)
            ).fetchone()
        return None if row is None else escalation_of(row)

    def resolve_escalation(self, escalation_id: str, resolution: str) -> bool:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE escalations SET status = 'resolved', resolution = ?, resolved_at = ? "
                "WHERE id = ? AND status = 'open'",
                (resolution, time.time(), escalation_id),
            ).rowcount
        return changed == 1

    def turns(self, conversation_id: str) -> list[StoredTurn]:
        with self._lock:
            rows = self._db.execute(
                "SELECT t.id, t.conversation_id, u.content, r.content, t.blocked, t.trace, t.ms "
                "FROM turns t JOIN messages u ON u.id = t.user_message_id "
                "JOIN messages r ON r.id = t.reply_message_id "
                "WHERE t.conversation_id = ? ORDER BY t.id",
                (conversation_id,),
            ).fetchall()
        return [
            StoredTurn(row[0], row[1], row[2], row[3], bool(row[4]), json.loads(row[5]), row[6])
            for row in rows
        ]

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._transaction() as db:
            return int(db.execute(sql, tuple(args)).rowcount)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with self._lock:
            return list(self._db.execute(sql, tuple(args)).fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _insert_escalation(
    db: sqlite3.Connection,
    item: Escalation,
    conversation_id: str | None,
    charter_id: str,
    now: float,
    tenant: str | None = None,
) -> None:
    args = escalation_args(item, conversation_id, charter_id, tenant)
    db.execute(INSERT_ESCALATION, (*args[:6], now, tenant))

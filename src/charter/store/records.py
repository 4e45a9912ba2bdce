"""The gateway's records, written once for any SQL database.

The records are API keys, the audit log, escalations by tenant, and the memories of
conversations that outgrew the model's window (by a digest of the messages they stand for).

`Store` (SQLite, the default) and `PostgresStore` (several hosts) both inherit these
methods and supply two primitives, `_execute` and `_query`, with SQL written in `?`
placeholders (PostgreSQL's driver gets `%s`).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from charter.turn import Escalation


@dataclass(frozen=True)
class ApiKey:
    """A gateway API key: its tenant, the charters it may use, when it was made and revoked."""

    id: str
    tenant: str
    charters: tuple[str, ...]
    """Charter ids this key may use; ("*",) for all."""
    created_at: float
    revoked_at: float | None

    def allows(self, charter_id: str) -> bool:
        return "*" in self.charters or charter_id in self.charters


@dataclass(frozen=True)
class AuditRecord:
    """One gateway call as the audit log keeps it: caller, request, reply, usage and trace.

    `ms` is the turn's time in milliseconds; `created_at` and `id` are set by the store.
    """

    tenant: str
    key_id: str | None
    charter_id: str
    stream: bool
    request: list[dict[str, str]]
    reply: str
    blocked: bool
    block_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    ms: float
    trace: list[dict[str, Any]]
    error: str | None = None
    created_at: float = 0.0
    id: int = 0


@dataclass(frozen=True)
class StoredEscalation:
    """An escalation as the store keeps it, with its `status` ("open" or "resolved")."""

    id: str
    conversation_id: str | None
    charter_id: str
    trigger: str
    reason: str
    transcript: list[dict[str, str]]
    status: str
    resolution: str | None
    created_at: float
    resolved_at: float | None


ESCALATION_COLUMNS = (
    "id, conversation_id, charter_id, trigger, reason, transcript, status, resolution, "
    "created_at, resolved_at"
)
INSERT_ESCALATION = (
    "INSERT INTO escalations (id, conversation_id, charter_id, trigger, reason, transcript, "
    "status, created_at, tenant) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)"
)
_KEY_COLUMNS = "id, tenant, charters, created_at, revoked_at"
_AUDIT_COLUMNS = (
    "tenant, key_id, charter_id, stream, request, reply, blocked, block_reason, "
    "prompt_tokens, completion_tokens, cost, ms, trace, error, created_at"
)


def escalation_args(
    item: Escalation, conversation_id: str | None, charter_id: str, tenant: str | None
) -> tuple[Any, ...]:
    """The arguments of INSERT_ESCALATION for an escalation, stamped with the current time."""
    return (
        item["id"],
        conversation_id,
        charter_id,
        item["trigger"],
        item["reason"],
        json.dumps(item["transcript"]),
        time.time(),
        tenant,
    )


def escalation_of(row: Sequence[Any]) -> StoredEscalation:
    """The escalation in a row selected as ESCALATION_COLUMNS."""
    return StoredEscalation(
        row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8], row[9]
    )


def _api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], tuple(json.loads(row[2])), row[3], row[4])


class GatewayRecords(ABC):
    """The gateway's record queries, over the `_execute` and `_query` a store supplies."""

    @abstractmethod
    def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one writing statement in its own transaction; the rows it changed."""

    @abstractmethod
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Sequence[Any]]: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- API keys -------------------------------------------------------------------------

    def add_api_key(self, key_id: str, key_hash: str, tenant: str, charters: list[str]) -> None:
        self._execute(
            "INSERT INTO api_keys (id, hash, tenant, charters, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, key_hash, tenant, json.dumps(charters), time.time()),
        )

    def api_key(self, key_hash: str) -> ApiKey | None:
        """The live (not revoked) key with this hash."""
        rows = self._query(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE hash = ? AND revoked_at IS NULL",
            (key_hash,),
        )
        return _api_key(rows[0]) if rows else None

    def api_keys(self) -> list[ApiKey]:
        rows = self._query(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at")
        return [_api_key(row) for row in rows]

    def has_api_keys(self) -> bool:
        return bool(self._query("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"))

    def revoke_api_key(self, key_id: str) -> bool:
        changed = self._execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return changed == 1

    # -- the audit log --------------------------------------------------------------------

    def record_audit(self, record: AuditRecord) -> None:
        self._execute(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.tenant,
                record.key_id,
                record.charter_id,
                int(record.stream),
                json.dumps(record.request),
                record.reply,
                int(record.blocked),
                record.block_reason,
                record.prompt_tokens,
                record.completion_tokens,
                record.cost,
                record.ms,
                json.dumps(record.trace),
                record.error,
                time.time(),
            ),
        )

    def audit(self, tenant: str, *, limit: int = 100) -> list[AuditRecord]:
        """The tenant's latest audit records, newest first."""
        rows = self._query(
            f"SELECT {_AUDIT_COLUMNS}, id FROM audit WHERE tenant = ? ORDER BY id DESC LIMIT ?",
            (tenant, limit),
        )
        return [
            AuditRecord(
                tenant=r[0],
                key_id=r[1],
                charter_id=r[2],
                stream=bool(r[3]),
                request=json.loads(r[4]),
                reply=r[5],
                blocked=bool(r[6]),
                block_reason=r[7],
                prompt_tokens=r[8],
                completion_tokens=r[9],
                cost=r[10],
                ms=r[11],
                trace=json.loads(r[12]),
                error=r[13],
                created_at=r[14],
                id=r[15],
            )
            for r in rows
        ]

    def audit_count(self, tenant: str | None = None) -> int:
        if tenant is None:
            rows = self._query("SELECT COUNT(*) FROM audit")
        else:
            rows = self._query("SELECT COUNT(*) FROM audit WHERE tenant = ?", (tenant,))
        return int(rows[0][0])

    # -- memories of long conversations ---------------------------------------------------

    def memories(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The kept memories among `digests`: {digest: the memory as `to_dict` wrote it}."""
        if not digests:
            return {}
        marks = ", ".join("?" for _ in digests)
        rows = self._query(
            f"SELECT digest, memory FROM memories WHERE digest IN ({marks})", list(digests)
        )
        return {str(row[0]): dict(json.loads(row[1])) for row in rows}

    def save_memory(self, digest: str, charter_id: str, memory: dict[str, Any]) -> None:
        """Keep a memory under `digest`; one already kept under it stays as it is."""
        self._execute(
            "INSERT INTO memories (digest, charter_id, memory, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (digest) DO NOTHING",
            (digest, charter_id, json.dumps(memory), time.time()),
        )

    # -- escalations ----------------------------------------------------------------------

    def add_escalation(
        self,
        escalation: Escalation,
        *,
        conversation_id: str | None,
        charter_id: str,
        tenant: str | None = None,
    ) -> None:
        """Save an escalation raised outside a stored conversation (e.g. a gateway call)."""
        self._execute(
            INSERT_ESCALATION, escalation_args(escalation, conversation_id, charter_id, tenant)
        )

    def escalations(
        self, status: str | None = None, *, tenant: str | None = None
    ) -> list[StoredEscalation]:
        """Escalations, oldest first; with `tenant`, only that tenant's."""
        query = f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE 1=1"
        args: list[str] = []
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        if tenant is not None:
            query += " AND tenant = ?"
            args.append(tenant)
        return [escalation_of(row) for row in self._query(query + " ORDER BY created_at", args)]

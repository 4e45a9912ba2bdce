"""Durable state: conversations, turn traces and escalations (SQLite by default)."""

from charter.store.sqlite import MIGRATIONS, Store, StoredEscalation, StoredTurn

__all__ = ["MIGRATIONS", "Store", "StoredEscalation", "StoredTurn"]

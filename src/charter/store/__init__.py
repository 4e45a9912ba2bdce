"""Durable state: conversations and turn traces (SQLite by default)."""

from charter.store.sqlite import MIGRATIONS, Store, StoredTurn

__all__ = ["MIGRATIONS", "Store", "StoredTurn"]

"""A fake bank backend for the acme-bank example's tools (no real accounts, no network).

State lives in a JSON file (`$ACME_BANK_STATE`, default: a temporary file), so a frozen card
stays frozen across turns and processes, and tests can start from a known state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

START = {
    "accounts": {"everyday": 1234.56, "premium": 8020.00},
    "cards": {"4821": {"account": "everyday", "frozen": False}},
}


def _path() -> Path:
    return Path(os.environ.get("ACME_BANK_STATE") or Path(tempfile.gettempdir()) / "acme-bank.json")


def _load() -> dict[str, Any]:
    path = _path()
    if not path.exists():
        path.write_text(json.dumps(START))
    return json.loads(path.read_text())


def get_balance(account: str) -> dict[str, Any]:
    """The balance of the customer's `everyday` or `premium` account, in EUR."""
    state = _load()
    if account not in state["accounts"]:
        raise ValueError(f"no {account!r} account for this customer")
    return {"account": account, "balance_eur": state["accounts"][account]}


def list_cards() -> dict[str, Any]:
    """The customer's cards: last four digits, account, frozen or not."""
    return {"cards": [{"last4": k, **v} for k, v in _load()["cards"].items()]}


def freeze_card(last4: str) -> dict[str, Any]:
    """Freeze a card (reversible in the app)."""
    state = _load()
    if last4 not in state["cards"]:
        raise ValueError(f"no card ending in {last4}")
    state["cards"][last4]["frozen"] = True
    _path().write_text(json.dumps(state))
    return {"last4": last4, "frozen": True}

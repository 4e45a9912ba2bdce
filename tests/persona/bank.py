"""The small bank charter the persona judge and scope gate tests share (no guards, fake model)."""

from __future__ import annotations

from typing import Any

BANK: dict[str, Any] = {
    "id": "bank",
    "persona": {
        "name": "Penny",
        "role": "support assistant",
        "organisation": "Acme Bank",
        "description": "You help customers with cards, transfers, fees and opening hours.",
    },
    "guards": {"input": [], "output": []},
    "models": {"chat": {"backend": "fake"}},
}

"""The memory of a gateway conversation, kept in the store under the messages it stands for.

A gateway caller sends the whole history with every request and keeps nothing else, so the
memory a turn makes (notes on the messages that no longer fit the model's window;
`persona/memory.py`) cannot come back in a carry. The gateway keeps it in its store instead,
under a digest of the charter and of the messages it stands for. The conversation's next
request starts with the same messages, so the digest of that start finds the memory: on any
replica that shares the store, and after a restart. Only a new span of left-out messages
then costs a call to the notes taker. A history the gateway has not seen (one the caller
edited) finds nothing, and its memory is made again.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from charter.errors import StoreError
from charter.persona.memory import ConversationMemory, prefix_digests

if TYPE_CHECKING:
    from collections.abc import Sequence

    from charter.gateway.turn import Turn
    from charter.models.base import Message
    from charter.reply import Reply
    from charter.store.records import GatewayRecords

MAX_LOOKUPS = 200
"""A memory ends before a user message; at most this many of the latest are tried."""


def memory_key(charter_id: str, digest: str) -> str:
    """The store's key of a memory: the charter and the digest of the messages it stands for."""
    return hashlib.sha256(f"{charter_id}\x00{digest}".encode()).hexdigest()[:40]


def lookup(
    records: GatewayRecords, charter_id: str, messages: Sequence[Message]
) -> ConversationMemory | None:
    """The kept memory of the longest start of `messages` (None: none kept)."""
    digests = prefix_digests(messages)
    ends = [i for i in range(len(messages) - 1, 0, -1) if messages[i].role == "user"]
    keys = {memory_key(charter_id, digests[end]): end for end in ends[:MAX_LOOKUPS]}
    found = records.memories(list(keys))
    if not found:
        return None
    key = max(found, key=lambda k: keys[k])
    memory = ConversationMemory.from_dict(found[key])
    end = keys[key]
    return memory if memory.covered == end and memory.digest == digests[end] else None


async def recalled(records: GatewayRecords, charter_id: str, turn: Turn) -> Turn:
    """`turn` with the memory the store keeps for its messages (in its carry).

    A store that fails costs the memory, not the turn; the `gateway` record says so.
    """
    detail: dict[str, Any] = {}
    try:
        memory = await asyncio.to_thread(lookup, records, charter_id, turn.messages)
    except StoreError as exc:
        memory = None
        detail["error"] = str(exc)
    detail["recalled"] = memory.covered if memory is not None else 0
    turn.detail["memory"] = detail
    return replace(turn, memory=memory)


async def kept(records: GatewayRecords, charter_id: str, turn: Turn, reply: Reply) -> None:
    """Keep the memory the turn made, for the conversation's next request."""
    memory = reply.carry.memory
    if memory is None or memory.empty or memory == turn.memory:
        return
    try:
        await asyncio.to_thread(
            records.save_memory,
            memory_key(charter_id, memory.digest),
            charter_id,
            memory.to_dict(),
        )
    except StoreError as exc:
        turn.detail.setdefault("memory", {})["error"] = str(exc)
        return
    turn.detail.setdefault("memory", {})["kept"] = memory.covered

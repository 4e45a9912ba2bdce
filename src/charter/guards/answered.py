"""Turns this deployment already answered, so that a history sent back is not judged again.

Every OpenAI client sends the whole conversation with each request. Checking every earlier
user message as if it were new multiplies false positives: one flagged turn blocks every turn
after it. A turn whose exchange (user message, then the reply Charter gave) is recorded here
was judged when it was new; the conversation guard skips it. A forged history (an exchange
Charter never produced) is not recorded and is still checked. An exchange Charter refused is
also recorded, and the input guard stage leaves it out of what the model sees.

The record is a SHA-256 digest of the charter id, the normalised user text and the normalised
reply (no conversation text is kept), in a bounded in-process LRU. Gateway replicas do not
share it: a history answered by another replica is checked again, as if forged (the safe
side).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from charter.models.base import Message

Outcome = Literal["answered", "refused"]

DEFAULT_CAPACITY = 200_000


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Vetting:
    """Indices (into the messages) of earlier user messages Charter already judged."""

    answered: frozenset[int] = frozenset()
    refused: frozenset[int] = frozenset()

    @property
    def judged(self) -> frozenset[int]:
        return self.answered | self.refused


class AnsweredTurns:
    """A charter's record of the exchanges it produced, as digests in a thread-safe LRU.

    `namespace` is the charter id; past `capacity` exchanges the least recently recorded is
    dropped.
    """

    def __init__(self, namespace: str, capacity: int = DEFAULT_CAPACITY) -> None:
        self.namespace = namespace
        self.capacity = capacity
        self._outcomes: OrderedDict[bytes, Outcome] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, user_text: str, reply: str) -> bytes:
        digest = hashlib.sha256()
        for part in (self.namespace, _norm(user_text), _norm(reply)):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
        return digest.digest()

    def record(self, user_text: str, reply: str, *, refused: bool) -> None:
        key = self._key(user_text, reply)
        with self._lock:
            self._outcomes[key] = "refused" if refused else "answered"
            self._outcomes.move_to_end(key)
            while len(self._outcomes) > self.capacity:
                self._outcomes.popitem(last=False)

    def outcome(self, user_text: str, reply: str) -> Outcome | None:
        with self._lock:
            return self._outcomes.get(self._key(user_text, reply))

    def vet(self, messages: list[Message]) -> Vetting:
        """Which earlier user messages are followed by the reply Charter gave them.

        The earlier user messages are all but the last message.
        """
        answered: set[int] = set()
        refused: set[int] = set()
        for index in range(len(messages) - 2):
            user, reply = messages[index], messages[index + 1]
            if user.role != "user" or reply.role != "assistant":
                continue
            outcome = self.outcome(user.content, reply.content)
            if outcome == "answered":
                answered.add(index)
            elif outcome == "refused":
                refused.add(index)
        return Vetting(frozenset(answered), frozenset(refused))

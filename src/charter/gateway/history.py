"""The conversation state a `Conversation` keeps, derived from the history a caller sends.

`charter chat` keeps each conversation in the store, and every turn reads two things from
it: how many of the latest turns were blocked in a row (`prior_blocked`: repeated failures
hand the user to a person) and whether the last reply drifted from the persona (`reanchor`:
restate the persona next to the new message). A gateway caller sends the whole history
with each request instead, so the gateway derives both from it:

- blocked streak: the trailing exchanges (a user message, then the assistant's reply) that
  were blocked, counted back from the newest until one was not. An exchange is blocked when
  this charter recorded it as refused (`Charter.answered`, in-process), or else when the
  reply is, word for word, one this charter gives only for a blocked turn (the persona's
  refusal or its apology: a history from another replica or from before a restart);
- re-anchor: the drift decision this gateway recorded for the latest exchange (`TurnMemory`,
  in-process, keyed by a digest of the exchange, as `Conversation` reads it from the last
  turn's trace); for an exchange it does not know, the persona's programmatic checks are
  run on that reply and it re-anchors when the score is below `drift.threshold`. A blocked
  exchange carries the decision of the one before it, as in `Conversation`.
Without drift monitoring (`drift.enabled` and `critique.enabled`) there is no re-anchoring.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from charter.persona.checks import failed
from charter.persona.identity import held_checks
from charter.turn import Carry

if TYPE_CHECKING:
    from charter.assistant import Charter
    from charter.models.base import Message

MAX_STREAK = 20
"""At most this many exchanges are looked at (as `Store.consecutive_blocked`)."""
DEFAULT_CAPACITY = 100_000


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class TurnMemory:
    """The drift decision of each exchange this gateway answered, in a bounded LRU.

    Keyed by a digest of (charter id, user message, reply). Replicas do not share it: an exchange
    another replica answered is scored from its text instead.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._reanchor: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(charter_id: str, user_text: str, reply: str) -> bytes:
        digest = hashlib.sha256()
        for part in (charter_id, _norm(user_text), _norm(reply)):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
        return digest.digest()

    def record(self, charter_id: str, user_text: str, reply: str, *, reanchor_next: bool) -> None:
        key = self._key(charter_id, user_text, reply)
        with self._lock:
            self._reanchor[key] = reanchor_next
            self._reanchor.move_to_end(key)
            while len(self._reanchor) > self.capacity:
                self._reanchor.popitem(last=False)

    def reanchor_next(self, charter_id: str, user_text: str, reply: str) -> bool | None:
        with self._lock:
            return self._reanchor.get(self._key(charter_id, user_text, reply))


ReanchorSource = Literal["memory", "score", "none"]


@dataclass(frozen=True)
class ConversationState:
    """The blocked streak and re-anchor decision derived from a caller's history."""

    prior_blocked: int
    reanchor: bool
    reanchor_from: ReanchorSource
    """Where the re-anchor decision came from: this gateway's record of the exchange, the
    persona checks run on the reply, or nothing (no earlier reply, or no drift monitor)."""

    @property
    def carry(self) -> Carry:
        """What the previous turn would have handed over in a stored `Conversation`."""
        return Carry(blocked_streak=self.prior_blocked, reanchor=self.reanchor)

    def to_dict(self) -> dict[str, object]:
        return {
            "prior_blocked": self.prior_blocked,
            "reanchor": self.reanchor,
            "reanchor_from": self.reanchor_from,
        }


def exchanges(messages: list[Message]) -> list[tuple[str, str]]:
    """The (user, reply) exchanges just before the newest message, newest first.

    They go back as far as they run unbroken (at most `MAX_STREAK`).
    """
    found: list[tuple[str, str]] = []
    index = len(messages) - 2
    while index >= 1 and len(found) < MAX_STREAK:
        reply, user = messages[index], messages[index - 1]
        if reply.role != "assistant" or user.role != "user":
            break
        found.append((user.content, reply.content))
        index -= 2
    return found


def was_blocked(charter: Charter, user_text: str, reply: str) -> bool:
    """Whether this charter blocked the exchange of `user_text` and `reply`.

    As `Charter.answered` recorded it, or else whether the reply is, word for word, the persona's
    refusal or its apology (a history from another replica or from before a restart).
    """
    outcome = charter.answered.outcome(user_text, reply)
    if outcome is not None:
        return outcome == "refused"
    persona = charter.spec.persona
    return _norm(reply) in {_norm(persona.refusal_reply()), _norm(persona.fallback_reply())}


def derive(charter: Charter, messages: list[Message], memory: TurnMemory) -> ConversationState:
    """`prior_blocked` and `reanchor` for the turn that answers `messages`.

    `messages` is the caller's history, ending with the new message; both are computed as
    `Conversation` would compute them.
    """
    history = exchanges(messages)
    blocked = [was_blocked(charter, user, reply) for user, reply in history]
    streak = next((i for i, b in enumerate(blocked) if not b), len(blocked))
    spec = charter.spec
    if not (spec.drift.enabled and spec.critique.enabled):
        return ConversationState(streak, False, "none")
    for (user, reply), refused in zip(history, blocked, strict=True):
        known = memory.reanchor_next(spec.id, user, reply)
        if known is not None:
            return ConversationState(streak, known, "memory")
        if refused:
            continue  # a blocked turn carries the decision of the one before it
        checks = held_checks(spec)
        score = 1.0 if not checks else 1 - len(failed(checks, reply)) / len(checks)
        return ConversationState(streak, score < spec.drift.threshold, "score")
    return ConversationState(streak, False, "none")

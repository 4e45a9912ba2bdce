"""Examples from the conversation store: its turns, their stored traces, resolved escalations.

The stored trace is the audit record of a turn, and the only place that keeps what critique
rewrote: its `critique` record holds the draft (`draft`), the rules the draft broke
(`draft_violations`) and those left after revision (`final_violations`). This module reads
saved traces as records; no turn's behaviour depends on it.

- A turn that was answered, raised no escalation and kept every rule gives its reply as
  `chosen` (kind `turn`).
- A turn whose draft critique changed gives the draft as `rejected` (kind `critique`), with
  the reply as `chosen` when the turn was answered and no rule was left broken.
- With `resolutions`, a resolved escalation gives the note its resolver wrote as `chosen`,
  against the reply the user got (`rejected`), for the transcript at the time (kind
  `escalation`). Off by default: a note often says what a person did ("called the customer
  back"), which is no reply to learn from; a team whose notes are the reply the user should
  have had turns it on. A note of fewer than three words ("resolved", the default) is never
  taken.

Blocked turns give nothing on their own: the reply a guard blocked is not stored, only the
refusal that replaced it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from charter.models.base import Message
from charter.store.sqlite import Store
from charter.training.examples import Example, rule_id

MIN_RESOLUTION_WORDS = 3


@dataclass(frozen=True)
class _Turn:
    id: int
    conversation: str
    charter_id: str
    user: str
    reply: str
    blocked: bool
    trace: list[dict[str, Any]]
    created_at: float


def _record(trace: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    """The detail of the stored trace's latest `stage` record ({} when it has none)."""
    found: dict[str, Any] = {}
    for entry in trace:
        if entry.get("stage") == stage:
            found = dict(entry.get("detail") or {})
    return found


def _turns(store: Store, charter_ids: Sequence[str] | None) -> list[_Turn]:
    query = (
        "SELECT t.id, t.conversation_id, c.charter_id, u.content, r.content, t.blocked, "
        "t.trace, t.created_at FROM turns t "
        "JOIN conversations c ON c.id = t.conversation_id "
        "JOIN messages u ON u.id = t.user_message_id "
        "JOIN messages r ON r.id = t.reply_message_id"
    )
    args: list[str] = []
    if charter_ids is not None:
        query += f" WHERE c.charter_id IN ({', '.join('?' for _ in charter_ids)})"
        args += charter_ids
    rows = store._query(query + " ORDER BY t.conversation_id, t.id", args)
    return [
        _Turn(r[0], r[1], r[2], r[3], r[4], bool(r[5]), json.loads(r[6]), float(r[7])) for r in rows
    ]


def _turn_example(
    turn: _Turn, prompt: tuple[Message, ...], fingerprint: str | None
) -> Example | None:
    critique = _record(turn.trace, "critique")
    escalated = bool(_record(turn.trace, "escalate").get("escalated"))
    kept_rules = not critique.get("final_violations")
    chosen = turn.reply if not (turn.blocked or escalated) and kept_rules else None
    draft = critique.get("draft")
    rejected = draft if isinstance(draft, str) and draft.strip() else None
    if chosen is None and rejected is None:
        return None
    violations = (critique.get("draft_violations") or []) if rejected else []
    return Example(
        prompt=prompt,
        chosen=chosen if chosen and chosen.strip() else None,
        rejected=rejected,
        source=f"store:turn/{turn.id}",
        kind="critique" if rejected else "turn",
        conversation=turn.conversation,
        charter_id=turn.charter_id,
        fingerprint=fingerprint,
        principles=tuple(dict.fromkeys(rule_id(str(v)) for v in violations)),
        created_at=turn.created_at,
    )


def store_examples(
    store: Store,
    *,
    fingerprints: dict[str, str],
    charter_ids: Sequence[str] | None = None,
    resolutions: bool = False,
) -> Iterator[Example]:
    """The examples of `store`'s turns and, with `resolutions`, its resolved escalations.

    Only conversations of `charter_ids` are read (None: all). `fingerprints` gives the
    fingerprint of each charter id known (the store does not keep which version of a charter
    answered); other charters' examples have none.
    """
    replies: dict[str, _Turn] = {}
    history: dict[str, list[Message]] = {}
    for turn in _turns(store, charter_ids):
        seen = history.setdefault(turn.conversation, [])
        prompt = (*seen, Message(role="user", content=turn.user))
        reference = _record(turn.trace, "escalate").get("reference")
        if isinstance(reference, str):
            replies[reference] = turn
        example = _turn_example(turn, prompt, fingerprints.get(turn.charter_id))
        if example is not None:
            yield example
        if not turn.blocked:  # a blocked turn is kept out of what the model sees next
            seen += [prompt[-1], Message(role="assistant", content=turn.reply)]
    for escalation in store.escalations("resolved") if resolutions else []:
        if charter_ids is not None and escalation.charter_id not in charter_ids:
            continue
        note = (escalation.resolution or "").strip()
        if len(note.split()) < MIN_RESOLUTION_WORDS or not escalation.transcript:
            continue
        answered = replies.get(escalation.id)
        yield Example(
            prompt=tuple(Message.model_validate(m) for m in escalation.transcript),
            chosen=note,
            rejected=answered.reply if answered is not None else None,
            source=f"store:escalation/{escalation.id}",
            kind="escalation",
            conversation=escalation.conversation_id or f"escalation:{escalation.id}",
            charter_id=escalation.charter_id,
            fingerprint=fingerprints.get(escalation.charter_id),
            created_at=escalation.resolved_at or escalation.created_at,
        )

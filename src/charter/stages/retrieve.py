"""Retrieve stage: the passages of the charter's knowledge that fit this turn.

Each passage has a number the reply cites ([1], [2]).

Runs inside the guards (a blocked message retrieves nothing) and before critique and
generation. The passages go after the persona and this turn's instructions, so the cached
persona prefix is unchanged. The trace lists each passage (where it came from, its score)
and which ones the reply cited.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from charter.turn import Citation

if TYPE_CHECKING:
    from charter.knowledge.index import KnowledgeIndex
    from charter.pipeline import CallNext, TurnState

HEADER = (
    "\n\nKnowledge for this reply, from {org}'s own documents. Answer from it; cite the "
    "number in brackets, like [1], after what you take from it. If it does not answer the "
    "question, say you don't know rather than guess.\n"
)


class RetrieveStage:
    """The retrieve stage: up to `top_k` passages scoring at least `min_score`, numbered for citing.

    After the turn, the passages the reply cites become `outcome.citations` (none for a blocked
    turn).
    """

    name = "retrieve"

    def __init__(self, index: KnowledgeIndex, *, top_k: int, min_score: float) -> None:
        self.index = index
        self.top_k = top_k
        self.min_score = min_score

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        record = state.trace[self.name]
        query = state.messages[-1].content
        hits = await asyncio.to_thread(self.index.search, query, self.top_k, self.min_score)
        record.detail["passages"] = [
            {"n": i, "where": h.passage.where, "score": round(h.score, 3)}
            for i, h in enumerate(hits, 1)
        ]
        if hits:
            org = state.charter.persona.organisation or "the team"
            lines = [f"[{i}] ({h.passage.where}) {h.passage.text}" for i, h in enumerate(hits, 1)]
            state.system_prompt += HEADER.format(org=org) + "\n".join(lines)
            state.knowledge = [h.passage for h in hits]
        else:
            record.reason = "no passage above the minimum score"
        state = await call_next(state)
        reply = state.outcome.reply
        if reply and hits:
            found = {int(n) for n in re.findall(r"\[(\d{1,2})\]", reply)}
            cited = sorted(n for n in found if 1 <= n <= len(hits))
            record.detail["cited"] = cited
            if state.outcome.blocked:
                return state  # the user sees a refusal: nothing of the passages
            state.outcome.citations = [
                Citation(n=n, where=hits[n - 1].passage.where, text=hits[n - 1].passage.text)
                for n in cited
            ]
        return state

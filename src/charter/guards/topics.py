"""Policy topics from the charter: the bank never gives investment advice.

Each policy's topic and example questions are embedded once. When the user's message is
close to a policy (cosine similarity >= `SIMILARITY`) the reply is replaced with the policy's
answer, whatever the model said: a small model told "never give investment advice" gives it
anyway (20 of 20 such questions, measured before this guard existed).
"""

from __future__ import annotations

import numpy as np

from charter.guards.base import GuardVerdict, Subject, allow
from charter.guards.embedder import Embedder
from charter.models.base import latest_user
from charter.spec.models import CharterSpec

SIMILARITY = 0.55


class PolicyGuard:
    """Rewrites a reply to the policy's answer when the user's message is close to a policy."""

    name = "policy"
    cost = 9

    def __init__(self, charter: CharterSpec, embedder: Embedder) -> None:
        self.embedder = embedder
        self.policies = list(charter.policies)
        self._vectors = [embedder.embed([p.topic, *p.examples]) for p in self.policies]

    def check(self, subject: Subject) -> GuardVerdict:
        if not self.policies:
            return allow(self.name, 0.0)
        question = latest_user(subject.messages)
        if not question:
            return allow(self.name, 0.0)
        query = self.embedder.embed([question])[0]
        scores = [float(np.max(vectors @ query)) for vectors in self._vectors]
        best = int(np.argmax(scores))
        policy = self.policies[best]
        if scores[best] < SIMILARITY:
            return allow(self.name, scores[best], closest=policy.id)
        if policy.answer.strip() in subject.text:
            return allow(
                self.name,
                scores[best],
                "the reply already gives the policy answer",
                policy=policy.id,
                escalate=policy.escalate,
            )
        return GuardVerdict(
            self.name,
            "rewrite",
            scores[best],
            f"the question is about policy {policy.id!r}: answered from the policy",
            rewrite=policy.answer.strip(),
            detail={"policy": policy.id, "escalate": policy.escalate},
        )

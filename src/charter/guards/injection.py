"""Jailbreak and prompt-injection detection as a cascade: rules, classifier, judge.

1. Rules (~0.1 ms): a strong match (weight >= 0.9) blocks at once.
2. A stand-alone request inside pasted content that is off topic for it (offtopic.py;
   only runs when the message has such a request, ~15 ms).
3. Classifier on MiniLM embeddings (~3-45 ms): blocks at or above its calibrated threshold.
4. LLM judge: only for scores in the classifier's uncertain band, only if enabled.
Every view of the message (normalised, decoded) is checked; the highest score counts.
"""

from __future__ import annotations

from typing import Any

from charter.guards.base import GuardVerdict, Subject, allow, block
from charter.guards.classifier import InjectionClassifier
from charter.guards.judge import LLMJudge
from charter.guards.offtopic import offtopic_request
from charter.guards.rules import match_rules

STRONG_RULE = 0.9


class InjectionGuard:
    """Blocks jailbreaks and prompt injections through the cascade above; `judge` is optional."""

    name = "injection"
    cost = 10

    def __init__(self, classifier: InjectionClassifier, judge: LLMJudge | None = None) -> None:
        self.classifier = classifier
        self.judge = judge

    def check(self, subject: Subject) -> GuardVerdict:
        texts = subject.all_views
        matches = [m for text in texts for m in match_rules(text)]
        strongest = max(matches, key=lambda m: m.weight, default=None)
        if strongest is not None and strongest.weight >= STRONG_RULE:
            return block(
                self.name,
                strongest.weight,
                f"rule {strongest.rule}: {strongest.excerpt!r}",
                layer="rules",
                rules=[m.rule for m in matches],
            )
        weights = self.classifier.weights
        for text in texts:
            offtopic = offtopic_request(text, self.classifier.embedder)
            if offtopic is not None:
                return block(
                    self.name,
                    weights.threshold,
                    f"a request unrelated to the pasted content: {offtopic.request[:80]!r}",
                    layer="offtopic",
                    similarity=round(offtopic.similarity, 3),
                    rules=[m.rule for m in matches],
                )
        learned = self.classifier.highest(list(texts), stop_at=weights.threshold)
        score = max(learned, strongest.weight if strongest else 0.0)
        detail: dict[str, Any] = {
            "layer": "classifier",
            "classifier_score": round(learned, 4),
            "threshold": round(weights.threshold, 4),
        }
        if matches:
            detail["rules"] = [m.rule for m in matches]
        if score >= weights.threshold:
            return block(self.name, score, "classifier score above threshold", **detail)
        if self.judge is not None and score >= weights.uncertain_below:
            verdict = self.judge.judge("\n\n".join(texts))
            detail["layer"] = "judge"
            detail["judge_reason"] = verdict.reason
            if verdict.attack:
                return block(self.name, score, f"judge: {verdict.reason}", **detail)
        if score >= weights.uncertain_below and self.judge is None:
            # Nobody settled it: the escalate stage may hand it to a person (opt-in).
            detail["uncertain"] = True
        return allow(self.name, score, "", **detail)

"""Checks over the whole conversation, not only the latest message.

- Many-shot jailbreaks: dozens of fake dialogue turns ("User: … Assistant: …") inside one
  message, priming the model to continue the pattern.
- Identity overrides earlier in the history ("you are DAN now"): a client can send a forged
  history, so every earlier user message that this deployment did not itself answer or
  refuse is checked (`Subject.vetted`; guards/answered.py), not only the last one.
- Split and escalating attacks: the last few user messages are also scored as one text, so a
  payload cut into pieces across turns is seen whole.
"""

from __future__ import annotations

from charter.guards.base import GuardVerdict, Subject, allow, block
from charter.guards.classifier import InjectionClassifier
from charter.guards.normalize import clean
from charter.guards.rules import dialogue_turns, match_rules

MANY_SHOT_TURNS = 10
RECENT_TURNS = 3


class ConversationGuard:
    """Blocks many-shot messages, attacks in unvetted earlier messages, and split payloads."""

    name = "conversation"
    cost = 12

    def __init__(self, classifier: InjectionClassifier) -> None:
        self.classifier = classifier

    def check(self, subject: Subject) -> GuardVerdict:
        turns = dialogue_turns(subject.text)
        if turns >= MANY_SHOT_TURNS:
            return block(
                self.name,
                min(1.0, turns / (2 * MANY_SHOT_TURNS)),
                f"many-shot pattern: {turns} fake dialogue turns in one message",
                check="many_shot",
                turns=turns,
            )
        earlier = [clean(m.content) for m in subject.messages[:-1] if m.role == "user"]
        unvetted = [
            (number, clean(m.content))
            for number, (index, m) in enumerate(
                ((i, m) for i, m in enumerate(subject.messages[:-1]) if m.role == "user"), 1
            )
            if index not in subject.vetted
        ]
        for number, text in unvetted:
            strong = [m for m in match_rules(text) if m.weight >= 0.9]
            if strong:
                return block(
                    self.name,
                    strong[0].weight,
                    f"earlier message {number} holds {strong[0].rule}: {strong[0].excerpt!r}",
                    check="history_rules",
                )
        threshold = self.classifier.weights.threshold
        if unvetted:
            scores = [self.classifier.highest([text], stop_at=threshold) for _, text in unvetted]
            worst = max(range(len(scores)), key=scores.__getitem__)
            if scores[worst] >= threshold:
                return block(
                    self.name,
                    scores[worst],
                    f"earlier message {unvetted[worst][0]} scores as an attack",
                    check="history_classifier",
                )
        recent = [*earlier[-(RECENT_TURNS - 1) :], clean(subject.text)] if earlier else []
        if len(recent) >= 2:
            joined = self.classifier.highest(["\n".join(recent)], stop_at=threshold)
            if joined >= threshold:
                return block(
                    self.name,
                    joined,
                    f"the last {len(recent)} user messages read together as an attack",
                    check="split_payload",
                )
            return allow(
                self.name, joined, check="split_payload", turns=turns, vetted=len(subject.vetted)
            )
        return allow(self.name, 0.0, turns=turns, vetted=len(subject.vetted))

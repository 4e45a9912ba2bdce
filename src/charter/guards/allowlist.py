"""A charter's allow-list: phrases and patterns its users legitimately send.

A security product's users write "ignore previous results"; a game's users paste "you are
now the dungeon master". The input guards read a message with those spans blanked out, so
the rest of the message is still checked, and the trace lists every rule that applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from charter.spec.models import AllowRule


@dataclass(frozen=True)
class AllowHit:
    """An allow-list rule that applied to a message, as the trace shows it."""

    rule: str
    """The phrase or regex as the charter gives it."""
    text: str
    """What it matched (first 80 characters)."""
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        data = {"rule": self.rule, "text": self.text}
        if self.reason:
            data["reason"] = self.reason
        return data


class AllowList:
    """A charter's allow rules (phrases and regexes, case-insensitive), to blank out of a text."""

    def __init__(self, rules: list[AllowRule]) -> None:
        self._rules = [
            (
                rule.phrase or rule.regex or "",
                re.compile(
                    re.escape(rule.phrase) if rule.phrase is not None else rule.regex or "",
                    re.IGNORECASE,
                ),
                rule.reason,
            )
            for rule in rules
        ]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def blank(self, text: str) -> tuple[str, list[AllowHit]]:
        """`text` with every allowed span replaced by a space, and what was replaced."""
        hits: list[AllowHit] = []
        for shown, pattern, reason in self._rules:
            found = [m.group(0) for m in pattern.finditer(text) if m.group(0)]
            if not found:
                continue
            hits.extend(AllowHit(shown, match[:80], reason) for match in dict.fromkeys(found))
            text = pattern.sub(" ", text)
        return text, hits

"""Find the pipeline's own scaffolding in a reply, and take it out.

The pipeline talks to the model in words the user must never see: the critique's revision
request ("Rewrite your last reply so that it follows these rules"), the persona reminder of
a re-anchored turn, check ids such as `style.max_words`, and the prompt's canary. Small
models echo them. The echo shows up in three ways:

- **Verbatim markers**, in any turn: the canary, a check id of the charter, the reminder's
  opening, the revision request's opening. A line that holds one is dropped.
- **A frame around a revision**, only in a turn the critique revised: an opening paragraph
  that announces the text in the revision request's own words (a rewritten "message", a
  revised version of "your last reply": "Sure, here's the rewritten message:"), a closing
  paragraph that says how the text keeps the rules ("This message follows the rules by not
  using exclamation marks"), and the separators and quotes around the body. "Here's a
  revised version of the paragraph" is how an assistant answers a request for changes, and
  is left alone; so is "this code follows the rules of PEP 8". The frame is dropped only
  when the user did not ask for a rewrite themselves (then "here's the rewritten message" is
  the answer, not an echo). On 10,344 held-out ChatGPT replies (3,000 ShareGPT
  conversations with fewer than 20 user turns, none the guards learn from), taking every
  turn as revised, nothing is removed (`bench/persona/spin_rate.py`).

What is left is the reply. `strip` says what it removed, for the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REVISION_OPENING = "(Note from your supervisor"
REMINDER_OPENING = "(Reminder: "

_ABOUT_TEXT = r"(?:message|reply|response|version|text|answer|draft)"
_ANNOUNCES = re.compile(
    r"^\W*(?:(?:sure|certainly|of course|okay|ok|absolutely)\b[^\n]{0,20}?)?"
    r"(?:here(?:'s| is| are)|below is|i(?:'ve| have) (?:rewritten|revised|updated))[^\n]{0,60}?"
    r"\b(?:rewritten|revised|updated|corrected)\b[^\n]{0,40}?"
    r"\b(?:message|(?:version|text) of (?:your|my|the) (?:last |previous )?"
    r"(?:reply|message|response))\b"
    r"[^\n]{0,80}$",
    re.IGNORECASE,
)
_COMMENTS = re.compile(
    r"^\W*(?:this|the above|the (?:revised|rewritten|updated|new)|my (?:revised |rewritten )?)"
    r"\s*(?:message|reply|response|version|text|answer|draft|revision)?\b[^\n]{0,80}?"
    r"\b(?:follows?|adheres? to|complies with|meets|keeps? to|sticks? to|respects?|breaks?)\s+"
    r"(?:all\s+)?(?:these|the|your|my)\s+(?:rules|guidelines|requirements|instructions)\b"
    r"(?!\s+(?:of|for|in|on)\b)",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$")
_ASKS_REWRITE = re.compile(
    r"\b(?:re-?write|rephrase|revise|reword|edit|improve|proofread|polish|paraphrase)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Markers:
    """What this turn's scaffolding looks like: the charter's check ids and its canary."""

    check_ids: frozenset[str] = frozenset()
    canary: str = ""

    def holds(self, line: str) -> str | None:
        """The marker `line` carries, if any."""
        if self.canary and self.canary in line:
            return "canary"
        if REVISION_OPENING.lower() in line.lower():
            return "revision request"
        if REMINDER_OPENING in line:
            return "persona reminder"
        for check_id in self.check_ids:
            if check_id in line:
                return f"check id {check_id}"
        return None


@dataclass
class Stripped:
    """The reply with its scaffolding taken out, and what was taken."""

    text: str
    removed: list[str] = field(default_factory=list)


def strip(text: str, markers: Markers, *, revised: bool, request: str) -> Stripped:
    """Take the scaffolding out of `text`.

    `revised`: the critique rewrote the draft this turn (only then is a frame around the
    text an echo). `request`: the user's message (a user who asked for a rewrite gets
    "here's the rewritten message" as an answer).
    """
    removed: list[str] = []
    kept_lines: list[str] = []
    for line in text.splitlines():
        why = markers.holds(line)
        if why is not None:
            removed.append(f"{why}: {line.strip()[:80]}")
            continue
        kept_lines.append(line)
    paragraphs = _paragraphs("\n".join(kept_lines))
    if revised and not _ASKS_REWRITE.search(request):
        paragraphs = _unframed(paragraphs, removed)
    return Stripped("\n\n".join(paragraphs).strip(), removed)


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def _unframed(paragraphs: list[str], removed: list[str]) -> list[str]:
    body = list(paragraphs)
    if body and _ANNOUNCES.match(body[0].strip()) and len(body) > 1:
        removed.append(f"revision frame: {body.pop(0).strip()[:80]}")
    if len(body) > 1 and _COMMENTS.match(body[-1].strip()):
        removed.append(f"revision comment: {body.pop().strip()[:80]}")
    while body and _SEPARATOR.match(body[0]):
        body.pop(0)
    while body and _SEPARATOR.match(body[-1]):
        body.pop()
    if len(body) == 1:
        single = body[0].strip()
        if (len(single) > 2 and single[0] == single[-1] and single[0] in "\"“'") or (
            single.startswith("“") and single.endswith("”")
        ):
            body = [single[1:-1].strip()]
    return body

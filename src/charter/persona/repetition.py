"""Spinning: a reply that repeats an earlier reply of the conversation, or itself.

- **Across turns**: the reply and an earlier assistant reply share nearly all their word
  trigrams (Jaccard similarity of the two sets at or above `SAME_REPLY`), for replies of at
  least `MIN_WORDS` words (a short "Thank you!" may well be said twice), unless the user
  asked the same thing again. On 10,344 ChatGPT replies of 3,000 held-out ShareGPT
  conversations (fewer than 20 user turns, none the guards learn from), 18 meet this
  (0.17%), mostly an answer re-sent after "your response is incomplete" or a small edit, and
  6 (0.06%) repeat themselves ("justify your answer." closing each question of a quiz):
  `bench/persona/spin_rate.py`.
- **Within the reply**: one line or sentence of two words or more makes up at least
  `SELF_SHARE` of such lines (at least three times), or one hashtag or mention makes up
  at least `SELF_SHARE` of its words. A list's numbers and bullets are not part of the line
  ("1. Team Rocket", "2. Team Rocket" are the same line). Code blocks and table rows are
  left out: their lines repeat by design. Words start with a letter (or # or @).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

MIN_WORDS = 12
SAME_REPLY = 0.95
SELF_SHARE = 0.4
_WORD = re.compile(r"[#@]?[^\W\d_][\w']*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_CODE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_LIST_MARK = re.compile(r"^(?:\d+[.)]|[-*•+]|\(?[a-z]\))\s+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def trigrams(text: str) -> set[tuple[str, ...]]:
    """The reply's word trigrams (lower case)."""
    words = _words(text)
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' word trigrams (0 when either is too short)."""
    left, right = trigrams(a), trigrams(b)
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def repeats_earlier(
    reply: str, earlier: Sequence[str], *, request: str = "", asked: Sequence[str] = ()
) -> int | None:
    """The index in `earlier` of a reply that `reply` repeats, newest first; None if none.

    `asked[i]` is the user message `earlier[i]` answered: a user who asks the same again
    (`request` like it) may get the same answer.
    """
    if len(_words(reply)) < MIN_WORDS:
        return None
    for index in range(len(earlier) - 1, -1, -1):
        if similarity(reply, earlier[index]) < SAME_REPLY:
            continue
        if index < len(asked) and _same_request(request, asked[index]):
            continue
        return index
    return None


def _same_request(a: str, b: str) -> bool:
    left, right = set(_words(a)), set(_words(b))
    return bool(left and right) and len(left & right) / len(left | right) >= SAME_REPLY


def repeats_itself(reply: str) -> str | None:
    """What `reply` keeps repeating (a line, a sentence or a word), if it spins."""
    prose = _CODE.sub("", reply)
    parts = [
        _LIST_MARK.sub("", p.strip()).lower()
        for p in _SENTENCE.split(prose)
        if len(_words(p)) >= 2 and "|" not in p  # a table's rows share their cells
    ]
    if len(parts) >= 3:
        part, count = Counter(parts).most_common(1)[0]
        if count >= 3 and count / len(parts) >= SELF_SHARE:
            return part[:60]
    words = _words(prose)
    tags = [w for w in words if w[0] in "#@"]
    if len(words) >= MIN_WORDS and tags:
        tag, count = Counter(tags).most_common(1)[0]
        if count >= 3 and count / len(words) >= SELF_SHARE:
            return tag
    return None

"""Marks of tone that code checks and repairs: exclamation marks and emoji in its own words.

A tone such as "formal, with no exclamation marks and no emoji" is mostly left to the persona
judge, but these two parts need no judge: `persona.style.no_exclamation_marks` and
`no_emoji` (or the same keys in a principle's `check`) hold them in code, the way a word limit
is held. Measured on a formal charter's replies in real conversations, every break of its tone
labelled by hand was an exclamation mark in the persona's own voice, and a classifier over
sentence embeddings, trained on the contrast a 1.5B wrote, found none of them
(docs/design/014-persona-judge.md).

Code and quoted text are not the persona's voice and are left as they are: an exclamation mark
inside `print("Hi!")` or in a title the user gave in quotes is not the persona's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NOT_OWN = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|\"[^\"\n]{0,200}\"|“[^”\n]{0,200}”", re.DOTALL)
EMOJI = re.compile(
    "(?:[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff]\ufe0f?|\u200d)+"
    "|(?<![\\w:/])[:;]-?[()DPp](?![\\w/])"
)
_SPACED_EMOJI = re.compile(rf"[ \t]*(?:{EMOJI.pattern})")
_EXCLAIMED = re.compile(r"\?*![?!]*")


def own_words(text: str) -> str:
    """`text` without its code and quoted passages: what the persona wrote in its own voice."""
    return _NOT_OWN.sub(" ", text)


def in_own_words(text: str, change: Callable[[str], str]) -> str:
    """`text` with `change` applied to the persona's own words; code and quotes as they were."""
    out: list[str] = []
    at = 0
    for match in _NOT_OWN.finditer(text):
        out += [change(text[at : match.start()]), match.group()]
        at = match.end()
    out.append(change(text[at:]))
    return "".join(out)


def exclaims(text: str) -> bool:
    """Whether the persona's own words hold an exclamation mark."""
    own = own_words(text)
    return "!" in own or "¡" in own


def calm(text: str) -> str:
    """`text` with each exclamation mark of its own words made a full stop ("?!": "?")."""

    def settle(part: str) -> str:
        part = part.replace("¡", "")  # an opening mark goes; a closing one ends the sentence
        return _EXCLAIMED.sub(lambda m: "?" if "?" in m.group() else ".", part)

    return in_own_words(text, settle)


def has_emoji(text: str) -> bool:
    """Whether the persona's own words hold an emoji or an emoticon such as ":)"."""
    return EMOJI.search(own_words(text)) is not None


def without_emoji(text: str) -> str:
    """`text` with the emoji and emoticons of the persona's own words taken out."""
    return in_own_words(text, lambda part: _SPACED_EMOJI.sub("", part)).strip()

"""Words shared between texts, as the tool layer compares them.

A request and a tool, or a request and a tool call's values, name the same thing in
slightly different forms: "tolls" and "toll", "carbs" and "carbohydrates", "avoid" and
"avoiding". Two words match when one starts with the other (a trailing "s" aside), four
letters at least. Only words of four letters or more count, less the commonest ones.
"""

from __future__ import annotations

import re

_STOPWORDS = frozenset(
    "that this with from into about what which when where there their they them then than "
    "have been were will would could should your also just only very some more most such "
    "each other please want need given specified specific based using provided".split()
)


def content_words(text: str) -> set[str]:
    """The words of `text` of four letters or more, lower-cased, less common ones."""
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOPWORDS}


def non_latin(text: str) -> bool:
    """Most of the letters of `text` are outside the Latin alphabet."""
    letters = re.findall(r"[^\W\d_]", text)
    return bool(letters) and sum(c.isascii() for c in letters) * 2 < len(letters)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


class Vocabulary:
    """The words of a text, to tell whether another text's words are among them."""

    def __init__(self, text: str) -> None:
        # a literal backslash-n (pasted, or escaped JSON) is a line break, not the letter n
        found = re.findall(r"[a-z]+", re.sub(r"\\[nrt]", " ", text.lower()))
        self.words = {_stem(w) for w in found}
        self.prefixes = {w[:n] for w in self.words for n in range(4, len(w) + 1)}

    def __contains__(self, word: str) -> bool:
        """`word` is one of the words, or one starts the other, four letters at least."""
        word = _stem(word)
        return word in self.prefixes or any(word[:n] in self.words for n in range(4, len(word)))

    def shared(self, words: set[str]) -> int:
        """How many of `words` are here."""
        return sum(1 for w in words if w in self)

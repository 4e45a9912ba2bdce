"""Normalisation before any check, so that an attack cannot hide behind its spelling.

`views(text)` returns the text as the checks should see it: NFKC-folded, homoglyphs mapped
to Latin, zero-width and bidi controls removed; plus, when there is evidence of encoding,
decoded variants (base64, hex, rot13, leetspeak, reversed text), each normalised again.
Every guard checks every view, and a decoded view is re-scanned for further encodings (up to
a small depth). Decoding is triggered by evidence (a base64-looking run, a rot13 mention, a
text that reads better reversed), so ordinary messages cost one view.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

# Zero-width characters, bidi embeddings/overrides/isolates, soft hyphen, BOM.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

# Letters from other scripts that look like Latin ones (the common confusables; NFKC
# already folds full-width and mathematical alphanumerics).
_CONFUSABLES = str.maketrans(
    {
        **dict(zip("аеорсухіјѕԁӏАВЕКМНОРСТХІЈЅ", "aeopcyxijsdlABEKMHOPCTXIJS", strict=True)),
        **dict(zip("αεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ", "aeiknoptuxABEHIKMNOPTYXZ", strict=True)),
        "ɡ": "g",
        "ı": "i",
        "ℓ": "l",
    }
)

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX_RUN = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}\b")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457@$])[a-z013457@$]{3,}\b", re.IGNORECASE)

_COMMON = frozenset(
    (
        "the be to of and a in that have i it for not on with he as you do at this but his "
        "by from they we say her she or an will my one all would there their what so up out "
        "if about who get which go me when make can like time no just him know take people "
        "into year your good some could them see other than then now look only come its over "
        "think also back after use two how our work first well way even new want because any "
        "these give day most us is are was were been has had did said tell ignore instructions "
        "previous prompt system rules please reveal password secret print repeat above "
    ).split()
)

MAX_DEPTH = 2
# How much more English the de-leeted text must read. Only words that mix letters and
# digits are de-leeted (a bare "1" or "4" in JSON stays a number); identifiers such as
# "side1" in code and JSON still raise the ratio by up to 0.022 on the guard corpus' train
# and validation rows, real leetspeak by 0.06 and more. A spurious view costs a second
# embedding of the whole text.
LEET_GAIN = 0.03


def clean(text: str) -> str:
    """NFKC, confusables to Latin, invisible controls removed."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    return text.translate(_CONFUSABLES)


def english_ratio(text: str) -> float:
    """The share of the text's words (0..1) that are common English words; 0 for no words."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return 0.0
    return sum(w in _COMMON for w in words) / len(words)


def _printable(text: str) -> bool:
    return bool(text) and sum(c.isprintable() or c in "\n\t" for c in text) / len(text) > 0.95


def _decode_base64(text: str) -> list[str]:
    out = []
    for run in _BASE64_RUN.findall(text):
        padded = run + "=" * (-len(run) % 4)
        try:
            decoded = base64.b64decode(padded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if _printable(decoded) and re.search(r"[A-Za-z]{2,}", decoded):
            out.append(decoded)
    return out


def _decode_hex(text: str) -> list[str]:
    out = []
    for run in _HEX_RUN.findall(text):
        digits = re.sub(r"[\s:]", "", run)
        try:
            decoded = bytes.fromhex(digits).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if _printable(decoded) and re.search(r"[A-Za-z]{2,}", decoded):
            out.append(decoded)
    return out


def decodings(text: str) -> list[tuple[str, str]]:
    """(how, decoded text) for each encoding the text shows evidence of."""
    found: list[tuple[str, str]] = [("base64", d) for d in _decode_base64(text)]
    found += [("hex", d) for d in _decode_hex(text)]
    base = english_ratio(text)
    rot = codecs.decode(text, "rot13")
    if "rot13" in text.lower() or "rot-13" in text.lower() or english_ratio(rot) > base + 0.15:
        found.append(("rot13", rot))
    reversed_text = text[::-1]
    if english_ratio(reversed_text) > base + 0.15:
        found.append(("reversed", reversed_text))
    leet_words = _LEET_WORD.findall(text)
    if len(leet_words) >= 2:
        deleet = _LEET_WORD.sub(lambda m: m.group().translate(_LEET), text)
        if english_ratio(deleet) > base + LEET_GAIN:
            found.append(("leetspeak", deleet))
    return found


def views(text: str) -> tuple[list[str], list[str]]:
    """All the ways the checks should read `text`, and the decodings that produced them."""
    first = clean(text)
    seen = {first}
    result = [first]
    applied: list[str] = []
    frontier = [(first, 0)]
    while frontier:
        current, depth = frontier.pop()
        if depth >= MAX_DEPTH:
            continue
        for how, decoded in decodings(current):
            view = clean(decoded)
            if view and view not in seen:
                seen.add(view)
                result.append(view)
                applied.append(how)
                frontier.append((view, depth + 1))
    return result, applied

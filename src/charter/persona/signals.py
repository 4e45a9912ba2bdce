"""Signals computed on every turn, for dynamic instructions.

They say what the user writes about (code language, topic), how (language, sentiment), who they seem
to be (expertise), and what their stored profile says.

Small and explainable on purpose: word lists and patterns that run in microseconds and say
why they fired. Each signal records its evidence for the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from charter.models.base import Message

Sentiment = Literal["negative", "neutral", "positive"]
Expertise = Literal["beginner", "expert"]

_PYTHON = re.compile(
    r"^\s*(?:def|class|import|from\s+\w+\s+import|elif|with\s+\w.*:)\b|\bprint\(|self\.\w|"
    r"__init__|\bNone\b|\bTrue\b|\.append\(|\blen\(|\brange\(|:\s*$",
    re.MULTILINE,
)
_JAVASCRIPT = re.compile(
    r"\b(?:function\s+\w*\s*\(|const\s+\w+\s*=|let\s+\w+\s*=|var\s+\w+\s*=|console\.log|"
    r"=>|===|!==|document\.|require\(|module\.exports|async\s+function|\bundefined\b|\bnull\b)"
)
_BEGINNER = re.compile(
    r"\b(?:i'?m\s+(?:new|a\s+beginner|just\s+starting|learning)|beginner|newbie|first\s+time|"
    r"what\s+(?:is|are|does)\s+an?\b|don'?t\s+understand|confused|simple\s+terms|eli5|"
    r"explain\s+like|step\s+by\s+step|never\s+(?:used|coded|programmed))",
    re.IGNORECASE,
)
_EXPERT = re.compile(
    r"\b(?:time\s+complexity|big-?o|o\(n(?:\s*log\s*n)?\)|asynchronous|concurrency|closure|"
    r"generator|decorator|memoi[sz]|idempotent|invariant|amortized|garbage\s+collect|"
    r"event\s+loop|prototype\s+chain|type\s+inference|bytecode|gil\b|mutex|refactor|"
    r"production|benchmark|profil(?:e|ing)|latency)",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(?:angry|furious|annoyed|upset|frustrat\w*|terrible|awful|horrible|worst|useless|"
    r"ridiculous|unacceptable|disgust\w*|hate|fed\s+up|sick\s+of|scam|rip[-\s]?off|"
    r"never\s+again|complain\w*|stolen|fraud|charged\s+twice|wtf|damn)\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(?:thanks?|thank\s+you|great|awesome|perfect|love|excellent|helpful|appreciate)\b",
    re.IGNORECASE,
)
_STOPWORDS = {
    "en": "the and is are you to of in it that this what how can my for with have",
    "es": "el la los las que es de en y por para con una mi como tengo",
    "fr": "le la les est et de des que en pour une mon avec comment je vous",
    "de": "der die das und ist nicht ich sie mit für wie mein ein eine zu",
    "it": "il lo gli che è di e per una mio con come sono non della",
    "pt": "o os que é de e em para uma meu com como não do da",
}
_STOP = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}


@dataclass(frozen=True)
class Signals:
    """One turn's signals, each with its evidence for the trace.

    `turn` is the number of user messages so far; `expertise_source` says whether the expertise came
    from the wording or from the stored profile.
    """

    code_language: str | None
    expertise: Expertise | None
    sentiment: Sentiment
    language: str
    turn: int
    profile: dict[str, str] = field(default_factory=dict)
    expertise_source: Literal["wording", "profile"] | None = None
    evidence: dict[str, str] = field(default_factory=dict)


def code_language(text: str) -> tuple[str | None, str]:
    """The programming language the text's code is in ("python" or "javascript"), and why.

    None (and no reason) when there are fewer than two markers of either.
    """
    python = len(_PYTHON.findall(text))
    javascript = len(_JAVASCRIPT.findall(text))
    if max(python, javascript) < 2:
        return None, ""
    if python > javascript:
        return "python", f"{python} Python markers vs {javascript}"
    return "javascript", f"{javascript} JavaScript markers vs {python}"


def expertise(texts: list[str]) -> tuple[Expertise | None, str]:
    """Whether the texts read as a beginner's or an expert's, and why (None: neither wins)."""
    joined = "\n".join(texts)
    novice = _BEGINNER.findall(joined)
    expert = _EXPERT.findall(joined)
    if len(novice) > len(expert):
        return "beginner", f"beginner wording: {novice[:3]}"
    if len(expert) > len(novice):
        return "expert", f"expert terms: {expert[:3]}"
    return None, ""


def sentiment(text: str) -> tuple[Sentiment, str]:
    """The text's sentiment, by negative and positive words and shouting, and why."""
    negative = _NEGATIVE.findall(text)
    shouting = len(re.findall(r"\b[A-Z]{4,}\b", text)) >= 2 or "!!" in text
    positive = _POSITIVE.findall(text)
    score = len(negative) + (1 if shouting else 0) - len(positive)
    if score > 0:
        why = f"negative words {negative[:3]}" + (", shouting" if shouting else "")
        return "negative", why
    if score < 0:
        return "positive", f"positive words {positive[:3]}"
    return "neutral", ""


def language(text: str) -> tuple[str, str]:
    """The text's language (en, es, fr, de, it or pt) by its common words, and why; default "en"."""
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    if not words:
        return "en", "no words: default"
    counts = {lang: sum(w in stop for w in words) for lang, stop in _STOP.items()}
    best = max(counts, key=lambda lang: counts[lang])
    if counts[best] == 0:
        return "en", "no common words: default"
    return best, f"{counts[best]} common {best} words"


def compute(messages: list[Message], profile: dict[str, str] | None = None) -> Signals:
    """This turn's signals, from the latest user messages and the stored profile.

    Code language, sentiment and language come from the latest user message; expertise from the last
    three, or else from the profile.
    """
    user_texts = [m.content for m in messages if m.role == "user"]
    latest = user_texts[-1] if user_texts else ""
    code, code_why = code_language(latest)
    level, level_why = expertise(user_texts[-3:])
    source: Literal["wording", "profile"] | None = "wording" if level else None
    stored = (profile or {}).get("expertise")
    if level is None and stored in ("beginner", "expert"):
        level = "beginner" if stored == "beginner" else "expert"
        level_why, source = "from the stored profile", "profile"
    mood, mood_why = sentiment(latest)
    lang, lang_why = language(latest)
    evidence = {
        k: v
        for k, v in {
            "code_language": code_why,
            "expertise": level_why,
            "sentiment": mood_why,
            "language": lang_why,
        }.items()
        if v
    }
    return Signals(code, level, mood, lang, len(user_texts), dict(profile or {}), source, evidence)

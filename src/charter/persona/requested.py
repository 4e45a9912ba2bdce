"""Checks the user asks for: format and length rules stated in the message itself.

"Answer in under 50 words", "don't use any commas", "end with 'Is there anything else?'",
"wrap the whole reply in JSON", "use only lowercase letters". A user who states such a rule
expects it kept, and a small model breaks it often. This module reads the rules it can
recognise from the latest user message and turns each into a `PersonaCheck` for this turn
only; the critique stage then verifies the draft, asks for a revision, and applies the
deterministic repairs (lowercase, drop commas, cut to the word limit, add the user's closing
phrase, wrap in quotes, put the repeated request first). A rule with no repair (all
capitals, a P.S., a minimum length, ...) is asked for in the revision only: a repair never
adds words of its own.

The phrasings are matched with regular expressions written for common English wording. They
were developed on the even-keyed half of IFEval; results are reported on the odd-keyed half.
A rule the reader does not recognise is simply not checked: it never blocks a reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from charter.persona.checks import PersonaCheck, cut_to_words

_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "once": 1,
    "twice": 2,
    "thrice": 3,
}
_N = r"(\d+|" + "|".join(_NUMBERS) + r")"
_WORD = re.compile(r"[\w'’-]+")
_FLAGS = re.IGNORECASE | re.DOTALL
_LANGUAGES = {
    "english": "en",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "russian": "ru",
    "japanese": "ja",
    "korean": "ko",
    "chinese": "zh-cn",
    "arabic": "ar",
    "hindi": "hi",
    "bengali": "bn",
    "persian": "fa",
    "farsi": "fa",
    "turkish": "tr",
    "vietnamese": "vi",
    "thai": "th",
    "swahili": "sw",
    "finnish": "fi",
    "polish": "pl",
    "greek": "el",
    "hebrew": "he",
    "urdu": "ur",
    "tamil": "ta",
    "telugu": "te",
    "kannada": "kn",
    "marathi": "mr",
    "gujarati": "gu",
    "punjabi": "pa",
    "nepali": "ne",
}


def _num(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBERS[token.lower()]


def _less(phrase: str) -> bool:
    return bool(re.search(r"less|fewer|under|at most|no more|maximum|or less|below", phrase, re.I))


def count_words(text: str) -> int:
    """The number of words in `text` (runs of letters, digits, apostrophes and hyphens)."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """The number of sentences in `text`: each `.`, `!` or `?` run, plus an unfinished last one."""
    stripped = text.strip()
    ends = len(re.findall(r"[.!?]+(?=\s|$)", stripped))
    return ends + (0 if not stripped or re.search(r"[.!?][\"')\]*_]*$", stripped) else 1)


def _strip_fences(text: str) -> str:
    match = re.fullmatch(r"\s*```[a-zA-Z]*\s*\n?(.*?)\n?```\s*", text, flags=re.DOTALL)
    return match.group(1) if match else text


def _is_json(text: str) -> bool:
    try:
        json.loads(_strip_fences(text))
    except ValueError:
        return False
    return True


def _quoted(text: str) -> list[str]:
    """Phrases in quotes or a Python-style list: "a", 'b', ["c", "d"]."""
    return [a or b for a, b in re.findall(r"\"([^\"]+)\"|'([^']+)'", text)]


def _whole(word: str, text: str) -> int:
    return len(re.findall(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE))


def _check(
    check_id: str,
    description: str,
    passes: Callable[..., bool],
    repair: Callable[..., str] | None = None,
) -> PersonaCheck:
    """`passes` and `repair` take the reply; lambdas bind their parameters as defaults."""
    return PersonaCheck("asked." + check_id, "the user asked: " + description, passes, repair)


def _no_commas(message: str) -> list[PersonaCheck]:
    pattern = (
        r"(no|not? (use|include|have|contain)( any)?|without( using)?( any)?|avoid( using)?"
        r"|refrain from using( any)?|cannot contain|can't contain|don't use any|free of)"
        r" (a )?(single )?commas?"
    )
    if not re.search(pattern, message, _FLAGS):
        return []
    return [
        _check(
            "no_comma",
            "no commas",
            lambda t: "," not in t,
            lambda t: re.sub(r",(\s*)", lambda m: " " if m.group(1) else "", t),
        )
    ]


def _case(message: str) -> list[PersonaCheck]:
    lower = (
        r"(all |only |entirely |entire \w+ \w+ )?(in )?lower ?case|no capital letters"
        r"|(not|never) use (any )?capital letters"
    )
    upper = (
        r"(all |only |entirely )(in )?(capital letters|caps|upper ?case)"
        r"|in (english, )?(capital letters|all caps|upper ?case)"
        r"|(capital letters|upper ?case)( letters)? only"
    )
    if re.search(lower, message, _FLAGS) and not re.search(
        r"lower ?case (letter|word)s? (should|must) appear", message, _FLAGS
    ):
        return [_check("lowercase", "all lowercase", lambda t: t == t.lower(), str.lower)]
    if re.search(upper, message, _FLAGS) and not re.search(
        r"capital (letter|word)s? (should|must)? ?appear|capital words", message, _FLAGS
    ):
        return [_check("uppercase", "all capital letters", lambda t: t == t.upper())]
    return []


def _length(message: str) -> list[PersonaCheck]:
    out: list[PersonaCheck] = []
    words = re.search(
        r"(less than|fewer than|under|at most|no more than|not exceed|maximum of|at least"
        r"|more than|over|minimum of|a minimum of)\s+" + _N + r"\s+words"
        r"|" + _N + r"\s*(\+|or more|or less|or fewer)\s+words",
        message,
        _FLAGS,
    )
    if words:
        if words.group(1):
            relation, n = words.group(1), _num(words.group(2))
        else:
            relation, n = words.group(4), _num(words.group(3))
        if _less(relation):
            limit = n - 1 if re.search(r"less|fewer|under|below", relation, re.I) else n
            out.append(
                _check(
                    "max_words",
                    f"at most {limit} words",
                    lambda t, m=limit: count_words(t) <= m,
                    lambda t, m=limit: cut_to_words(t, m),
                )
            )
        else:
            least = n + 1 if relation.lower() in ("more than", "over") else n
            out.append(
                _check(
                    "min_words", f"at least {least} words", lambda t, m=least: count_words(t) >= m
                )
            )
    sentences = re.search(
        r"(less than|fewer than|under|at most|no more than|at least|more than)\s+"
        + _N
        + r"\s+sentences",
        message,
        _FLAGS,
    )
    if sentences:
        relation, n = sentences.group(1), _num(sentences.group(2))
        if _less(relation):
            limit = n - 1 if re.search(r"less|fewer|under", relation, re.I) else n
            out.append(
                _check(
                    "max_sentences",
                    f"at most {limit} sentences",
                    lambda t, m=limit: count_sentences(t) <= m,
                )
            )
        else:
            out.append(
                _check(
                    "min_sentences",
                    f"at least {n} sentences",
                    lambda t, m=n: count_sentences(t) >= m,
                )
            )
    return out


def _structure(message: str) -> list[PersonaCheck]:
    out: list[PersonaCheck] = []
    bullets = re.search(r"exactly " + _N + r" bullet points?", message, _FLAGS)
    if bullets:
        n = _num(bullets.group(1))
        out.append(
            _check(
                "bullets",
                f"exactly {n} markdown bullet points ('* ' at the start of a line)",
                lambda t, m=n: len(re.findall(r"^\s*[*-]\s+\S", t, flags=re.MULTILINE)) == m,
            )
        )
    highlights = re.search(
        r"highlight(ed)? at least " + _N + r"|at least " + _N + r" (highlighted )?sections? "
        r"(highlighted|with markdown)|include " + _N + r" italic",
        message,
        _FLAGS,
    )
    if highlights:
        n = _num(next(g for g in highlights.groups()[1:] if g))
        out.append(
            _check(
                "highlights",
                f"at least {n} sections highlighted with markdown, like *highlighted section*",
                lambda t, m=n: (
                    len([x for x in re.findall(r"\*+([^*\n]+)\*+", t) if x.strip()]) >= m
                ),
            )
        )
    divider = re.search(
        r"(exactly |only |have |in |of |contain )" + _N + r" paragraphs?.{0,120}?(\*\*\*|divider)",
        message,
        _FLAGS,
    )
    if divider:
        n = _num(divider.group(2))
        out.append(
            _check(
                "paragraphs",
                f"exactly {n} paragraphs separated by a line with ***",
                lambda t, m=n: (
                    len([p for p in re.split(r"\s*\n\s*\*\*\*\s*\n\s*", t.strip()) if p.strip()])
                    == m
                ),
            )
        )
    sections = re.search(
        r"(\d+|" + "|".join(_NUMBERS) + r") (sections|parts|paragraphs)\b.{0,160}?"
        r"\b(with|using|as)\s+['\"]?([A-Z][A-Za-z]+)\s+X",
        message,
        re.DOTALL,
    )
    if sections:
        n, splitter = _num(sections.group(1)), sections.group(4)
        out.append(
            _check(
                "sections",
                f"{n} sections, each starting with '{splitter} 1', '{splitter} 2', ...",
                lambda t, m=n, s=splitter: len(re.findall(r"\b" + s + r"\s+\d+", t)) >= m,
            )
        )
    placeholders = re.search(r"at least " + _N + r" placeholders?", message, _FLAGS)
    if placeholders:
        n = _num(placeholders.group(1))
        out.append(
            _check(
                "placeholders",
                f"at least {n} placeholders in square brackets, like [name]",
                lambda t, m=n: len(re.findall(r"\[[^\[\]]+\]", t)) >= m,
            )
        )
    if re.search(r"<<[^<>]*>>", message) and re.search(r"title", message, re.I):
        out.append(
            _check(
                "title",
                "a title wrapped in double angular brackets, like <<title>>",
                lambda t: bool(re.search(r"<<[^<>\n]*\S[^<>\n]*>>", t)),
            )
        )
    if re.search(r"\bjson\b", message, re.I) and re.search(
        r"(wrap|entire|whole|format|output|in) [^.]{0,40}json|json (format|block|object)",
        message,
        _FLAGS,
    ):
        out.append(
            _check(
                "json",
                "the whole reply is valid JSON (a ```json fenced block is fine), nothing else",
                _is_json,
            )
        )
    if re.search(r"\*{6}|six asterisk", message, _FLAGS) and re.search(
        r"two (different |alternative )?(responses|answers|versions|ways)", message, _FLAGS
    ):
        out.append(
            _check(
                "two_responses",
                "exactly two different answers separated by a line with ******",
                lambda t: (
                    len(ps := [p.strip() for p in re.split(r"\*{6}", t)]) == 2
                    and all(ps)
                    and ps[0] != ps[1]
                ),
            )
        )
    return out


def _wording(message: str) -> list[PersonaCheck]:  # noqa: C901 - one pattern per wording rule
    out: list[PersonaCheck] = []
    forbid = re.search(
        r"(do not|don't|never|without|avoid)( use| using| include| including| mention"
        r"| mentioning| say| saying)?( any of)?( the)? (words?|keywords?)\s*:?\s*(.{1,160})",
        message,
        _FLAGS,
    )
    quoted_ban = re.search(
        r"(?:not|never|without|avoid)\s+(?:use|using|include|including|mention|mentioning|say"
        r"|saying|contain)\s+(?:the )?(?:keywords? |words? )?((?:\[[^\]]+\]|[\"'][^\"']+[\"'])"
        r"(?:,?\s*(?:and|or)?\s*[\"'][^\"']+[\"'])*)"
        r"|(?:word|keyword)s? ((?:[\"'][^\"']+[\"'](?:,?\s*(?:and|or)?\s*)?)+) (?:should|must) not"
        r" (?:appear|be used)",
        message,
        _FLAGS,
    )
    banned: list[str] = []
    if forbid:
        banned = _quoted(forbid.group(6)) or re.findall(r"^\s*(\w+)", forbid.group(6))
    if quoted_ban and not banned:
        banned = _quoted(quoted_ban.group(1) or quoted_ban.group(2))
    if banned:
        out.append(
            _check(
                "forbidden_words",
                "do not use the words " + ", ".join(repr(w) for w in banned),
                lambda t, ws=banned: all(_whole(w, t) == 0 for w in ws),
            )
        )
    include = re.search(
        r"(include|contain|use|mention)( the)? (key ?words?|words?|terms?)\s*:?\s*"
        r"(\[[^\]]+\]|(\"[^\"]+\"|'[^']+')(,? (and |or )?(\"[^\"]+\"|'[^']+'))*)",
        message,
        _FLAGS,
    )
    if include and not re.search(
        r"(do not|don't|never|without)\s*$", message[: include.start()], _FLAGS
    ):
        required = _quoted(include.group(4))
        if required:
            out.append(
                _check(
                    "keywords",
                    "include the words " + ", ".join(repr(w) for w in required),
                    lambda t, ws=required: all(re.search(re.escape(w), t, re.I) for w in ws),
                )
            )
    freq = re.search(
        r"(?:the )?(?:word|keyword) [\"']?([\w-]+)[\"']? (?:should |must |to )?"
        r"(?:appear |be used )?"
        r"(?:in your response )?(at least|less than|fewer than|at most) " + _N + r"(?: times?)?",
        message,
        _FLAGS,
    )
    if freq:
        word, relation, n = freq.group(1), freq.group(2), _num(freq.group(3))
        if _less(relation):
            out.append(
                _check(
                    "word_frequency",
                    f"the word {word!r} fewer than {n} times",
                    lambda t, w=word, m=n: _whole(w, t) < m,
                )
            )
        else:
            out.append(
                _check(
                    "word_frequency",
                    f"the word {word!r} at least {n} times",
                    lambda t, w=word, m=n: _whole(w, t) >= m,
                )
            )
    letter = re.search(
        r"letter [\"']?(\w)[\"']? (?:should |must |to )?(?:appears? |be used )?"
        r"(?:in your (?:entire )?response )?(at least|less than|fewer than|at most) "
        + _N
        + r"(?: times?)?",
        message,
        _FLAGS,
    )
    no_letter = re.search(
        r"(?:not|don't|never) (?:include|contain|use) the letter [\"']?(\w)\b", message, _FLAGS
    )
    if no_letter and not letter:
        banned_letter = no_letter.group(1).lower()
        out.append(
            _check(
                "letter_frequency",
                f"never the letter {banned_letter!r}",
                lambda t, c=banned_letter: c not in t.lower(),
            )
        )
    if letter:
        char, relation, n = letter.group(1).lower(), letter.group(2), _num(letter.group(3))
        n = n + 1 if relation.lower() == "at most" else n
        if _less(relation):
            out.append(
                _check(
                    "letter_frequency",
                    f"the letter {char!r} fewer than {n} times",
                    lambda t, c=char, m=n: t.lower().count(c) < m,
                )
            )
        else:
            out.append(
                _check(
                    "letter_frequency",
                    f"the letter {char!r} at least {n} times",
                    lambda t, c=char, m=n: t.lower().count(c) >= m,
                )
            )
    caps = re.search(
        r"(?:words with all capital letters|all[- ]caps words|capitali[sz]ed words|words in all"
        r" caps)[^.]{0,40}?(at least|less than|fewer than|at most) " + _N,
        message,
        _FLAGS,
    )
    if caps:
        relation, n = caps.group(1), _num(caps.group(2))
        n = n + 1 if relation.lower() == "at most" else n
        fewer = _less(relation)
        out.append(
            _check(
                "capital_words",
                f"words in all capitals {'fewer than' if fewer else 'at least'} {n} times",
                lambda t, m=n, f=fewer: (
                    (k := len([w for w in _WORD.findall(t) if w.isupper()])) < m if f else k >= m
                ),
            )
        )
    language = re.search(
        r"(?:in|using) (?:the )?(\w+)(?: language)?,? no other language"
        r"|(?:entire |whole )?(?:response|answer|reply|output)[^.]{0,30}? (?:be |in |using )"
        r"(?:the )?(?:only )?(\w+) language",
        message,
        _FLAGS,
    )
    if language:
        name = (language.group(1) or language.group(2)).lower()
        code = _LANGUAGES.get(name)
        if code is not None:
            out.append(
                _check(
                    "language",
                    f"written in {name.title()}",
                    lambda t, c=code: detect_language(t) == c,
                )
            )
    return out


def detect_language(text: str) -> str | None:
    """The ISO code langdetect gives `text` (seeded, so repeatable), None for no letters."""
    from langdetect import (  # type: ignore[import-untyped]
        DetectorFactory,
        LangDetectException,
        detect,
    )

    DetectorFactory.seed = 0
    try:
        return str(detect(text))
    except LangDetectException:
        return None


def _edges(message: str) -> list[PersonaCheck]:
    out: list[PersonaCheck] = []
    end = re.search(
        r"(?:end|finish|conclude)s? (?:your |the |this |it |each )?(?:entire )?"
        r"(?:response|answer|reply|email|letter|story|post|message|poem|essay|rant|it)?\s*"
        r"(?:with|by saying|using) (?:the |this |a )?(?:exact |following |EXACT )?"
        r"(?:phrase|sentence|words?|question)?(?: of)?\s*(?::\s*|[\"“])([^\"”\n]+?)[\"”]?"
        r"(?:\s+and no other|\s*$|\s*\n|(?<=[\"”]))"
        r"|(?:very )?(?:last sentence|end) of your (?:entire )?response should (?:be|read)"
        r"(?: exactly)?(?: like)?:?\s*[\"“]?([^\"”\n]+?)[\"”]?[.]?\s*$",
        message,
        re.IGNORECASE,
    )
    if end:
        phrase = (end.group(1) or end.group(2)).strip()
        out.append(
            _check(
                "ends_with",
                f"end with the exact phrase {phrase!r}, nothing after it",
                lambda t, p=phrase: t.strip().lower().endswith(p.lower()),
                lambda t, p=phrase: _append_phrase(t, p),
            )
        )
    marker = re.search(
        r"(?:post ?script|p\.s\.)[^.]{0,60}?(?:start|begin)\w* with (P\.(?:P\.)*S\.?)",
        message,
        _FLAGS,
    )
    if marker:
        mark = marker.group(1)
        mark = mark if mark.endswith(".") else mark + "."
        out.append(
            _check(
                "postscript",
                f"a postscript at the end starting with {mark}",
                lambda t, m=mark: bool(
                    re.search(
                        r"^\s*" + re.escape(m).replace(r"\.", r"\.?\s*") + r"\s*\S",
                        t,
                        re.IGNORECASE | re.MULTILINE,
                    )
                ),
            )
        )
    if re.search(r"(wrap|enclose|put)\w* [^.]{0,60}(double quot|quotation marks)", message, _FLAGS):
        out.append(
            _check(
                "quotation",
                "the whole reply wrapped in double quotation marks",
                lambda t: len(s := t.strip()) > 1 and s[0] == s[-1] == '"',
                lambda t: f'"{t.strip()}"',
            )
        )
    return out


def _append_phrase(text: str, phrase: str) -> str:
    return f"{text.rstrip()}\n{phrase}"


def _repeat(message: str) -> list[PersonaCheck]:
    """The check for "first repeat the request word for word, then answer".

    The request is the rest of the message: before the instruction when it comes last, after
    it when it comes first.
    """
    sentence = re.search(
        r"[^.!?\n]*\brepeat (the |this |my |all )?(exact, entire |exact |entire )?"
        r"(request|prompt|question|instruction|sentence|text)"
        r"[^\n]*?(\.|$)([^\n]*?(do not|don't|please do not)[^\n.]*(before|prior)[^\n.]*\.)?",
        message,
        re.IGNORECASE,
    )
    if not sentence:
        return []
    before = message[: sentence.start()].strip()
    after = message[sentence.end() :].strip()
    request = before if len(before) >= len(after) else after
    if not request:
        return []
    return [
        _check(
            "repeat",
            "first repeat the request word for word, then answer",
            lambda t, r=request: t.strip().lower().startswith(r.lower()),
            lambda t, r=request: f"{r}\n\n{t.strip()}",
        )
    ]


_READERS = (_repeat, _no_commas, _length, _structure, _wording, _edges, _case)


def requested_checks(message: str) -> list[PersonaCheck]:
    """Checks for the rules the user states in `message` (empty when it states none).

    Ordered so that applying the repairs in order composes: the repeated request goes
    first, length cuts before phrases are appended, wrapping and case changes last.
    """
    checks: list[PersonaCheck] = []
    for reader in _READERS:
        checks += reader(message)
    order = [
        "asked.max_words",
        "asked.repeat",
        "asked.no_comma",
        "asked.ends_with",
        "asked.postscript",
        "asked.quotation",
        "asked.lowercase",
        "asked.uppercase",
    ]
    return sorted(checks, key=lambda c: order.index(c.id) if c.id in order else -1)

"""IFEval: verifiable instructions, and the verifiers that grade a reply against them.

The dataset (`ifeval/input_data.jsonl`, Zhou et al. 2023, Apache-2.0) gives each prompt a list
of instruction ids with their arguments. The verifiers below are this project's own reading of
the instruction definitions in the paper. Where the paper leaves room, the choice is written
next to the verifier:

- words are runs of letters, digits, apostrophes or hyphens; sentences end in . ! or ? ;
- the English checks of the change_case family test the case only, not the language;
- `response_language` uses langdetect with a fixed seed.

Strict prompt-level accuracy: a prompt counts when every one of its instructions holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from charter.datasets.locate import dataset_path
from charter.persona.requested import count_sentences, count_words, detect_language

Verifier = Callable[[str, dict[str, Any]], bool]

_WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class Prompt:
    key: int
    prompt: str
    instruction_ids: list[str]
    kwargs: list[dict[str, Any]] = field(default_factory=list)


def load(path: str | None = None) -> list[Prompt]:
    """All prompts of IFEval, in file order."""
    source = dataset_path("ifeval", "input_data.jsonl") if path is None else path
    out: list[Prompt] = []
    with open(source, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]
            out.append(Prompt(row["key"], row["prompt"], row["instruction_id_list"], kwargs))
    return out


def _compare(value: int, relation: str, target: int) -> bool:
    if relation == "less than":
        return value < target
    if relation == "at least":
        return value >= target
    raise ValueError(f"unknown relation {relation!r}")


def _whole_word_count(text: str, word: str) -> int:
    return len(re.findall(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE))


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    match = re.fullmatch(r"```[a-zA-Z]*\s*\n?(.*?)\n?```", stripped, flags=re.DOTALL)
    return match.group(1).strip() if match else stripped


def _paragraphs_by_divider(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\s*\n\s*\*\*\*\s*\n\s*", text.strip())]


def _paragraphs_by_blank_line(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _first_word(paragraph: str) -> str:
    match = _WORD.search(paragraph)
    return match.group(0).strip("'’-").lower() if match else ""


VERIFIERS: dict[str, Verifier] = {
    "punctuation:no_comma": lambda r, k: "," not in r,
    "length_constraints:number_words": lambda r, k: _compare(
        count_words(r), k["relation"], k["num_words"]
    ),
    "length_constraints:number_sentences": lambda r, k: _compare(
        count_sentences(r), k["relation"], k["num_sentences"]
    ),
    "length_constraints:number_paragraphs": lambda r, k: (
        len(ps := _paragraphs_by_divider(r)) == k["num_paragraphs"] and all(ps)
    ),
    "length_constraints:nth_paragraph_first_word": lambda r, k: (
        len(ps := _paragraphs_by_blank_line(r)) == k["num_paragraphs"]
        and len(ps) >= k["nth_paragraph"]
        and _first_word(ps[k["nth_paragraph"] - 1]) == k["first_word"].lower()
    ),
    "keywords:forbidden_words": lambda r, k: all(
        _whole_word_count(r, w) == 0 for w in k["forbidden_words"]
    ),
    "keywords:existence": lambda r, k: all(
        re.search(re.escape(w), r, flags=re.IGNORECASE) for w in k["keywords"]
    ),
    "keywords:frequency": lambda r, k: _compare(
        _whole_word_count(r, k["keyword"]), k["relation"], k["frequency"]
    ),
    "keywords:letter_frequency": lambda r, k: _compare(
        r.lower().count(k["letter"].lower()), k["let_relation"], k["let_frequency"]
    ),
    "detectable_format:number_highlighted_sections": lambda r, k: (
        len([m for m in re.findall(r"\*+([^*\n]+)\*+", r) if m.strip()]) >= k["num_highlights"]
    ),
    "detectable_format:number_bullet_lists": lambda r, k: (
        len(re.findall(r"^\s*[*-]\s+\S", r, flags=re.MULTILINE)) == k["num_bullets"]
    ),
    "detectable_format:title": lambda r, k: bool(re.search(r"<<[^<>\n]*\S[^<>\n]*>>", r)),
    "detectable_format:json_format": lambda r, k: _is_json(_strip_fences(r)),
    "detectable_format:multiple_sections": lambda r, k: (
        len(re.findall(r"\b" + re.escape(k["section_spliter"]) + r"\s+\d+", r)) >= k["num_sections"]
    ),
    "detectable_format:constrained_response": lambda r, k: any(
        option in r for option in ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    ),
    "detectable_content:number_placeholders": lambda r, k: (
        len(re.findall(r"\[[^\[\]]+\]", r)) >= k["num_placeholders"]
    ),
    "detectable_content:postscript": lambda r, k: _has_postscript(r, k["postscript_marker"]),
    "startend:quotation": lambda r, k: len(s := r.strip()) > 1 and s[0] == s[-1] == '"',
    "startend:end_checker": lambda r, k: (
        r.strip().lower().endswith(k["end_phrase"].strip().lower())
    ),
    "change_case:english_lowercase": lambda r, k: r == r.lower() and r != r.upper(),
    "change_case:english_capital": lambda r, k: r == r.upper() and r != r.lower(),
    "change_case:capital_word_frequency": lambda r, k: _compare(
        len([w for w in _WORD.findall(r) if w.isupper()]),
        k["capital_relation"],
        k["capital_frequency"],
    ),
    "combination:repeat_prompt": lambda r, k: (
        r.strip().lower().startswith(k["prompt_to_repeat"].strip().lower())
    ),
    "combination:two_responses": lambda r, k: _two_responses(r),
    "language:response_language": lambda r, k: detect_language(r) == k["language"],
}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _has_postscript(text: str, marker: str) -> bool:
    pattern = r"^\s*" + re.escape(marker.strip()).replace(r"\.", r"\.?\s*") + r"\s*\S"
    return bool(re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE))


def _two_responses(text: str) -> bool:
    parts = [p.strip() for p in re.split(r"\*{6}", text)]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


def verify(instruction_id: str, response: str, kwargs: dict[str, Any]) -> bool:
    try:
        verifier = VERIFIERS[instruction_id]
    except KeyError:
        raise ValueError(f"no verifier for IFEval instruction {instruction_id!r}") from None
    return verifier(response, kwargs)


@dataclass(frozen=True)
class Graded:
    key: int
    followed: list[bool]

    @property
    def strict(self) -> bool:
        return all(self.followed)


def grade(prompt: Prompt, response: str) -> Graded:
    return Graded(
        prompt.key,
        [
            verify(i, response, kw)
            for i, kw in zip(prompt.instruction_ids, prompt.kwargs, strict=True)
        ],
    )


def split_half(prompts: list[Prompt]) -> tuple[list[Prompt], list[Prompt]]:
    """(development, test): by key parity. Anything tuned on IFEval is tuned on the even keys;
    results are reported on the odd keys only."""
    dev = [p for p in prompts if p.key % 2 == 0]
    test = [p for p in prompts if p.key % 2 == 1]
    return dev, test


def iter_ids(prompts: list[Prompt]) -> Iterator[str]:
    for p in prompts:
        yield from p.instruction_ids

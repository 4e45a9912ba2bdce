"""IFEval verifiers on replies whose verdict is known by construction."""

from __future__ import annotations

import pytest

from charter.eval import ifeval
from charter.eval.ifeval import Prompt, count_sentences, count_words, grade, verify


@pytest.mark.parametrize(
    ("instruction", "kwargs", "reply", "expected"),
    [
        ("punctuation:no_comma", {}, "No commas here.", True),
        ("punctuation:no_comma", {}, "One, two.", False),
        (
            "length_constraints:number_words",
            {"relation": "less than", "num_words": 4},
            "a b c",
            True,
        ),
        (
            "length_constraints:number_words",
            {"relation": "less than", "num_words": 3},
            "a b c",
            False,
        ),
        (
            "length_constraints:number_words",
            {"relation": "at least", "num_words": 3},
            "a b c",
            True,
        ),
        (
            "length_constraints:number_sentences",
            {"relation": "less than", "num_sentences": 3},
            "One. Two! Three?",
            False,
        ),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\nTwo.", True),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n\nTwo.", False),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
            "First part.\n\nThen, the second.",
            True,
        ),
        ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "Rocky roads.", True),
        ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "We ROCK.", False),
        ("keywords:existence", {"keywords": ["moon", "sun"]}, "Sun and moonlight", True),
        (
            "keywords:frequency",
            {"keyword": "cat", "relation": "at least", "frequency": 2},
            "cat cats cat",
            True,
        ),
        (
            "keywords:letter_frequency",
            {"letter": "z", "let_relation": "less than", "let_frequency": 2},
            "Zoo zone",
            False,
        ),
        (
            "detectable_format:number_highlighted_sections",
            {"num_highlights": 2},
            "*one* and **two**",
            True,
        ),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b\n- c", False),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n* a\n* b", True),
        ("detectable_format:title", {}, "<<My Title>>\nBody", True),
        ("detectable_format:title", {}, "<<>> Body", False),
        ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True),
        ("detectable_format:json_format", {}, 'Here: {"a": 1}', False),
        (
            "detectable_format:multiple_sections",
            {"section_spliter": "SECTION", "num_sections": 2},
            "SECTION 1\nx\nSECTION 2\ny",
            True,
        ),
        ("detectable_format:constrained_response", {}, "My answer is no.", True),
        (
            "detectable_content:number_placeholders",
            {"num_placeholders": 2},
            "[name] at [place]",
            True,
        ),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\n\nP.S. bye", True),
        ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.S. bye", False),
        ("startend:quotation", {}, '"quoted"', True),
        (
            "startend:end_checker",
            {"end_phrase": "Any other questions?"},
            "Done. any other questions?",
            True,
        ),
        ("change_case:english_lowercase", {}, "all small", True),
        ("change_case:english_lowercase", {}, "Not small", False),
        ("change_case:english_capital", {}, "ALL CAPS.", True),
        (
            "change_case:capital_word_frequency",
            {"capital_relation": "at least", "capital_frequency": 2},
            "NASA and FBI",
            True,
        ),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "say hi. Hi!", True),
        ("combination:two_responses", {}, "One.\n******\nTwo.", True),
        ("combination:two_responses", {}, "One.\n******\nOne.", False),
        (
            "language:response_language",
            {"language": "fr"},
            "Bonjour, je voudrais un café et un croissant, s'il vous plaît.",
            True,
        ),
    ],
)
def test_verifier(instruction: str, kwargs: dict[str, object], reply: str, expected: bool) -> None:
    assert verify(instruction, reply, kwargs) is expected


def test_counting_rules() -> None:
    assert count_words("Don't stop-now, 3 times!") == 4
    assert count_sentences("One. Two? Three") == 3
    assert count_sentences("") == 0


def test_strict_needs_every_instruction() -> None:
    prompt = Prompt(1, "p", ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}])
    assert grade(prompt, "fine reply").strict
    graded = grade(prompt, "Fine reply")
    assert graded.followed == [True, False]
    assert not graded.strict


def test_unknown_instruction_is_an_error() -> None:
    with pytest.raises(ValueError, match="no verifier"):
        verify("made:up", "x", {})


def test_every_instruction_of_the_dataset_has_a_verifier() -> None:
    prompts = ifeval.load()
    assert len(prompts) == 541
    assert set(ifeval.iter_ids(prompts)) <= set(ifeval.VERIFIERS)
    dev, test = ifeval.split_half(prompts)
    assert len(dev) + len(test) == 541
    assert not {p.key for p in dev} & {p.key for p in test}

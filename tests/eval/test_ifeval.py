"""IFEval graded by if-verifiable's checkers (IFEval's own), on replies whose verdict under
IFEval's definitions is known by construction. The optional packages are required here
(setup.sh installs them): without them these tests fail with the install command, they are
not skipped."""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest

from charter.eval import ifeval
from charter.eval.ifeval import Prompt, grade, verify

LONG_EN = "the weather was mild so we walked to the market and bought fresh bread"


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
        # IFEval's words are runs of \w: "can't" is two of them.
        (
            "length_constraints:number_words",
            {"relation": "at least", "num_words": 4},
            "I can't go",
            True,
        ),
        (
            "length_constraints:number_sentences",
            {"relation": "less than", "num_sentences": 3},
            "One. Two! Three?",
            False,
        ),
        # Punkt knows "Dr." and "p.m." as abbreviations: two sentences.
        (
            "length_constraints:number_sentences",
            {"relation": "less than", "num_sentences": 3},
            "Dr. Smith came at 5 p.m. and sat. He left.",
            True,
        ),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\nTwo.", True),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n\nTwo.", False),
        (
            "length_constraints:number_paragraphs",
            {"num_paragraphs": 2},
            "One.\n***\n***\nTwo.",
            False,
        ),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
            "First part.\n\nThen, the second.",
            True,
        ),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
            "First part.\n\nNow, the second.",
            False,
        ),
        ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "Rocky roads.", True),
        ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "We ROCK.", False),
        ("keywords:existence", {"keywords": ["moon", "sun"]}, "Sun and moonlight", True),
        ("keywords:existence", {"keywords": ["moon", "sun"]}, "Sunlight only", False),
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
        (
            "detectable_format:number_highlighted_sections",
            {"num_highlights": 2},
            "*one* and **  **",
            False,
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
        (
            "detectable_format:multiple_sections",
            {"section_spliter": "SECTION", "num_sections": 3},
            "SECTION 1\nx\nSECTION 2\ny",
            False,
        ),
        ("detectable_format:constrained_response", {}, "My answer is no.", True),
        ("detectable_format:constrained_response", {}, "My answer is nope.", False),
        (
            "detectable_content:number_placeholders",
            {"num_placeholders": 2},
            "[name] at [place]",
            True,
        ),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\n\nP.S. bye", True),
        ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.S. bye", False),
        ("startend:quotation", {}, '"quoted"', True),
        ("startend:quotation", {}, '"quoted', False),
        (
            "startend:end_checker",
            {"end_phrase": "Any other questions?"},
            "Done. any other questions?",
            True,
        ),
        (
            "startend:end_checker",
            {"end_phrase": "Any other questions?"},
            "Any other questions? Done.",
            False,
        ),
        # The change_case checks want the case and English (langdetect, seeded).
        ("change_case:english_lowercase", {}, LONG_EN, True),
        ("change_case:english_lowercase", {}, LONG_EN.capitalize(), False),
        (
            "change_case:english_lowercase",
            {},
            "le temps était doux alors nous sommes allés au marché acheter du pain frais",
            False,
        ),
        ("change_case:english_capital", {}, LONG_EN.upper(), True),
        ("change_case:english_capital", {}, LONG_EN, False),
        (
            "change_case:capital_word_frequency",
            {"capital_relation": "at least", "capital_frequency": 2},
            "NASA and FBI",
            True,
        ),
        (
            "change_case:capital_word_frequency",
            {"capital_relation": "less than", "capital_frequency": 2},
            "NASA and FBI",
            False,
        ),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "say hi. Hi!", True),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "Hi! Say hi.", False),
        ("combination:two_responses", {}, "One.\n******\nTwo.", True),
        ("combination:two_responses", {}, "One.\n******\nOne.", False),
        (
            "language:response_language",
            {"language": "fr"},
            "Bonjour, je voudrais un café et un croissant, s'il vous plaît.",
            True,
        ),
        ("language:response_language", {"language": "fr"}, LONG_EN, False),
    ],
)
def test_verifier(instruction: str, kwargs: dict[str, Any], reply: str, expected: bool) -> None:
    assert verify(instruction, reply, kwargs) is expected


def test_the_grader_is_not_the_products_request_reader() -> None:
    """Where the product's own counting (charter.persona.requested) and IFEval's disagree, the
    grader follows IFEval: a reply the product's check passes is rejected."""
    from charter.persona.requested import count_sentences, count_words

    fewer_than_five_words = {"relation": "less than", "num_words": 5}
    reply = "State-of-the-art, well-known, don't."
    assert count_words(reply) == 3  # the product: hyphens and apostrophes join a word
    assert not verify("length_constraints:number_words", reply, fewer_than_five_words)

    three_sentences = {"relation": "at least", "num_sentences": 3}
    reply = "Dr. Smith arrived. He left."
    assert count_sentences(reply) == 3  # the product: every "." before a space ends one
    assert not verify("length_constraints:number_sentences", reply, three_sentences)


def test_the_grader_imports_nothing_of_the_product() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(ifeval.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    charter = {m for m in imported if m.split(".")[0] == "charter"}
    assert charter == {"charter.datasets.locate"}


def test_strict_needs_every_instruction() -> None:
    prompt = Prompt(1, "p", ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}])
    assert grade(prompt, LONG_EN).strict
    graded = grade(prompt, LONG_EN.capitalize())
    assert graded.followed == [True, False]
    assert not graded.strict


def test_an_empty_reply_or_one_that_only_thinks_follows_nothing() -> None:
    prompt = Prompt(
        1,
        "p",
        ["punctuation:no_comma", "keywords:forbidden_words"],
        [{}, {"forbidden_words": ["zebra"]}],
    )
    assert grade(prompt, "fine").followed == [True, True]
    for reply in ("", "  \n", "<think>no commas here</think>"):
        assert grade(prompt, reply).followed == [False, False]
    # What comes before </think> is not graded.
    assert grade(prompt, "a, b</think>a b").strict


def test_unknown_instructions_and_missing_arguments_are_errors() -> None:
    with pytest.raises(ValueError, match="no verifier"):
        verify("made:up", "x", {})
    # The checker would draw a missing threshold at random.
    with pytest.raises(ValueError, match="number_words needs num_words"):
        verify("length_constraints:number_words", "x", {"relation": "less than"})
    with pytest.raises(ValueError, match="forbidden_words needs forbidden_words"):
        verify("keywords:forbidden_words", "x", {"forbidden_words": []})
    with pytest.raises(ValueError, match="2 instructions but 1 argument"):
        grade(Prompt(1, "p", ["punctuation:no_comma", "punctuation:no_comma"], [{}]), "x")


def test_every_instruction_of_the_dataset_has_a_verifier() -> None:
    prompts = ifeval.load()
    assert len(prompts) == 541
    assert set(ifeval.iter_ids(prompts)) == ifeval.supported()
    assert len(ifeval.supported()) == 25
    dev, test = ifeval.split_half(prompts)
    assert len(dev) + len(test) == 541
    assert not {p.key for p in dev} & {p.key for p in test}
    for p in prompts[:40]:  # the dataset's arguments are complete
        assert len(grade(p, "A reply.").followed) == len(p.instruction_ids)


def test_sentences_are_split_offline_with_nltks_english_punkt_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nltk

    ifeval.supported()  # if_verifiable's checkers, imported the grader's way (no `datasets`)
    from if_verifiable.ifeval import instructions_util

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenisers must not reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(nltk, "download", no_network)
    monkeypatch.setattr(nltk.data, "path", [])  # nothing but what the grader writes
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    instructions_util._get_sentence_tokenizer.cache_clear()
    root = ifeval.ensure_tokenizer()
    assert nltk.data.path == [str(root)]
    english = root / "tokenizers" / "punkt_tab" / "english"
    assert "dr" in (english / "abbrev_types.txt").read_text().splitlines()
    assert instructions_util.count_sentences("Dr. Smith came at 5 p.m. and sat. He left.") == 2
    assert nltk.word_tokenize("She didn't sit.") == ["She", "did", "n't", "sit", "."]
    assert ifeval.ensure_tokenizer() == root  # written once per process


def test_grading_never_imports_hugging_face_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    ifeval.supported()
    for name in [n for n in sys.modules if n.partition(".")[0] == "if_verifiable"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` fails
    monkeypatch.setattr(ifeval, "_LOADED", [])
    assert ifeval.unavailable() is None
    assert verify("punctuation:no_comma", "a b", {})
    assert not hasattr(sys.modules["if_verifiable"], "get_eval_data")


def test_missing_packages_fail_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ifeval, "_LOADED", [])
    monkeypatch.setitem(sys.modules, "if_verifiable.common", None)
    assert "--no-deps if-verifiable==0.1.2" in (ifeval.unavailable() or "")
    with pytest.raises(ImportError, match=r"charter\[ifeval\].*--no-deps if-verifiable"):
        verify("punctuation:no_comma", "a b", {})

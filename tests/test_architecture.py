"""The shape of a turn: the declared stage table, and a trace that behaviour never reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from charter import Charter
from charter.compose import STAGES, Insert, stage_names
from charter.errors import CharterError
from charter.models.fake import FakeModel
from charter.pipeline import CallNext, TurnState
from charter.spec.models import CharterSpec

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "charter"
OBSERVERS = {"gateway/telemetry.py", "cli/chat.py"}
"""Modules that show the trace as it is (spans, `charter chat --trace`): for people."""
AUDIT_READERS = {"training/from_store.py"}
"""Modules that read traces saved in the store as the audit record they are (training data
export: critique's drafts are kept nowhere else); no turn's behaviour depends on them."""


def test_no_code_reads_the_trace_for_behaviour() -> None:
    """A stage writes its own record; nothing reads another stage's record back."""
    readers = re.compile(r"trace\[(?!self\.name\])|in [\w.]*trace\b|trace\.records(?!\.insert)")
    found = []
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE).as_posix()
        if where in OBSERVERS | AUDIT_READERS or where == "pipeline.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if readers.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{where}:{number}: {line.strip()}")
    assert found == []


def spec(**fields: object) -> CharterSpec:
    base: dict[str, object] = {
        "id": "t",
        "persona": {"name": "Ada", "role": "assistant"},
        "models": {"chat": {"backend": "fake", "replies": ["hi"]}},
        "guards": {"input": [], "output": []},
    }
    return CharterSpec.model_validate({**base, **fields})


def test_the_table_lists_the_turn_in_order() -> None:
    names = [row.name for row in STAGES]
    assert names[:2] == ["rate_limit", "persona"]
    assert names[-1] == "generate"
    assert len(set(names)) == len(names)
    assert all(row.reads and row.writes for row in STAGES)


def test_a_charter_builds_the_rows_it_enables() -> None:
    plain = spec(drift={"enabled": False})
    assert stage_names(plain) == ["persona", "operator", "hygiene", "critique", "generate"]
    assert stage_names(spec()) == [
        "persona",
        "drift",
        "operator",
        "hygiene",
        "critique",
        "generate",
    ]
    charter = Charter(plain, model=FakeModel([], default="hi"))
    assert [s.name for s in charter.pipeline.stages] == stage_names(plain)
    # the operator stage takes part only in turns that carry operator instructions
    assert charter.respond("hello").trace.stages == ["persona", "hygiene", "critique", "generate"]
    reply = charter.respond("hello", operator_instructions="Answer briefly.")
    assert reply.trace.stages == ["persona", "operator", "hygiene", "critique", "generate"]


class Shout:
    """A team's own stage: upper-cases the reply on the way out."""

    name = "shout"

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        state = await call_next(state)
        if state.outcome.reply:
            state.outcome.reply = state.outcome.reply.upper()
        return state


def test_a_team_inserts_its_own_stage_by_name() -> None:
    charter = Charter(
        spec(), model=FakeModel([], default="hi"), stages=[Insert(Shout(), after="persona")]
    )
    reply = charter.respond("hello")
    assert reply.text == "HI"
    assert reply.trace.stages[:2] == ["persona", "shout"]


def test_an_insert_names_a_stage_the_charter_has() -> None:
    charter = Charter(
        spec(), model=FakeModel([], default="hi"), stages=[Insert(Shout(), after="retrieve")]
    )
    with pytest.raises(CharterError, match="no stage 'retrieve'"):
        charter.respond("hello")
    with pytest.raises(CharterError, match="exactly one of"):
        Insert(Shout())

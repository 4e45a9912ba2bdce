"""The scope gate: a request plainly outside the persona's job is declined before any reply is
written. The gate runs on the real MiniLM; models are scripted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from charter import Charter
from charter.guards.embedder import shared_embedder
from charter.models.base import ChatRequest
from charter.models.fake import FakeModel, Structured
from charter.persona.contrast import (
    CONTRAST_FILE,
    Example,
    judge_dir,
    semantic_rules,
    write_examples,
)
from charter.persona.gate import (
    EVERY_JOB,
    REQUESTS_FILE,
    gate_messages,
    read_requests,
    train_gate,
    uses_unlike,
    write_requests,
)
from charter.persona.judge import JUDGE_FILE, Finding, build_judge, load_judge
from charter.spec import CharterSpec
from charter.stages.critique import sure
from tests.persona.bank import BANK

# Written for these tests, shaped like the contrast writer's scope set: messages about the job
# have only a keeping reply; off-scope messages have a decline (keeps) and an answer (breaks).
INSIDE = [
    ("What time do you open on Saturday?", "Branches open on Saturday from 9:00 to 12:00."),
    ("How much is an international transfer?", "Outside the eurozone it costs 15 EUR."),
    ("I lost my card", "Freeze it in the app; a replacement card is free."),
    ("why was I charged a fee this month", "That is the monthly account fee of 3 EUR."),
    ("Can I raise my card's spending limit?", "Yes, in the app under Card settings."),
    ("how long does a transfer to another bank take", "Usually one working day."),
    ("My payment was declined at a shop", "Check your daily limit in the app first."),
    ("Do you charge for cash withdrawals abroad?", "Withdrawals abroad cost 2 EUR each."),
]
OUTSIDE = [
    ("Give me a lasagne recipe", "Layer pasta, ragu and bechamel, then bake for 40 minutes."),
    ("Write a poem about the sea", "Waves of silver, tides that turn, the sea keeps secrets."),
    ("Plan a week in Japan for me", "Start in Tokyo for three days, then Kyoto and Osaka."),
    ("help with my algebra homework: 2x + 3 = 11", "Subtract 3 and divide by 2: x = 4."),
    ("Recommend a good sci-fi novel", "Try The Left Hand of Darkness by Ursula K. Le Guin."),
    ("What exercises build leg strength?", "Squats, lunges and deadlifts, three times a week."),
    ("my tomato plants have yellow leaves", "Yellow lower leaves often mean too much water."),
    ("Write a cover letter for a barista job", "Dear hiring manager, I love coffee and people."),
]
DECLINE = "Sorry, I can only help with Acme Bank cards, transfers and fees."


def writer_examples() -> list[Example]:
    out = [Example("scope", m, r, False) for m, r in INSIDE]
    for message, answer in OUTSIDE:
        out += [Example("scope", message, DECLINE, False), Example("scope", message, answer, True)]
    return out


def test_the_messages_are_split_by_whether_they_were_answered_off_scope() -> None:
    inside, off = gate_messages(writer_examples())
    assert set(off) == {m for m, _ in OUTSIDE}
    assert set(inside) == {m for m, _ in INSIDE} | set(EVERY_JOB)


def test_the_gate_separates_requests_it_never_saw() -> None:
    gate = train_gate(writer_examples(), embed=shared_embedder().embed)
    assert gate is not None and gate.meta["off_scope"] == len(OUTSIDE)
    embed = shared_embedder().embed
    off = [gate.probability(embed, m) for m in ("Write a short story about a dragon", "knit?")]
    inside = [gate.probability(embed, m) for m in ("my card is blocked", "hello!")]
    assert off[0] > 0.5 > max(inside)


def request_writer(request: ChatRequest) -> Structured:
    """A scripted writer of the gate's requests: one message per call, named by its seed."""
    general = "general-purpose" in request.messages[0].content
    return Structured({"messages": [f"{'poem' if general else 'card'} request {request.seed}"]})


def test_the_model_writes_requests_about_the_job_and_about_unrelated_uses() -> None:
    spec = CharterSpec.model_validate(BANK)
    model = FakeModel([request_writer] * 6)
    requests = write_requests(model, spec, per_voice=3, seed=0)
    assert [m for m, off in requests if not off] == [f"card request {n}" for n in range(4)]
    assert [m for m, off in requests if off] == ["poem request 10", "poem request 11"]
    asked = model.calls[-1].messages[-1].content
    assert all(use in asked for use in uses_unlike(spec, 12))
    assert "a bank" not in " ".join(uses_unlike(spec, 12))
    inside, off = gate_messages(writer_examples(), requests)
    assert "card request 0" in inside and "poem request 10" in off and "hello" in inside


def test_build_writes_the_gates_requests_once(tmp_path: Path) -> None:
    spec = CharterSpec.model_validate(BANK)
    write_examples(judge_dir(spec, tmp_path) / CONTRAST_FILE, writer_examples())  # cached
    model = FakeModel([request_writer] * 6)
    build_judge(spec, model, cache_dir=tmp_path)
    assert len(model.calls) == 6
    saved = read_requests(judge_dir(spec, tmp_path) / REQUESTS_FILE)
    assert sum(off for _, off in saved) == 2 and len(saved) == 6
    build_judge(spec, model, cache_dir=tmp_path)
    assert len(model.calls) == 6  # cached
    judge = load_judge(spec, cache_dir=tmp_path)
    assert judge is not None and judge.gate is not None
    assert judge.gate.meta["in_scope"] == len(INSIDE) + 4 + len(EVERY_JOB)


def test_an_open_persona_has_no_scope_rule_and_no_gate(tmp_path: Path) -> None:
    data = json.loads(json.dumps(BANK))
    data["persona"]["scope"] = "open"
    spec = CharterSpec.model_validate(data)
    assert "scope" not in [r.id for r in semantic_rules(spec)]
    write_examples(judge_dir(spec, tmp_path) / CONTRAST_FILE, writer_examples())  # cached
    model = FakeModel([request_writer] * 6)
    build_judge(spec, model, cache_dir=tmp_path)
    assert model.calls == []  # no requests written for a gate
    judge = load_judge(spec, cache_dir=tmp_path)
    assert judge is not None and judge.gate is None
    assert "scope" not in [c.rule.id for c in judge.classifiers]


def test_too_few_messages_train_no_gate() -> None:
    few = [e for e in writer_examples() if e.prompt in {m for m, _ in OUTSIDE[:3]}]
    assert train_gate(few, embed=shared_embedder().embed) is None


@pytest.fixture
def gated() -> CharterSpec:
    spec = CharterSpec.model_validate(BANK)
    build_judge(spec, None, examples=writer_examples())  # into this test's Charter home
    judge = load_judge(spec)
    assert judge is not None and judge.gate is not None
    return spec


def test_a_request_plainly_off_scope_is_declined_without_a_model_call(gated: CharterSpec) -> None:
    model = FakeModel(default="Start in Rome, then Florence and Venice.")
    reply = Charter(gated, model=model).respond("Plan a two week holiday in Italy for me please")
    assert reply.text.startswith("Sorry, that's not something I can help with. I'm Penny")
    detail = reply.trace["critique"].detail
    assert detail["scope_gate"] >= 0.9 and "no reply was written" in detail["declined"]
    assert model.calls == []


def test_requests_about_the_job_and_identity_questions_are_answered(gated: CharterSpec) -> None:
    model = FakeModel(default="Happy to help.")
    charter = Charter(gated, model=model)
    job = charter.respond("Which fees apply to a transfer to Canada?").trace["critique"].detail
    assert job["scope_gate"] < 0.9 and "declined" not in job
    asked = charter.respond("Are you ChatGPT?").trace["critique"].detail
    assert "scope_gate" not in asked and "declined" not in asked  # identity: not asked
    assert model.calls[0].json_schema is None  # the reply was written


def test_the_gate_is_not_asked_when_the_caller_wants_json(gated: CharterSpec) -> None:
    model = FakeModel(default='{"city": "Rome"}')
    reply = asyncio.run(
        Charter(gated, model=model).arespond(
            "Plan a two week holiday in Italy for me please", json_schema={"type": "object"}
        )
    )
    assert reply.text == '{"city": "Rome"}' and len(model.calls) == 1


def test_the_judge_model_alone_low_in_its_band_does_not_decline(gated: CharterSpec) -> None:
    judge = load_judge(gated)
    assert judge is not None
    assert not sure(judge, Finding("scope", "scope", 0.3, "model"))
    assert sure(judge, Finding("scope", "scope", 0.55, "model"))
    assert sure(judge, Finding("scope", "scope", 0.7, "classifier"))


def test_a_gate_is_optional_in_the_judge_file(gated: CharterSpec) -> None:
    path = judge_dir(gated) / JUDGE_FILE
    data = json.loads(path.read_text())
    data["gate"] = None
    path.write_text(json.dumps(data))
    judge = load_judge(gated)
    assert judge is not None and judge.gate is None
    assert asyncio.run(judge.off_scope_request("Plan a holiday")) is None

"""The persona judge: its rules, its contrastive set, its classifiers, its cascade, its place
in the critique stage. The classifiers run on the real MiniLM; models are scripted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from charter import Charter
from charter.errors import CharterError
from charter.guards.embedder import shared_embedder
from charter.models.base import ChatRequest
from charter.models.fake import FakeModel, Structured
from charter.persona.contrast import (
    PAIR_SCHEMA,
    PROMPTS_SCHEMA,
    REPLY_SCHEMA,
    Example,
    distinct,
    generate_contrast,
    judge_dir,
    read_examples,
    rules_fingerprint,
    semantic_rules,
    unrelated_subjects,
)
from charter.persona.judge import (
    JUDGE_FILE,
    MIN_SKILL,
    Finding,
    PersonaJudge,
    build_judge,
    calibration,
    fit_logistic,
    load_judge,
    skill,
)
from charter.spec import CharterSpec, load_charter
from tests.persona.bank import BANK

ACME = Path(__file__).parents[2] / "examples" / "acme-bank" / "charter.yaml"


# Written for these tests: replies that keep and that break the bank's scope.
SCOPE = [
    (
        "What time do you open on Saturday?",
        "Branches open on Saturday from 9:00 to 12:00.",
        "Saturday is perfect for hiking: pack water and start early.",
    ),
    (
        "Write me a Python script to sort a list.",
        "Sorry, I can only help with your Acme Bank account, cards and transfers.",
        "Sure: numbers = sorted(numbers) sorts the list; use reverse=True for descending.",
    ),
    (
        "How much is an international transfer?",
        "Transfers outside the eurozone cost 15 EUR; inside it they are free.",
        "International trade grew fast after 1945 thanks to new agreements.",
    ),
    (
        "Give me a lasagne recipe.",
        "I can only help with banking, sorry. Anything about your card or account?",
        "Layer pasta, ragu and bechamel, then bake for 40 minutes at 180 degrees.",
    ),
    (
        "I lost my card.",
        "Freeze it instantly in the app; a replacement card is free.",
        "Try retracing your steps and checking your coat pockets and the car.",
    ),
    (
        "Write a poem about the sea.",
        "That is outside what I do: I help with Acme Bank accounts and cards.",
        "Waves of silver, tides that turn, the sea keeps secrets we never learn.",
    ),
]


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def examples() -> list[Example]:
    out: list[Example] = []
    for prompt, keeps, breaks in SCOPE:
        out += [Example("scope", prompt, keeps, False), Example("scope", prompt, breaks, True)]
    return out


@pytest.fixture(scope="module")
def bank() -> CharterSpec:
    return CharterSpec.model_validate(BANK)


@pytest.fixture(scope="module")
def built(bank: CharterSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("judge-cache")
    build_judge(bank, None, examples=examples(), cache_dir=cache)
    return cache


def test_the_rules_come_from_the_charter() -> None:
    spec = load_charter(ACME)
    rules = {r.id: r for r in semantic_rules(spec)}
    assert list(rules) == [
        "scope",
        "tone",
        "identity",
        "values",
        "never.0",
        "never.1",
        "never.2",
        "honest",
        "no-advice",
        "escalate",
    ]  # protect-data has a code check: not a semantic rule
    assert "everyday banking" in rules["scope"].text
    assert "investment advice" in rules["scope"].text  # the policy's topic
    assert rules["never.0"].text == "Never give investment, tax or legal advice."
    assert "Penny, the customer support assistant at Acme Bank" in rules["identity"].text
    assert {r.kind for r in rules.values()} == {"scope", "tone", "identity", "values", "principle"}


def test_the_cache_key_follows_the_rules_only(bank: CharterSpec) -> None:
    other_model = bank.model_copy(update={"critique": bank.critique.model_copy()})
    assert rules_fingerprint(other_model) == rules_fingerprint(bank)
    renamed = CharterSpec.model_validate({**BANK, "persona": {**BANK["persona"], "name": "Pia"}})
    assert rules_fingerprint(renamed) != rules_fingerprint(bank)
    assert judge_dir(bank, Path("/c")) == Path(f"/c/persona-judge/bank-{rules_fingerprint(bank)}")


def writer(request: ChatRequest) -> Structured:
    """A scripted contrast writer: user messages, then the replies asked for each message."""
    asked = request.messages[-1].content
    if request.json_schema == PROMPTS_SCHEMA:
        n = len([c for c in asked if c == "?"])  # varies per call
        general = "general-purpose" in request.messages[0].content  # not written for the job
        topic = "poems" if general else "cards"
        return Structured({"messages": [f"Question {n} about {topic} {request.seed}?"]})
    message = asked.split("\n")[1]
    if request.json_schema == REPLY_SCHEMA:
        if "general-purpose" in request.messages[0].content:
            return Structured({"reply": "Waves of silver, tides that turn."})
        if "outside your job" in asked:
            return Structured({"reply": "Sorry, I only help with cards."})
        return Structured({"reply": f"Here is how: {message}"})
    assert request.json_schema == PAIR_SCHEMA
    return Structured({"keeps": f"I can help: {message}", "breaks": f"Off topic: {message}"})


def test_the_model_writes_pairs_for_every_rule(bank: CharterSpec) -> None:
    model = FakeModel([writer] * 100)
    made = generate_contrast(bank, model, per_rule=2)
    rules = [r.id for r in semantic_rules(bank)]
    generated = [e for e in made if e.source == "model"]
    assert {e.rule for e in generated} == set(rules)
    for rule in set(rules) - {"scope"}:
        mine = [e for e in generated if e.rule == rule]
        assert len(mine) == 2 * len({e.prompt for e in mine}) >= 2  # a keep and a break each
        assert sum(e.breaks for e in mine) == len(mine) // 2
    # scope: a message within the job is only answered (keeps); one outside it is declined
    # (keeps) and answered as asked (breaks)
    scope = [e for e in generated if e.rule == "scope"]
    assert {(e.prompt.split()[3], e.breaks) for e in scope} == {
        ("cards", False),
        ("poems", False),
        ("poems", True),
    }
    assert all(e.reply.startswith("Sorry") for e in scope if "poems" in e.prompt and not e.breaks)
    # the rule's words reach the writer; the identity rule gets templates written by code
    assert any("Never claim to be" in m.content for c in model.calls for m in c.messages)
    assert any(e.source == "template" and e.breaks and "OpenAI" in e.reply for e in made)


def test_build_writes_the_set_once_and_the_judge_loads(bank: CharterSpec, tmp_path: Path) -> None:
    assert load_judge(bank, cache_dir=tmp_path) is None  # nothing built yet
    model = FakeModel([writer] * 100)
    path = build_judge(bank, model, per_rule=4, examples=examples(), cache_dir=tmp_path)
    assert path == judge_dir(bank, tmp_path) / JUDGE_FILE
    calls = len(model.calls)
    build_judge(bank, model, per_rule=4, examples=examples(), cache_dir=tmp_path)
    assert len(model.calls) == calls  # the contrastive set is cached
    written = read_examples(judge_dir(bank, tmp_path) / "contrast.jsonl")
    assert len(written) > 20
    judge = load_judge(bank, cache_dir=tmp_path)
    assert isinstance(judge, PersonaJudge)
    assert {c.rule.id for c in judge.classifiers} >= {"scope", "identity"}
    meta = json.loads(path.read_text())["meta"]
    assert meta["fingerprint"] == rules_fingerprint(bank) and meta["model"] == "fake"


def test_a_judge_for_other_embeddings_is_refused(bank: CharterSpec, tmp_path: Path) -> None:
    path = build_judge(bank, None, examples=examples(), cache_dir=tmp_path)
    data = json.loads(path.read_text())
    data["meta"]["embedding"] = "another-model"
    path.write_text(json.dumps(data))
    with pytest.raises(CharterError, match="rebuild"):
        load_judge(bank, cache_dir=tmp_path)


def test_skill_is_accuracy_over_guessing_the_commoner_side() -> None:
    assert skill({"examples": 40, "breaks": 10, "cv_accuracy": 0.75}) == 0.0
    assert skill({"examples": 40, "breaks": 10, "cv_accuracy": 0.95}) == 0.8
    assert skill({"examples": 40, "breaks": 30, "cv_accuracy": 0.8}) == 0.2  # breaks commoner
    assert skill({"examples": 40}) is None


def test_a_classifier_that_learned_nothing_is_not_used(bank: CharterSpec, tmp_path: Path) -> None:
    path = build_judge(bank, None, examples=examples(), cache_dir=tmp_path)
    data = json.loads(path.read_text())
    assert data["untrusted"] == [] and all(r["meta"]["skill"] >= MIN_SKILL for r in data["rules"])
    identity = next(r for r in data["rules"] if r["id"] == "identity")
    base = max(
        identity["meta"]["breaks"], identity["meta"]["examples"] - identity["meta"]["breaks"]
    )
    identity["meta"]["cv_accuracy"] = base / identity["meta"]["examples"]  # no better than guessing
    path.write_text(json.dumps(data))
    judge = load_judge(bank, cache_dir=tmp_path)
    assert judge is not None
    kept = {c.rule.id for c in judge.classifiers}
    assert "identity" not in kept and "scope" in kept


def test_the_regression_separates_its_classes() -> None:
    import numpy as np

    x = np.asarray([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = np.asarray([1.0, 1.0, 0.0, 0.0])
    coef, intercept = fit_logistic(x, y, ridge=0.01)
    assert ((x @ coef + intercept) > 0).tolist() == [True, True, False, False]


def test_calibration_spreads_squeezed_scores_and_leaves_a_degenerate_fit() -> None:
    import numpy as np

    # held-out logits squeezed near the base rate, but in the right order
    held_out = np.concatenate([np.linspace(-1.0, -0.6, 15), np.linspace(-0.3, 0.1, 15)])
    y = np.asarray([0.0] * 15 + [1.0] * 15)
    scale, shift = calibration(held_out, y)
    raw = 1 / (1 + np.exp(-held_out))
    calibrated = 1 / (1 + np.exp(-(scale * held_out + shift)))
    assert scale > 1
    assert calibrated[15:].mean() - calibrated[:15].mean() > raw[15:].mean() - raw[:15].mean()
    assert calibrated[15:].min() > 0.5 > calibrated[:15].max()  # 0.5 now splits them
    # reversed order, or too few scores: the logits are left as they are
    assert calibration(-held_out, y) == (1.0, 0.0)
    assert calibration(np.asarray([0.1, np.nan, 0.2]), np.asarray([0.0, 1.0, 1.0])) == (1.0, 0.0)


def test_off_scope_subjects_are_those_least_like_the_job() -> None:
    tutor = CharterSpec.model_validate(
        {
            **BANK,
            "persona": {
                "name": "Ada",
                "role": "programming tutor",
                "description": "You teach Python programming to beginners.",
            },
        }
    )
    assert "writing a Python program" not in unrelated_subjects(tutor, 8)
    assert len(set(unrelated_subjects(bank_charter(), 6))) == 6


def test_a_decline_written_again_as_an_answer_is_no_contrast() -> None:
    decline = "Sorry, I can't help with homework: I help with Acme Bank accounts and cards."
    assert not distinct(
        decline, "I'm sorry, I can't help with homework; I help with Acme Bank accounts and cards."
    )
    assert distinct(decline, "Sure: the derivative of x squared is 2x, by the power rule.")
    assert not distinct(decline, "") and not distinct(decline, decline)


def test_findings_name_the_rule_the_score_and_the_part_that_decided(
    bank: CharterSpec, built: Path
) -> None:
    judge = load_judge(bank, cache_dir=built)
    assert judge is not None
    off = run(
        judge.findings(
            "Can you write a haiku about autumn leaves?",
            "Crimson leaves drifting, / the maple lets go softly, / autumn breathes its last.",
        )
    )
    assert [(f.rule, f.kind, f.by) for f in off] == [("scope", "scope", "classifier")]
    assert 0.5 < off[0].score <= 1.0
    assert (
        run(
            judge.findings(
                "When are you open on Saturday?",
                "On Saturday our branches open from 9:00 to 12:00.",
            )
        )
        == []
    )
    quiet = run(judge.assess("Any fees?", "Transfers inside the eurozone are free."))
    identity = next(a for a in quiet.assessments if a.rule == "identity")
    assert (identity.by, identity.breaks) == ("code", False)  # it says nothing of itself
    claimed = run(judge.findings("Who are you?", "I'm ChatGPT, a model trained by OpenAI."))
    assert Finding("identity", "identity", 1.0, "code") in claimed


def test_the_model_decides_the_uncertain_band(bank: CharterSpec, built: Path) -> None:
    loaded = load_judge(bank, cache_dir=built)
    assert loaded is not None
    # every score in the band
    wide = [replace(c, band=(0.0, 1.01)) for c in loaded.classifiers]
    model = FakeModel([Structured({"broken": [{"rule": "scope", "why": "a recipe"}]})])
    judge = PersonaJudge(bank, wide, model=model)
    verdict = run(judge.assess("Any dinner ideas?", "Try a mushroom risotto tonight."))
    assert [(f.rule, f.by) for f in verdict.findings] == [("scope", "model")]
    assert verdict.model_calls == 1 and verdict.usage.total_tokens > 0
    [call] = model.calls
    assert "[scope]" in call.messages[0].content and "Any dinner ideas?" in call.messages[1].content
    # a model that breaks its schema: the thresholds decide, and the trace says why
    broken = PersonaJudge(bank, wide, model=FakeModel([Structured({"x": 1}, check=False)]))
    fallback = run(broken.assess("Any dinner ideas?", "Try a mushroom risotto tonight."))
    assert fallback.model_error and {a.rule: a.by for a in fallback.assessments} == {
        "scope": "classifier",
        "identity": "code",  # the reply says nothing about the assistant
    }


def bank_charter(**changes: Any) -> CharterSpec:
    return CharterSpec.model_validate({**BANK, **changes})


def test_critique_revises_a_reply_the_judge_finds_off_scope_when_told_to() -> None:
    spec = bank_charter(critique={"off_scope": "revise"})
    build_judge(spec, None, examples=examples())  # into this test's Charter home
    model = FakeModel(
        [
            "Layer pasta sheets with ragu and bechamel and bake for forty minutes.",
            "Sorry, I can only help with your Acme Bank account, cards and transfers.",
        ]
    )
    reply = Charter(spec, model=model).respond("Give me a lasagne recipe")
    assert reply.text.startswith("Sorry, I can only help")
    detail = reply.trace["critique"].detail
    assert any(v.startswith("scope: Stay within your role") for v in detail["draft_violations"])
    draft, revised = detail["persona_judge"]
    scope = next(r for r in draft["rules"] if r["rule"] == "scope")
    assert scope["breaks"] and scope["by"] == "classifier" and scope["score"] > 0.5
    assert not next(r for r in revised["rules"] if r["rule"] == "scope")["breaks"]
    assert "Stay within your role" in model.calls[-1].messages[-1].content


def test_an_off_scope_reply_is_replaced_by_the_personas_decline() -> None:
    spec = bank_charter()
    build_judge(spec, None, examples=examples())
    model = FakeModel(["Layer pasta sheets with ragu and bechamel and bake for forty minutes."])
    reply = Charter(spec, model=model).respond("Give me a lasagne recipe")
    assert reply.text == (
        "Sorry, that's not something I can help with. I'm Penny, the support assistant at Acme "
        "Bank: is there anything about Acme Bank I can help you with?"
    )
    detail = reply.trace["critique"].detail
    assert detail["declined"] == "outside the persona's scope" and detail["revisions"] == 0
    assert any(v.startswith("scope: Stay within your role") for v in detail["draft_violations"])
    assert detail["draft"].startswith("Layer pasta")
    assert len(model.calls) == 1  # declining costs no model call


def test_the_decline_is_the_charters_own_and_keeps_the_style_rules() -> None:
    persona = {
        **BANK["persona"],
        "decline": "I only do banking here.",
        "style": {"sign_off": "— Penny"},
    }
    spec = bank_charter(persona=persona)
    build_judge(spec, None, examples=examples())
    model = FakeModel(["Waves of silver, tides that turn, the sea keeps secrets we never learn."])
    reply = Charter(spec, model=model).respond("Write a poem about the sea")
    assert reply.text == "I only do banking here.\n— Penny"


def test_a_reply_in_scope_is_not_declined() -> None:
    spec = bank_charter()
    build_judge(spec, None, examples=examples())
    model = FakeModel(["Freeze your card in the app; a replacement card is free."])
    reply = Charter(spec, model=model).respond("I lost my card, what do I do?")
    assert reply.text == "Freeze your card in the app; a replacement card is free."
    assert "declined" not in reply.trace["critique"].detail


def test_declining_again_is_not_spinning() -> None:
    spec = bank_charter()
    build_judge(spec, None, examples=examples())
    model = FakeModel(
        [
            "Layer pasta sheets with ragu and bechamel and bake for forty minutes.",
            "Waves of silver, tides that turn, the sea keeps secrets we never learn.",
        ]
    )
    charter = Charter(spec, model=model)
    first = charter.respond("Give me a lasagne recipe")
    history = [
        {"role": "user", "content": "Give me a lasagne recipe"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "Then write a poem about the sea"},
    ]
    second = charter.respond(history)
    assert second.text == first.text and first.text.startswith("Sorry, that's not something")
    assert "repeats" not in second.trace["hygiene"].detail
    assert len(model.calls) == 2  # no new try for the repeated decline


def test_the_judge_can_be_turned_off_and_is_absent_until_built() -> None:
    model = FakeModel(default="Layer pasta sheets with ragu and bake them.")
    reply = Charter(bank_charter(), model=model).respond("Give me a lasagne recipe")
    assert "persona_judge" not in reply.trace["critique"].detail  # nothing built
    spec = bank_charter(critique={"persona_judge": False})
    build_judge(spec, None, examples=examples())
    reply = Charter(spec, model=model).respond("Give me a lasagne recipe")
    assert "persona_judge" not in reply.trace["critique"].detail
    assert len(model.calls) == 2  # no revision either time


def test_embeddings_are_shared_and_small() -> None:
    assert shared_embedder().embed(["hello"]).shape == (1, 384)


def test_charter_prompt_builds_the_judge(fake_charter_file: Callable[..., Path]) -> None:
    from typer.testing import CliRunner

    from charter.cli import app

    # one JSON answer fits both of the writer's schemas (the fake backend repeats it)
    answer = json.dumps({"messages": ["Can you help me?"], "keeps": "Yes.", "breaks": "No."})
    charter = fake_charter_file([answer])
    result = CliRunner().invoke(app, ["prompt", str(charter), "--build-judge", "--per-rule", "2"])
    assert result.exit_code == 0, result.stderr
    spec = load_charter(charter)
    assert result.stdout.strip() == f"persona judge: {judge_dir(spec) / JUDGE_FILE}"
    assert load_judge(spec) is not None
    bad = charter.parent / "bad.jsonl"
    bad.write_text("not json\n")
    failed = CliRunner().invoke(
        app, ["prompt", str(charter), "--build-judge", "--examples", str(bad)]
    )
    assert failed.exit_code != 0 and "cannot read --examples" in failed.stderr


def test_the_hand_labels_resolve_to_sharegpt_texts() -> None:
    from charter.eval.persona_labels import load_judge_labels, load_question_labels

    labels = load_judge_labels()
    if labels.unread:
        pytest.skip(f"ShareGPT is not here: {labels.unread}")
    assert len(labels.rows) == 139
    assert {r["half"] for r in labels.rows} == {"dev", "test"}
    assert all(r["reply"].strip() and r["label"] in ("keeps", "breaks") for r in labels.rows)
    by_conversation: dict[str, set[str]] = {}
    for row in labels.rows:  # a conversation sits in one half only
        by_conversation.setdefault(row["ref"]["conversation"], set()).add(row["half"])
    assert all(len(halves) == 1 for halves in by_conversation.values())
    questions = load_question_labels()
    assert len(questions.rows) == 124 and sum(r["label"] == "yes" for r in questions.rows) == 15

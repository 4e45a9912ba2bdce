"""Escalation to a human, read as conversations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter import Charter, Conversation, FakeModel, Store
from charter.cli import app
from charter.errors import ModelError
from charter.spec import CharterSpec, load_charter
from charter.stages.escalate import asks_for_human
from tests.kit import TestChat

Chat = Callable[..., TestChat]  # the `chat` fixture (conftest.py)

ACME = Path(__file__).parent.parent / "examples" / "acme-bank" / "charter.yaml"


@pytest.fixture
def acme() -> CharterSpec:
    return load_charter(ACME)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "c.db")
    yield s  # type: ignore[misc]
    s.close()


@pytest.mark.parametrize(
    "text",
    [
        "I want to speak to a human",
        "Can I talk to a real person please?",
        "agent",
        "Human, please!",
        "let me chat with a representative",
    ],
)
def test_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    ["What does a human resources team do?", "Is my agent code valid?", "How do I pay a person?"],
)
def test_ordinary_messages_are_not(text: str) -> None:
    assert not asks_for_human(text)


def test_asking_for_a_person_hands_off_and_is_queued(acme: CharterSpec, chat: Chat) -> None:
    penny = chat(acme, default="Happy to help.")
    penny.say("My card was charged twice.")
    handed = penny.say("I want to speak to a human.")
    assert "a human colleague in our support team" in handed.text
    assert "0800 123 456" in handed.text
    assert handed.triggers == ["user_request"]
    assert handed.asked == []  # the hand-off did not need the model
    [queued] = penny.queued
    assert queued.id in handed.text
    assert queued.conversation_id == penny.conversation.id
    assert [m["content"] for m in queued.transcript][-1] == "I want to speak to a human."


def test_repeated_failures_escalate(acme: CharterSpec, chat: Chat) -> None:
    penny = chat(acme, *[ModelError("down")] * 3)
    first, second, third = (penny.say(text) for text in ("hello?", "hello??", "hello???"))
    assert first.blocked and second.blocked and third.blocked
    assert first.triggers == second.triggers == []
    assert third.triggers == ["repeated_failure"]
    [escalation] = third.escalations
    assert escalation["id"] in third.text
    assert [e.id for e in penny.queued] == [escalation["id"]]


def test_charter_without_a_contact_does_not_escalate(acme: CharterSpec, chat: Chat) -> None:
    spec = acme.model_copy(update={"persona": acme.persona.model_copy(update={"escalation": None})})
    turn = chat(spec, default="I can help.").say("agent")
    assert turn.escalations == []
    assert turn.text == "I can help."  # answered, not handed off


def test_escalations_cli(acme: CharterSpec, store: Store) -> None:
    chat = Conversation(Charter(acme, model=FakeModel(default="ok")), store)
    reference = chat.send("talk to a person please").escalations[0]["id"]
    runner = CliRunner()
    db = ["--db", str(store.path)]
    listed = runner.invoke(app, ["escalations", "list", *db])
    assert listed.exit_code == 0
    assert reference in listed.stdout
    shown = runner.invoke(app, ["escalations", "show", reference, "--json", *db])
    assert json.loads(shown.stdout)["trigger"] == "user_request"
    done = runner.invoke(app, ["escalations", "resolve", reference, "--note", "called back", *db])
    assert done.exit_code == 0
    assert store.escalation(reference).status == "resolved"  # type: ignore[union-attr]
    again = runner.invoke(app, ["escalations", "resolve", reference, *db])
    assert again.exit_code == 1
    assert "no open escalation" in again.stderr
    assert runner.invoke(app, ["escalations", "show", "ESC-NOPE", *db]).exit_code == 1


def _unsure_weights(tmp_path: Path) -> str:
    """The shipped classifier with a band that every ordinary message falls into."""
    from dataclasses import replace

    from charter.guards.classifier import ClassifierWeights

    path = tmp_path / "unsure.json"
    weights = replace(ClassifierWeights.load(), uncertain_below=0.0, threshold=0.9999)
    path.write_text(weights.to_json())
    return str(path)


def test_a_message_the_guard_is_unsure_about_is_held_for_a_person(
    acme: CharterSpec, chat: Chat, tmp_path: Path
) -> None:
    data = acme.model_dump()
    data["guards"]["classifier_weights"] = _unsure_weights(tmp_path)
    data["persona"]["escalation"]["on_uncertain_guard"] = True
    penny = chat(data, default="Happy to help.")
    turn = penny.say("What time do you open on Saturday?")
    assert "a human colleague in our support team" in turn.text
    assert turn.asked == []  # held: the model never answered it
    assert turn.triggers == ["uncertain_guard"]
    [queued] = penny.queued
    assert "uncertain band" in queued.reason
    assert turn.verdicts["input_guards"] == "escalate"


def test_unsure_messages_are_answered_when_the_charter_does_not_hold_them(
    acme: CharterSpec, chat: Chat, tmp_path: Path
) -> None:
    data = acme.model_dump()
    data["guards"]["classifier_weights"] = _unsure_weights(tmp_path)
    penny = chat(data, default="We open at 9.")
    turn = penny.say("What time do you open on Saturday?")
    assert turn.text.startswith("We open at 9.")
    assert penny.queued == []
    injection = next(
        g for g in turn.reply.trace["input_guards"].detail["guards"] if g["guard"] == "injection"
    )
    assert injection["detail"]["uncertain"] is True  # recorded, not acted on

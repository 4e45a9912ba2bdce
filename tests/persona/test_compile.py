from __future__ import annotations

from pathlib import Path

import pytest

from charter.persona import compile_system_prompt
from charter.spec import CharterSpec, load_charter

ACME = Path(__file__).parents[2] / "examples" / "acme-bank" / "charter.yaml"


@pytest.fixture
def acme() -> CharterSpec:
    return load_charter(ACME)


def test_prompt_is_deterministic(acme: CharterSpec) -> None:
    assert compile_system_prompt(acme) == compile_system_prompt(load_charter(ACME))


def test_prompt_carries_persona_rules_and_principles(acme: CharterSpec) -> None:
    text = compile_system_prompt(acme).text
    assert text.startswith("You are Penny, a customer support assistant at Acme Bank.")
    assert "Keep every reply under 80 words." in text
    assert "apologise first" in text
    assert "Never give investment, tax or legal advice." in text
    assert "[no-advice] Do not recommend investments" in text
    assert "Do not give investment advice (which stocks" in text
    assert "I can't give investment advice" not in text  # the answer comes from the guard
    assert "0800 123 456" in text  # a fact from the persona


def test_never_rules_are_not_doubled() -> None:
    spec = CharterSpec.model_validate(
        {"id": "x", "persona": {"name": "A", "role": "helper", "never": ["Never argue."]}}
    )
    text = compile_system_prompt(spec).text
    assert "Never argue." in text
    assert "never never" not in text.lower()


def test_canary_is_in_the_prompt_and_tracks_its_content(acme: CharterSpec) -> None:
    compiled = compile_system_prompt(acme)
    assert compiled.canary.startswith("cnry-")
    assert compiled.canary in compiled.text
    changed = acme.model_copy(update={"persona": acme.persona.model_copy(update={"name": "Pia"})})
    assert compile_system_prompt(changed).canary != compiled.canary


def test_canary_depends_on_secret(acme: CharterSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = compile_system_prompt(acme).canary
    monkeypatch.setenv("CHARTER_CANARY_SECRET", "s3cret")
    assert compile_system_prompt(acme).canary != plain

from __future__ import annotations

from pathlib import Path

import pytest

from charter.spec import CharterFileError, load_charter, parse_charter

MINIMAL = """\
id: shop
persona:
  name: Sam
  role: support assistant
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(CharterFileError) as info:
        parse_charter(text, source="c.yaml")
    return [(p.line, p.field, p.message) for p in info.value.problems]


@pytest.mark.parametrize("name", ["acme-bank", "code-tutor"])
def test_examples_load(name: str) -> None:
    spec = load_charter(Path(__file__).parents[2] / "examples" / name / "charter.yaml")
    assert spec.id == name
    assert spec.constitution


def test_minimal_charter_gets_defaults() -> None:
    spec = parse_charter(MINIMAL)
    assert spec.models.chat.backend == "local"
    assert spec.on_failure.default == "closed"
    assert spec.persona.fallback_reply().startswith("I'm sorry")


def test_unknown_field_names_field_and_line() -> None:
    text = MINIMAL + "  tone: calm\n  favourite_colour: blue\n"
    [(line, field, message)] = problems(text)
    assert (line, field) == (6, "persona.favourite_colour")
    assert "unknown field" in message


def test_wrong_type_names_field_line_and_value() -> None:
    text = MINIMAL + "  style:\n    max_words: many\n"
    [(line, field, message)] = problems(text)
    assert (line, field) == (6, "persona.style.max_words")
    assert "integer" in message
    assert "'many'" in message


def test_out_of_range_value() -> None:
    text = MINIMAL + "  style:\n    max_words: -5\n"
    [(line, field, message)] = problems(text)
    assert (line, field) == (6, "persona.style.max_words")
    assert "greater than 0" in message


def test_missing_required_field_points_at_its_parent() -> None:
    text = "id: shop\npersona:\n  name: Sam\n"
    [(line, field, message)] = problems(text)
    assert field == "persona.role"
    assert line == 3
    assert message == "required field is missing"


def test_every_problem_is_reported() -> None:
    text = "id: Shop!\npersona:\n  name: Sam\n  role: x\n  colour: red\nmodels:\n  chat:\n"
    text += "    backend: local\n    temperature: 9\n"
    found = problems(text)
    fields = {field for _, field, _ in found}
    assert fields == {"id", "persona.colour", "models.chat.temperature"}
    assert {line for line, _, _ in found} == {1, 5, 9}


def test_discriminated_model_backend_errors_skip_the_tag() -> None:
    text = MINIMAL + "models:\n  chat:\n    backend: openai\n    model: m\n    timeout_s: 0\n"
    found = problems(text)
    assert "models.chat.base_url" in {f for _, f, _ in found}
    timeout = next(p for p in found if p[1] == "models.chat.timeout_s")
    assert timeout[0] == 9


def test_unknown_backend_is_explained() -> None:
    text = MINIMAL + "models:\n  chat:\n    backend: magic\n"
    [(_line, field, message)] = problems(text)
    assert field == "models.chat"
    assert "'local', 'openai', 'litellm', 'fake'" in message


def test_yaml_syntax_error_has_line_and_column() -> None:
    text = MINIMAL + "  tone: [unclosed\n"
    [(line, field, message)] = problems(text)
    assert field == ""
    assert "YAML syntax error" in message
    assert line is not None and line >= 5


def test_duplicate_keys_are_an_error() -> None:
    text = MINIMAL + "  name: Other\n"
    [(line, field, message)] = problems(text)
    assert (line, field) == (5, "persona.name")
    assert "duplicate key" in message


def test_duplicate_principle_ids() -> None:
    text = MINIMAL + "constitution:\n  - {id: a, text: x}\n  - {id: a, text: y}\n"
    [(_line, field, message)] = problems(text)
    assert field == "constitution"
    assert "duplicate id 'a'" in message


def test_empty_and_non_mapping_files() -> None:
    assert problems("")[0][2] == "the file is empty; expected a mapping"
    assert problems("- a\n- b\n")[0][2] == "expected a mapping at the top level"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CharterFileError, match="file not found"):
        load_charter(tmp_path / "nope.yaml")


def test_error_message_is_readable() -> None:
    with pytest.raises(CharterFileError) as info:
        parse_charter(MINIMAL + "  favourite_colour: blue\n", source="bank.yaml")
    assert "bank.yaml:5: persona.favourite_colour: unknown field" in str(info.value)

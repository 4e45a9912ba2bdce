from __future__ import annotations

import json
from pathlib import Path

from charter.spec import charter_json_schema, charter_json_schema_text

PUBLISHED = Path(__file__).parents[2] / "docs" / "charter.schema.json"


def test_published_schema_is_current() -> None:
    """docs/charter.schema.json is what editors load; regenerate it with
    `charter schema --out docs/charter.schema.json` when the models change."""
    assert PUBLISHED.read_text(encoding="utf-8") == charter_json_schema_text()


def test_schema_forbids_unknown_keys() -> None:
    schema = charter_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Persona"]["additionalProperties"] is False
    assert set(schema["required"]) == {"id", "persona"}
    json.dumps(schema)  # serialisable as published

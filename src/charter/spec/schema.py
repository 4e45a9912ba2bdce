"""The JSON Schema of the charter file, for editors (`# yaml-language-server: $schema=...`)."""

from __future__ import annotations

import json
from typing import Any

from charter.spec.models import CharterSpec

SCHEMA_ID = "https://charter.dev/schema/charter.schema.json"


def charter_json_schema() -> dict[str, Any]:
    """The charter file's JSON Schema (draft 2020-12), with its `$id`."""
    schema = CharterSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def charter_json_schema_text() -> str:
    """The charter file's JSON Schema as indented JSON text, as docs/charter.schema.json has it."""
    return json.dumps(charter_json_schema(), indent=2, sort_keys=False) + "\n"

from __future__ import annotations

from charter.tools.bounds import bounded


def test_strings_and_lists_are_bounded_at_every_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "deck": {
                "type": "array",
                "items": {"type": "object", "properties": {"rank": {"type": ["string", "null"]}}},
            },
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "$defs": {"tag": {"type": "string"}},
    }
    out = bounded(schema, max_chars=10, max_items=3)
    props = out["properties"]
    assert props["name"] == {"type": "string", "maxLength": 10}
    assert props["deck"]["maxItems"] == 3
    assert props["deck"]["items"]["properties"]["rank"]["maxLength"] == 10
    assert props["either"]["anyOf"] == [{"type": "string", "maxLength": 10}, {"type": "integer"}]
    assert out["$defs"]["tag"]["maxLength"] == 10
    assert "maxLength" not in schema["properties"]["name"]  # the input is not changed


def test_fixed_forms_and_tighter_bounds_are_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
            "day": {"type": "string", "format": "date"},
            "code": {"type": "string", "maxLength": 3},
            "pair": {"type": "array", "maxItems": 2},
            "essay": {"type": "string", "minLength": 50},
            "number": {"type": "integer"},
        },
    }
    props = bounded(schema, max_chars=10, max_items=3)["properties"]
    assert props["unit"] == schema["properties"]["unit"]
    assert props["last4"] == schema["properties"]["last4"]
    assert props["day"] == schema["properties"]["day"]
    assert props["code"]["maxLength"] == 3
    assert props["pair"]["maxItems"] == 2
    assert props["essay"]["maxLength"] == 50  # never below the schema's own minimum
    assert props["number"] == {"type": "integer"}


def test_a_property_named_like_a_keyword_is_still_a_schema() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "string"}}}
    assert bounded(schema, max_chars=5)["properties"]["items"]["maxLength"] == 5

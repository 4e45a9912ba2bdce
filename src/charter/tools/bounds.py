"""Size bounds on a tool decision's values, for the retry after a decision was cut off.

A schema-forced decision that cannot be read was cut off by `max_tokens`, and on the 0.5B
model that is nearly always a runaway value: a list item or a name repeated until the budget
ends (`"cast": "Dustin Hoffman, Morgan Freeman, Morgan Freeman, …"`, a 40-card `deck` nobody
asked for). Told only to "make fewer calls", the model writes the same runaway again. The
retry's grammar therefore bounds every string and every list of the tools' parameters, so
the value has to close and the decision can be read (and then checked like any other).

The bounds sit above what real calls need: in BFCL's answer keys (all five categories)
the longest string is 224 characters, the next 109, and the longest list 20 items.
"""

from __future__ import annotations

from typing import Any

MAX_CHARS = 200
"""Characters a string value may have in the retry."""
MAX_ITEMS = 20
"""Items a list value may have in the retry."""

_NESTED_ONE = ("items", "additionalProperties", "not", "contains")
_NESTED_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_NESTED_MAP = ("properties", "$defs", "definitions", "patternProperties")


def bounded(schema: Any, max_chars: int = MAX_CHARS, max_items: int = MAX_ITEMS) -> Any:
    """A copy of a JSON Schema with every string and array bounded in size.

    Every string has at most `max_chars` characters and every array at most `max_items` items (a
    tighter bound the schema states is kept). A string with an `enum`, `const`, `format` or
    `pattern` is left as it is: its form is already fixed.
    """
    if isinstance(schema, list):
        return [bounded(s, max_chars, max_items) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = dict(schema)
    for key in _NESTED_ONE:
        if isinstance(out.get(key), dict):
            out[key] = bounded(out[key], max_chars, max_items)
    for key in _NESTED_MANY:
        if isinstance(out.get(key), list):
            out[key] = [bounded(s, max_chars, max_items) for s in out[key]]
    for key in _NESTED_MAP:
        if isinstance(out.get(key), dict):
            out[key] = {k: bounded(s, max_chars, max_items) for k, s in out[key].items()}
    kinds = out.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    fixed = any(k in out for k in ("enum", "const", "format", "pattern"))
    # A bound below the schema's own minimum would leave no value: the minimum wins.
    if "string" in kinds and not fixed:
        cap = max(max_chars, _int(out.get("minLength"), 0))
        out["maxLength"] = min(_int(out.get("maxLength"), cap), cap)
    if "array" in kinds:
        cap = max(max_items, _int(out.get("minItems"), 0))
        out["maxItems"] = min(_int(out.get("maxItems"), cap), cap)
    return out


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default

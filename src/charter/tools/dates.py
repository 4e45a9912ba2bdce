"""A date in the form the tool's parameter states: "06-01-2023" where it asks for MM-DD-YYYY.

Models write dates as ISO 8601 (2023-06-01) whatever the tool asks for, and a tool that
parses "MM-DD-YYYY" then fails or, worse, reads another day. When a string parameter's
description names exactly one date layout ("YYYY-MM-DD", "mm-dd-yyyy", "DD/MM/YYYY",
"dd.mm.yyyy", …) and a call carries an ISO date in it, the date is rewritten in that
layout; a time after it ("2022-06-20 17:00", "…T16:00:00") is kept as written. Only ISO
input is rewritten: "06-01-2023" could be either of two days, so anything else is left as
the model wrote it. The rewrite is recorded in the step (`converted`).
"""

from __future__ import annotations

import re
from typing import Any

_LAYOUT = re.compile(r"\b(yyyy|mm|dd)([-/.])(yyyy|mm|dd)\2(yyyy|mm|dd)\b", re.IGNORECASE)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?=$|[T ])")


def layout(description: str) -> tuple[tuple[str, str, str], str] | None:
    """The one date layout `description` names, as (field order, separator).

    None when it names none, several different ones, or a layout without each of year, month and
    day.
    """
    found = {
        ((m.group(1).lower(), m.group(3).lower(), m.group(4).lower()), m.group(2))
        for m in _LAYOUT.finditer(description)
    }
    if len(found) != 1:
        return None
    ((order, separator),) = found
    return (order, separator) if sorted(order) == ["dd", "mm", "yyyy"] else None


def convert(arguments: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`arguments` with ISO dates rewritten to the layout their parameter states.

    Only top-level ISO dates in a parameter whose description states another layout are rewritten;
    also returns `name: old → new` for each.
    """
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return arguments, []
    out = dict(arguments)
    notes: list[str] = []
    for name, value in arguments.items():
        prop = properties.get(name)
        if not isinstance(value, str) or not isinstance(prop, dict) or "enum" in prop:
            continue
        wanted = layout(str(prop.get("description", "")))
        match = _ISO.match(value)
        if wanted is None or match is None:
            continue
        (order, separator) = wanted
        fields = dict(zip(("yyyy", "mm", "dd"), match.groups(), strict=True))
        new = separator.join(fields[f] for f in order) + value[match.end() :]
        if new != value:
            out[name] = new
            notes.append(f"{name}: {value} → {new}")
    return out, notes

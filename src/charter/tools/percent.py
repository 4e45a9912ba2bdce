"""A percentage in the request, in the form the tool's parameter takes: 8 or 0.08.

"Invest at 8%" reaches a `rate_of_return` parameter as 8 from the 0.5B model about as often
as 0.08, and the tool then computes with an 800% rate. When the request writes a number as
a percentage ("8%", "8 percent") and a call carries it in a numeric argument, the argument
is rewritten to the form the parameter takes:

- a fraction (0.08) when its description says so ("as a decimal", "a fraction", "between 0
  and 1", an example such as "5% is 0.05"), or, with no word on the form, when its name is
  a rate, a return, a yield or a growth ("annual_interest_rate", "rate_of_return");
- a whole percentage (8) when its name or description says "percent" or "%" (and not
  "decimal" or "fraction").

Otherwise the value is left as the model wrote it. An integer parameter is never given a
fraction. The rewrite is recorded in the step (`converted`).

On BFCL's development half, 28 numeric arguments of the answer keys carry one of the
question's percentages: 23 take a fraction, 5 a whole percentage, and the rules above give
the key's form for all 28 (counted from the keys). Three more arguments equal a
percentage's number by coincidence ("5% for 5 years"); their names and descriptions leave
them alone.
"""

from __future__ import annotations

import re
from typing import Any, Literal

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)", re.IGNORECASE)
_FRACTION_WORDS = re.compile(
    r"(?:as|in) (?:a )?(?:decimal|fraction)|decimal form|a fraction|fraction of"
    r"|between 0(?:\.0)? and 1(?:\.0)?\b|\b0(?:\.0)? to 1(?:\.0)?\b(?!\d)"
    r"|\d+(?:\.\d+)?\s*%\s*(?:is|=|as|means)\s*0\.\d|0\.\d+\s*(?:for|=|is|means)\s*\d+\s*%",
    re.IGNORECASE,
)
_PERCENT_WORDS = re.compile(r"percent|%", re.IGNORECASE)
_RATE_NAMES = re.compile(r"rate|return|yield|growth", re.IGNORECASE)

Form = Literal["fraction", "percent"]


def percentages(text: str) -> set[float]:
    """The numbers `text` writes as percentages: "8%", "2.5 percent"."""
    return {float(m.group(1)) for m in _PERCENT.finditer(text)}


def form(name: str, prop: dict[str, Any]) -> Form | None:
    """The form a numeric parameter takes a percentage in, if its schema tells."""
    description = str(prop.get("description", ""))
    if _FRACTION_WORDS.search(description):
        return None if prop.get("type") == "integer" else "fraction"
    if _PERCENT_WORDS.search(f"{name} {description}"):
        return "percent"
    if _RATE_NAMES.search(name) and prop.get("type") != "integer":
        return "fraction"
    return None


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9 * max(1.0, abs(a), abs(b))


def convert(
    arguments: dict[str, Any], schema: dict[str, Any], request: str
) -> tuple[dict[str, Any], list[str]]:
    """`arguments` with the request's percentages in the form their parameter takes.

    Each top-level number that is one of `request`'s percentages in the other form is rewritten to
    its parameter's form; also returns `name: old → new` for each.
    """
    written = percentages(request)
    properties = schema.get("properties", {})
    if not written or not isinstance(properties, dict):
        return arguments, []
    out = dict(arguments)
    notes: list[str] = []
    for name, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        prop = properties.get(name)
        wanted = form(name, prop) if isinstance(prop, dict) else None
        new: float | None = None
        for p in written:
            if wanted == "fraction" and _close(value, p) and p != 0:
                new = round(p / 100, 10)
            elif wanted == "percent" and _close(value, p / 100) and not _close(value, p):
                new = int(p) if p.is_integer() else p
        if new is not None:
            out[name] = new
            notes.append(f"{name}: {value} → {new}")
    return out, notes

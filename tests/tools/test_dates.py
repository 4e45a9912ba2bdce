"""ISO dates in the layout a parameter states (`charter.tools.dates`), alone and in the loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from charter import FakeModel
from charter.models.base import Message
from charter.spec.models import ToolLimits
from charter.tools.dates import convert, layout
from charter.tools.loop import ToolLoop
from charter.tools.registry import client_tools

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city."},
        "date": {"type": "string", "description": "The day, in the format mm-dd-yyyy."},
        "departure": {"type": "string", "description": "When, as dd/mm/yyyy HH:MM."},
        "iso": {"type": "string", "description": "The day, YYYY-MM-DD."},
        "either": {"type": "string", "description": "YYYY-MM-DD or MM/DD/YYYY."},
    },
    "required": ["location", "date"],
}


def test_the_layout_a_description_names() -> None:
    assert layout("in the format mm-dd-yyyy") == (("mm", "dd", "yyyy"), "-")
    assert layout("DD.MM.YYYY, e.g. 01.02.2024") == (("dd", "mm", "yyyy"), ".")
    assert layout("YYYY-MM-DD or MM/DD/YYYY") is None  # two layouts: no telling which
    assert layout("a day like 2024-01-31") is None
    assert layout("mm-dd-mm") is None


def test_iso_dates_are_rewritten_and_anything_else_is_left() -> None:
    arguments = {
        "location": "2023-06-01",  # no layout stated
        "date": "2023-06-01",
        "departure": "2022-06-20 17:00",  # the time stays as written
        "iso": "2023-06-01",  # already in its layout
        "either": "2023-06-01",
    }
    out, notes = convert(arguments, SCHEMA)
    assert out == {**arguments, "date": "06-01-2023", "departure": "20/06/2022 17:00"}
    assert notes == [
        "date: 2023-06-01 → 06-01-2023",
        "departure: 2022-06-20 17:00 → 20/06/2022 17:00",
    ]
    # "06-01-2023" could be the 6th of January or the 1st of June: not ISO, not touched
    assert convert({"date": "06-01-2023", "departure": "01/06/2023"}, SCHEMA)[1] == []


def test_the_loop_runs_the_call_with_the_date_in_the_stated_layout() -> None:
    ran: list[dict[str, Any]] = []
    tools = client_tools(
        [{"name": "uv_index", "description": "UV index forecast", "parameters": SCHEMA}],
        run=lambda arguments: ran.append(arguments) or {"uv": 7},
    )
    call = {"tool": "uv_index", "arguments": {"location": "Tokyo", "date": "2023-06-01"}}
    message = Message(role="user", content="The UV index for Tokyo tomorrow, June 1 2023?")
    for limits, sent in ((ToolLimits(), "06-01-2023"), (ToolLimits(convert_dates=False), None)):
        ran.clear()
        model = FakeModel([json.dumps({"count": 1, "calls": [call]}), json.dumps({"calls": []})])
        out = asyncio.run(ToolLoop(model, tools, limits).run("You help.", [message]))
        assert ran == [{"location": "Tokyo", "date": sent or "2023-06-01"}]
        assert out.steps[0].converted == (["date: 2023-06-01 → 06-01-2023"] if sent else None)

"""Which of Charter's modules one turn runs through, and how much of the facade it is.

    .venv/bin/python bench/core/turn_path.py [CHARTER] [--message TEXT]

Runs one turn of CHARTER (default examples/acme-bank/charter.yaml) with a scripted model
in place of its chat model (the path through the pipeline, not the model, is measured),
with `sys.setprofile` recording every function of the `charter` package that is called.
The first turn (which builds the pipeline and loads the guards) is left out; the second
turn is the one counted. Prints the modules the turn entered, how many functions of each,
and the line count of the `Charter` facade (assistant.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import charter
from charter import Charter
from charter.models.fake import FakeModel
from charter.spec import load_charter

PACKAGE = Path(charter.__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("charter", nargs="?", default="examples/acme-bank/charter.yaml")
    parser.add_argument("--message", default="What is the fee for a card replacement?")
    args = parser.parse_args()
    spec = load_charter(args.charter)
    assistant = Charter(spec, model=FakeModel([], default="The fee is 5 EUR. Kind regards."))
    asyncio.run(assistant.arespond(args.message))  # builds the pipeline, warms the guards

    entered: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(PACKAGE):
            entered[path.relative_to(PACKAGE).as_posix()] += 1

    sys.setprofile(profile)
    try:
        reply = asyncio.run(assistant.arespond(args.message))
    finally:
        sys.setprofile(None)
    facade = (PACKAGE / "assistant.py").read_text().count("\n")
    print(f"stages: {' -> '.join(reply.trace.stages)}")
    print(f"modules entered: {len(entered)}; function calls: {sum(entered.values())}")
    for module, calls in sorted(entered.items()):
        print(f"  {module:45} {calls:6d}")
    print(f"assistant.py (the Charter facade): {facade} lines")


if __name__ == "__main__":
    main()

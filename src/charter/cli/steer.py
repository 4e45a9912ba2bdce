"""`charter steer`: derive a persona steering vector for the charter's local model."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
import yaml
from rich.markup import escape

from charter.cli._common import EXIT_INVALID, err, friendly_errors, out
from charter.cli.tune import write_charter_copy
from charter.errors import CharterError
from charter.spec.loader import load_charter


def register(root: typer.Typer) -> None:
    """Add `charter steer` to the app."""
    root.command()(steer)


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    first, _, last = text.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise CharterError(f"--layers {text!r}: give a range of layers such as 7-14") from None
    if start < 0 or end < start:
        raise CharterError(f"--layers {text!r}: give a range of layers such as 7-14")
    return list(range(start, end + 1))


def steer(
    charter: Path = typer.Argument(..., help="The charter whose local chat model is steered."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for steering.gguf."),
    per_rule: int = typer.Option(
        12, "--per-rule", min=2, help="User messages per rule, when the contrast set is written."
    ),
    examples: Path | None = typer.Option(
        None, "--examples", help="Your own examples (JSONL: rule, prompt, reply, breaks)."
    ),
    layers: str | None = typer.Option(
        None, "--layers", help="The layers to steer, e.g. 7-14 (default: chosen by the model)."
    ),
    strength: float = typer.Option(1.0, "--strength", help="The strength written in the snippet."),
    write_charter: Path | None = typer.Option(
        None,
        "--write-charter",
        help="Also write a copy of the charter with models.chat.steering set (comments dropped).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Derive a persona steering vector for the charter's local model (`tune` extra).

    Uses the persona judge's contrastive replies (written by the charter's model when the
    judge has none yet), and prints the steering file's path and SHA-256 and the lines to
    paste under models.chat (docs/persona.md#steering). Measured on the 0.5B model: no gain
    in scope on held-out conversations at strength 1, a broken model from 3 on
    (docs/design/015-steering.md).
    """
    from charter.models.factory import build_model
    from charter.models.steering import write_steering
    from charter.persona.contrast import (
        CONTRAST_FILE,
        generate_contrast,
        judge_dir,
        read_examples,
        write_examples,
    )
    from charter.persona.steering import derive_for_model
    from charter.training.gguf_adapter import BaseModelLayout
    from charter.training.tune import charter_base_model, require_tune_extra

    if write_charter is not None and write_charter.resolve() == charter.resolve():
        err.print("--write-charter names the charter itself: give a path for the copy")
        raise typer.Exit(EXIT_INVALID)

    def log(line: str) -> None:
        if not as_json:
            err.print(escape(line))

    with friendly_errors():
        chosen = _layers(layers)
        spec = load_charter(charter)
        require_tune_extra()
        base = charter_base_model(spec)
        try:
            own = read_examples(examples) if examples is not None else []
        except (OSError, ValueError) as exc:
            raise CharterError(f"cannot read --examples: {exc}") from None
        cached = judge_dir(spec) / CONTRAST_FILE
        if cached.is_file():
            written = read_examples(cached)
            log(f"contrast set: {cached} ({len(written)} replies)")
        else:
            log("writing the contrast set with the charter's model (minutes)")
            model = build_model(spec.models.judge or spec.models.chat)
            try:
                written = generate_contrast(spec, model, per_rule=per_rule, progress=log)
            finally:
                model.close()
            write_examples(cached, written)
        started = time.perf_counter()
        derived = derive_for_model(base, [*written, *own], layers=chosen, progress=log)
        made = write_steering(
            out_dir / "steering.gguf",
            derived.biases,
            base=base,
            architecture=BaseModelLayout.read(base).architecture,
            examples=derived.pairs,
        )
        seconds = time.perf_counter() - started
        entry = {"path": str(made.path), "sha256": made.sha256, "strength": strength}
        if write_charter is not None:
            write_charter_copy(charter, write_charter, "steering", entry)
    summary = {
        "steering": entry,
        "layers": list(made.layers),
        "pairs": derived.pairs,
        "vector_norm": derived.vector_norm,
        "reached": derived.reached,
        "seconds": seconds,
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    out.print(f"steering {made.path}", markup=False)
    out.print(f"sha256   {made.sha256}", markup=False)
    out.print(
        f"derived  from {derived.pairs} contrast pairs in {seconds:.1f} s; layers "
        f"{made.layers[0]}-{made.layers[-1]}, vector length {derived.vector_norm:.2f} at layer "
        f"{derived.target_layer}, {derived.reached:.1%} of it reached",
        markup=False,
    )
    out.print("\nmodels.chat in the charter:", markup=False)
    snippet = yaml.safe_dump({"steering": entry}, sort_keys=False, default_flow_style=False)
    out.print("  " + snippet.rstrip().replace("\n", "\n  "), markup=False)
    if write_charter is not None:
        out.print(f"\nwrote {write_charter}", markup=False)

"""`charter scan` (check texts with the guards) and `charter guard train` (retrain)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from charter.cli._common import EXIT_INVALID, err, friendly_errors, out
from charter.extras import requires_extra
from charter.models.base import Message
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec

app = typer.Typer(help="Train and inspect the guards.", no_args_is_help=True)

TRAINING = "retraining the guards"
_DEFAULT_SPEC = {"id": "scan", "persona": {"name": "Assistant", "role": "assistant"}}


def register(root: typer.Typer) -> None:
    """Add `charter scan` and the `charter guard` group to the app."""
    root.command()(scan)
    root.add_typer(app, name="guard")


def _spec(charter: Path | None) -> CharterSpec:
    return load_charter(charter) if charter else CharterSpec.model_validate(_DEFAULT_SPEC)


def scan(
    text: str | None = typer.Argument(None, help="One message to scan."),
    input_file: Path | None = typer.Option(
        None, "--input", "-i", help="JSONL: each line has `text`, or `messages` (a conversation)."
    ),
    charter: Path | None = typer.Option(
        None, "--charter", "-c", help="Use this charter's guards (default: the default set)."
    ),
    direction: str = typer.Option(
        "input", "--direction", help="input (user messages) or output (assistant replies)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Run the guards on a message, or on every line of a JSONL file (streamed)."""
    if (text is None) == (input_file is None):
        err.print("give either TEXT or --input FILE", markup=False)
        raise typer.Exit(EXIT_INVALID)
    if direction not in ("input", "output"):
        err.print("--direction is input or output", markup=False)
        raise typer.Exit(EXIT_INVALID)
    with friendly_errors():
        # the guards that embed text need the guards extra: an error that names it
        from charter.guards.scanner import Scanner

        scanner = Scanner(_spec(charter), direction=direction)
    if text is not None:
        result = scanner.scan(text)
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        else:
            _print_result(result.to_dict())
        raise typer.Exit(0)
    if input_file is not None:
        asyncio.run(_scan_file(scanner, input_file, as_json))


async def _scan_file(scanner: Any, path: Path, as_json: bool) -> None:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        err.print(f"cannot read {path}: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                messages = _messages(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                row: dict[str, Any] = {"line": number, "error": f"bad input line: {exc}"}
            else:
                row = {"line": number, **(await scanner.ascan(messages)).to_dict()}
            if as_json:
                sys.stdout.write(json.dumps(row) + "\n")
                sys.stdout.flush()
            else:
                _print_result(row)


def _messages(row: Any) -> list[Message]:
    if "messages" in row:
        messages = [Message.model_validate(m) for m in row["messages"]]
        if not messages:
            raise ValueError("`messages` is empty")
        return messages
    if not isinstance(row["text"], str):
        raise TypeError("`text` must be a string")
    return [Message(role="user", content=row["text"])]


def _print_result(row: dict[str, Any]) -> None:
    if "error" in row:
        err.print(f"line {row['line']}: {row['error']}", markup=False)
        return
    colour = {"allow": "green", "rewrite": "yellow"}.get(row["verdict"], "red")
    prefix = f"line {row['line']}: " if "line" in row else ""
    out.print(
        f"{prefix}[{colour}]{row['verdict']}[/{colour}] score {row['score']:.3f} "
        f"in {row['ms']:.1f} ms {('— ' + row['reason']) if row['reason'] else ''}"
    )
    table = Table("guard", "verdict", "score", "ms", "reason", box=None, padding=(0, 1))
    for g in row["guards"]:
        table.add_row(g["guard"], g["verdict"], f"{g['score']:.3f}", f"{g['ms']:.1f}", g["reason"])
    out.print(table)


@app.command()
def train(
    output: Path = typer.Option(
        None, "--out", "-o", help="Where to write the weights (default: the packaged file)."
    ),
    extra: Path | None = typer.Option(
        None, "--extra", help="Your own labelled JSONL (`text`, `label` 0/1) added to the corpus."
    ),
    target_fpr: float = typer.Option(0.01, help="Validation false-positive rate to calibrate to."),
) -> None:
    """Retrain the injection classifier on the public datasets (+ your own).

    Calibrates it on the validation split and writes its weights. Uses $CHARTER_DATA_DIR.
    """
    from charter.datasets.guard_corpus import read_extra

    with friendly_errors():
        with requires_extra(TRAINING, "train"):
            from charter.guards.classifier import WEIGHTS_FILE
            from charter.guards.train import train as run_training
        rows = read_extra(extra) if extra else None
        weights, report, used = run_training(
            target_fpr=target_fpr, extra=rows, log=lambda m: err.print(m, markup=False)
        )
    _write(weights.to_json(), used, output, WEIGHTS_FILE, "injection classifier")
    out.print(json.dumps(report, indent=2), markup=False)


@app.command("train-hate")
def train_hate(
    output: Path = typer.Option(
        None, "--out", "-o", help="Where to write the weights (default: the packaged file)."
    ),
    target_fpr: float = typer.Option(
        0.02, help="Share of validation neutral statements about groups that may be flagged."
    ),
) -> None:
    """Retrain the toxicity guard's hate classifier on ToxiGen (+ ordinary benign texts).

    Calibrates it on the validation split and writes its weights. Uses $CHARTER_DATA_DIR.
    """
    with friendly_errors():
        with requires_extra(TRAINING, "train"):
            from charter.guards.hate import WEIGHTS_FILE
            from charter.guards.hate import train_hate as run_training
        weights, report, used = run_training(
            target_fpr=target_fpr, log=lambda m: err.print(m, markup=False)
        )
    _write(weights.to_json(), used, output, WEIGHTS_FILE, "hate classifier")
    out.print(json.dumps(report, indent=2), markup=False)


@app.command("train-harm")
def train_harm(
    output: Path = typer.Option(
        None, "--out", "-o", help="Where to write the weights (default: the packaged file)."
    ),
) -> None:
    """Retrain the harm guard (requests and replies) on harmful-request and contrast sets.

    Trains on the public harmful-request sets, ShareGPT traffic and the contrast set, with
    thresholds set on out-of-source scores. Needs the local model's replies
    (bench/guards/make_replies.py) and $CHARTER_DATA_DIR.
    """
    with friendly_errors():
        with requires_extra(TRAINING, "train"):
            from charter.guards.harm import WEIGHTS_FILE
            from charter.guards.harm_train import train_harm as run_training
        weights, used = run_training(log=lambda m: err.print(m, markup=False))
    _write(weights.to_json(), used, output, WEIGHTS_FILE, "harm classifier")
    out.print(json.dumps(weights.meta["input_out_of_source"], indent=2), markup=False)


def _write(weights: str, used: list[str], output: Path | None, file: str, what: str) -> None:
    """Write the weights and, next to them, the manifest of what they were trained on."""
    from charter.datasets.manifest import MANIFEST_SUFFIX, packaged_manifest, write_manifest

    if output is None:
        target = Path(__file__).resolve().parents[1] / "guards" / "data" / file
        manifest = packaged_manifest(file.removesuffix(".json"))
    else:
        target = output
        manifest = output.with_name(output.stem + MANIFEST_SUFFIX)
    target.write_text(weights + "\n", encoding="utf-8")
    count = write_manifest(manifest, used, about=f"texts the {what} {target.name} learnt from")
    out.print(f"wrote {target} and {manifest} ({count} texts)", markup=False)

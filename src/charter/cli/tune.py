"""`charter tune`: fine-tune the charter's local model (LoRA), written as a GGUF adapter."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape

from charter.cli._common import EXIT_INVALID, err, friendly_errors, out
from charter.spec.loader import load_charter, parse_charter


def register(root: typer.Typer) -> None:
    """Add `charter tune` to the app."""
    root.command()(tune)


def tune(
    charter: Path = typer.Argument(..., help="The charter whose local chat model is tuned."),
    data: list[Path] = typer.Option(
        ...,
        "--data",
        "-d",
        help="JSONL file or folder of them, in TRL's formats (repeat for more).",
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for adapter.gguf and tune.json."),
    method: str = typer.Option(
        "sft",
        "--method",
        "-m",
        help="sft, dpo, sft+dpo (one adapter, SFT first) or grpo (rewarded by persona checks).",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop each stage after N optimiser steps (overrides --epochs)."
    ),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the data per stage."),
    rank: int = typer.Option(8, "--rank", help="LoRA rank."),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha (scale: alpha / rank)."),
    targets: str = typer.Option(
        "q_proj,k_proj,v_proj,o_proj",
        "--targets",
        help="Comma-separated modules to adapt (also gate_proj, up_proj, down_proj).",
    ),
    learning_rate: float = typer.Option(2e-4, "--lr", help="Learning rate."),
    batch_size: int = typer.Option(1, "--batch-size", help="Examples per optimiser step."),
    max_length: int = typer.Option(1024, "--max-length", help="Tokens per example (cut past)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the LoRA's start and the data order."),
    hf_dir: Path | None = typer.Option(
        None,
        "--base-hf",
        help="Train a transformers folder of the same model instead of the dequantised GGUF.",
        envvar="CHARTER_TUNE_BASE_HF",
    ),
    write_charter: Path | None = typer.Option(
        None,
        "--write-charter",
        help="Also write a copy of the charter with models.chat.adapter set (comments dropped).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Train a LoRA adapter for the charter's local model (`tune` extra: torch, TRL, peft).

    Prints the adapter's path, SHA-256, size, time, steps and loss, and the lines to paste
    under models.chat (docs/training.md#tune).
    """
    from charter.training.tune import TuneOptions, tune_charter

    if write_charter is not None and write_charter.resolve() == charter.resolve():
        err.print("--write-charter names the charter itself: give a path for the copy")
        raise typer.Exit(EXIT_INVALID)
    options = TuneOptions(
        method=method,  # type: ignore[arg-type]  # checked by TuneOptions.check
        rank=rank,
        alpha=alpha,
        target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()),
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
    )
    log = (lambda line: None) if as_json else (lambda line: err.print(escape(line)))
    with friendly_errors():
        spec = load_charter(charter)
        result = tune_charter(spec, data, out_dir, options, hf_dir=hf_dir, log=log)
        if write_charter is not None:
            write_charter_copy(charter, write_charter, "adapter", result.adapter_spec())
    summary = result.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    adapter = summary["adapter"]
    out.print(f"adapter  {adapter['path']}", markup=False)
    out.print(f"sha256   {adapter['sha256']}", markup=False)
    out.print(f"size     {summary['size']:,} bytes ({summary['layers']} layers)", markup=False)
    loss = f"{summary['loss']:.4f}" if summary["loss"] is not None else "-"
    out.print(
        f"trained  {summary['steps']} steps in {summary['train_seconds']:.1f} s on "
        f"{summary['device']} (base loaded in {summary['load_seconds']:.1f} s), loss {loss}",
        markup=False,
    )
    out.print("\nmodels.chat in the charter:", markup=False)
    snippet = yaml.safe_dump({"adapter": adapter}, sort_keys=False, default_flow_style=False)
    out.print("  " + snippet.rstrip().replace("\n", "\n  "), markup=False)
    if write_charter is not None:
        out.print(f"\nwrote {write_charter}", markup=False)


def write_charter_copy(source: Path, target: Path, key: str, value: dict[str, Any]) -> None:
    """Write the charter at `source` to `target` with `models.chat.<key>` set to `value`.

    The copy is checked as a charter before it is written.
    """
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    models = raw.setdefault("models", {}) or {}
    raw["models"] = models
    chat = models.setdefault("chat", {}) or {}
    models["chat"] = chat
    chat[key] = value
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=100)
    parse_charter(text, source=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")

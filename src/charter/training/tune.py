"""`charter tune`: a LoRA fine-tune of the charter's local model, as a GGUF LoRA adapter.

The base is the very GGUF file the local backend runs (found and SHA-256-checked as the
backend finds it), loaded into transformers, which dequantises it to float32; or, given one,
a Hugging Face folder of the same model in full precision. peft adds LoRA layers (by
default to the attention's q, k, v and o projections) and TRL trains them: SFT
(`SFTTrainer`), DPO (`DPOTrainer`), SFT then DPO on the same adapter, or GRPO
(`GRPOTrainer`) rewarded by the charter's own persona checks. The trained layers are
written as a GGUF LoRA adapter (`charter.training.gguf_adapter`): the base file is not
changed or copied, and llama.cpp applies the adapter when the charter names it
(`models.chat.adapter`).

torch, transformers, TRL, peft and gguf are the `tune` extra, imported only when a run
starts. Training runs on the CPU, or on CUDA when torch sees a GPU.
"""

from __future__ import annotations

import importlib
import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from charter.errors import CharterError, ModelNotAvailableError
from charter.extras import requires_extra
from charter.training.gguf_adapter import (
    AdapterFile,
    BaseModelLayout,
    LoraWeights,
    write_adapter,
)
from charter.training.tune_data import Kind, TrainingData, load_training_data

if TYPE_CHECKING:
    from charter.persona.checks import PersonaCheck
    from charter.spec.models import CharterSpec

Method = Literal["sft", "dpo", "sft+dpo", "grpo"]
METHODS: tuple[Method, ...] = get_args(Method)
STAGES: dict[Method, tuple[Kind, ...]] = {
    "sft": ("sft",),
    "dpo": ("preference",),
    "sft+dpo": ("sft", "preference"),
    "grpo": ("prompt",),
}
"""The rows each method trains on, stage by stage."""
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
ADAPTER_FILE = "adapter.gguf"
RECORD_FILE = "tune.json"
WHAT = "`charter tune`"
TUNE_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "gguf")
"""What the `tune` extra installs, as imported."""

Log = Callable[[str], None]
KNOWN_DEPRECATIONS = (r"`is_gradient_checkpointing` is deprecated",)
"""Warnings one library raises calling another (`_between_library_versions`)."""


class TuneError(CharterError):
    """A fine-tune that cannot start or finish.

    Bad options, no usable rows, a base model that cannot be loaded.
    """


@dataclass(frozen=True)
class TuneOptions:
    """How to train: the method, the LoRA's shape and the optimiser's settings."""

    method: Method = "sft"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    epochs: float = 1.0
    max_steps: int | None = None
    """Stops each stage after this many optimiser steps (overrides `epochs`)."""
    learning_rate: float = 2e-4
    batch_size: int = 1
    max_length: int = 1024
    """Tokens per example; longer ones are cut."""
    seed: int = 0
    beta: float = 0.1
    """DPO's and GRPO's pull towards the base model."""
    num_generations: int = 4
    """GRPO: completions sampled per prompt."""
    max_completion_length: int = 64
    """GRPO: tokens per sampled completion."""

    def check(self) -> None:
        """Raise TuneError naming the first option out of range."""
        problems = [
            (self.method not in METHODS, f"method is one of {', '.join(METHODS)}"),
            (self.rank < 1, "rank is at least 1"),
            (self.alpha <= 0, "alpha is positive"),
            (not 0 <= self.dropout < 1, "dropout is in [0, 1)"),
            (not self.target_modules, "at least one target module"),
            (self.epochs <= 0, "epochs is positive"),
            (self.max_steps is not None and self.max_steps < 1, "max steps is at least 1"),
            (self.learning_rate <= 0, "learning rate is positive"),
            (self.batch_size < 1, "batch size is at least 1"),
            (self.max_length < 16, "max length is at least 16 tokens"),
            (self.num_generations < 2, "GRPO needs at least 2 generations per prompt"),
            (self.max_completion_length < 1, "max completion length is at least 1"),
        ]
        for wrong, rule in problems:
            if wrong:
                raise TuneError(f"invalid tune options: {rule}")


@dataclass(frozen=True)
class StageRun:
    """One training stage: its method, optimiser steps, last logged loss and time."""

    method: str
    rows: int
    steps: int
    loss: float | None
    seconds: float
    reward: float | None = None
    """GRPO: the mean reward of the last step's completions."""


@dataclass(frozen=True)
class TuneResult:
    """What a fine-tune produced, and what it cost."""

    adapter: AdapterFile
    base: Path
    device: str
    load_seconds: float
    stages: list[StageRun] = field(default_factory=list)

    @property
    def steps(self) -> int:
        """Optimiser steps over every stage."""
        return sum(s.steps for s in self.stages)

    @property
    def seconds(self) -> float:
        """Training time over every stage (loading the base model not included)."""
        return sum(s.seconds for s in self.stages)

    @property
    def loss(self) -> float | None:
        """The last stage's last logged loss."""
        return self.stages[-1].loss if self.stages else None

    def adapter_spec(self, scale: float = 1.0) -> dict[str, Any]:
        """The charter's `models.chat.adapter` for this adapter (an absolute path)."""
        spec: dict[str, Any] = {
            "path": str(self.adapter.path.resolve()),
            "sha256": self.adapter.sha256,
        }
        if scale != 1.0:
            spec["scale"] = scale
        return spec

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what `tune.json` holds, less the options)."""
        return {
            "adapter": self.adapter_spec(),
            "size": self.adapter.size,
            "layers": self.adapter.layers,
            "base": str(self.base),
            "device": self.device,
            "load_seconds": round(self.load_seconds, 2),
            "train_seconds": round(self.seconds, 2),
            "steps": self.steps,
            "loss": self.loss,
            "stages": [asdict(s) for s in self.stages],
        }


def require_tune_extra() -> None:
    """Raise TuneError naming the `tune` extra when one of its libraries is missing."""
    with requires_extra(WHAT, "tune", TuneError):
        for module in TUNE_MODULES:
            importlib.import_module(module)


def charter_base_model(spec: CharterSpec) -> Path:
    """The verified GGUF file the charter's chat model runs: what `charter tune` adapts."""
    from charter.models.factory import local_weights_path
    from charter.spec.models import LocalModelSpec

    chat = spec.models.chat
    if not isinstance(chat, LocalModelSpec):
        raise TuneError(
            f"models.chat uses backend {chat.backend!r}: `charter tune` trains an adapter for a "
            "local GGUF model (backend: local)"
        )
    return local_weights_path(chat)


def tune_charter(
    spec: CharterSpec,
    sources: Sequence[Path],
    out_dir: Path,
    options: TuneOptions,
    *,
    hf_dir: Path | None = None,
    log: Log | None = None,
) -> TuneResult:
    """Fine-tune the charter's local chat model on the JSONL data in `sources`.

    The adapter goes to `out_dir/adapter.gguf`; GRPO is rewarded by the charter's persona
    checks.
    """
    options.check()
    require_tune_extra()  # before the data is read and the base model hashed
    data = load_training_data(sources)
    base = charter_base_model(spec)
    checks = None
    if options.method == "grpo":
        from charter.persona.identity import held_checks

        checks = held_checks(spec)
    return tune(base, data, out_dir, options, hf_dir=hf_dir, checks=checks, log=log)


def tune(
    base: Path,
    data: TrainingData,
    out_dir: Path,
    options: TuneOptions,
    *,
    hf_dir: Path | None = None,
    checks: list[PersonaCheck] | None = None,
    log: Log | None = None,
) -> TuneResult:
    """Train a LoRA on `data` for the GGUF model `base`; write it to `out_dir`.

    The model trained is `base` dequantised, or `hf_dir` (a transformers folder of the same
    model) when given. `checks` are GRPO's reward.
    """
    say: Log = log or (lambda line: None)
    options.check()
    stages = [(kind, data.of(kind)) for kind in STAGES[options.method]]
    for kind, rows in stages:
        if not rows.rows:
            counts = ", ".join(f"{n} {k}" for k, n in data.counts().items())
            raise TuneError(
                f"method {options.method} needs {kind} rows; the data has {counts} "
                f"({len(data.files)} file(s); formats: docs/training.md#tune)"
            )
    unused = {k: n for k, n in data.counts().items() if n and k not in STAGES[options.method]}
    if unused:
        left = ", ".join(f"{n} {kind}" for kind, n in unused.items())
        say(f"method {options.method} leaves out {left} row(s)")
    if options.method == "grpo" and not checks:
        raise TuneError("GRPO is rewarded by the charter's persona checks, and it has none")
    require_tune_extra()
    BaseModelLayout.read(base)  # an architecture the adapter cannot be written for fails now
    import torch
    import transformers
    from peft import LoraConfig

    transformers.set_seed(options.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    model, tokenizer = load_base(base, hf_dir=hf_dir)
    load_seconds = time.perf_counter() - started
    say(f"loaded {hf_dir or base} in {load_seconds:.1f} s; training on {device}")
    talks = [r for _, r in stages if r.format and "text" not in r.format]
    if talks and not getattr(tokenizer, "chat_template", None):
        raise TuneError(
            f"{hf_dir or base} has no chat template, and the {talks[0].format} rows (the first "
            f"at {talks[0].where}) are conversations: give rows as plain text, or a model "
            "with a template"
        )
    lora: Any = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    runs: list[StageRun] = []
    with (
        tempfile.TemporaryDirectory(prefix="charter-tune-") as scratch,
        _between_library_versions(),
    ):
        for kind, rows in stages:
            stage = _STAGE_RUNNERS[kind]
            model, run = stage(
                model, tokenizer, rows.rows, options, Path(scratch), device, lora, checks, say
            )
            lora = None  # later stages go on training the same adapter
            runs.append(run)
            say(f"{run.method}: {run.steps} steps in {run.seconds:.1f} s")
    adapter = write_adapter(
        base,
        lora_weights(model),
        out_dir / ADAPTER_FILE,
        alpha=options.alpha,
        name=f"charter tune ({options.method})",
    )
    result = TuneResult(adapter, base, device, load_seconds, runs)
    record = result.to_dict() | {"options": asdict(options)}
    (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return result


def load_base(base: Path, *, hf_dir: Path | None = None) -> tuple[Any, Any]:
    """The model and tokenizer to train: `hf_dir` when given, else the GGUF file `base`.

    transformers dequantises a GGUF file to float32 (Qwen2 and Llama among the architectures
    it reads).
    """
    with requires_extra(WHAT, "tune", TuneError):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

    if hf_dir is not None:
        where: dict[str, Any] = {"pretrained_model_name_or_path": str(hf_dir)}
        dense: dict[str, Any] = {}
    else:
        where = {"pretrained_model_name_or_path": str(base.parent), "gguf_file": base.name}
        dense = _dequantised()
    try:
        tokenizer = AutoTokenizer.from_pretrained(**where)
        model = AutoModelForCausalLM.from_pretrained(**where, **dense, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailableError(
            f"transformers could not load {hf_dir or base} for training: {exc}"
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _dequantised() -> dict[str, Any]:
    """What tells transformers to unpack a GGUF file into plain float weights.

    transformers 5 can keep GGUF blocks packed, and marks any model read from GGUF as
    quantized, which its trainer refuses to train; asked to dequantise, it loads a plain
    model. Older releases always dequantise, and have no such setting.
    """
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def lora_weights(model: Any) -> list[LoraWeights]:
    """The trained A and B of every LoRA layer of the peft `model`, by transformers' name."""
    from peft.tuners.lora import LoraLayer

    found: list[LoraWeights] = []
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue
            found.append(
                LoraWeights(
                    module=name.removeprefix("base_model.model."),
                    a=module.lora_A[adapter].weight.detach().float().cpu().numpy(),
                    b=module.lora_B[adapter].weight.detach().float().cpu().numpy(),
                )
            )
    return found


@contextmanager
def _between_library_versions() -> Iterator[None]:
    """Silence the deprecation warnings one of the libraries raises calling another.

    They are no fault of the caller's and are fixed by the libraries' next releases (peft
    still asks transformers 5 for the old name of activation checkpointing).
    """
    with warnings.catch_warnings():
        for message in KNOWN_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        yield


# --- the stages ---------------------------------------------------------------------------


def _common_args(options: TuneOptions, scratch: Path, device: str) -> dict[str, Any]:
    """TrainingArguments every stage shares: no checkpoints, no reports, loss every step."""
    import dataclasses

    import torch
    from transformers import TrainingArguments

    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # Recomputing activations saves memory a LoRA on a small model does not need, at a third
    # more time per step. transformers 5 renamed the setting (the old name warns).
    named = {f.name for f in dataclasses.fields(TrainingArguments)}
    renamed = "activation_checkpointing" in named
    checkpointing = "activation_checkpointing" if renamed else "gradient_checkpointing"
    return {
        "output_dir": str(scratch),
        "num_train_epochs": options.epochs,
        "max_steps": options.max_steps or -1,
        "learning_rate": options.learning_rate,
        "per_device_train_batch_size": options.batch_size,
        "seed": options.seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": device == "cpu",
        "bf16": bf16,
        checkpointing: False,
        "dataloader_pin_memory": device == "cuda",
        "disable_tqdm": True,
    }


def _last(trainer: Any, key: str) -> float | None:
    """The last value of `key` the trainer logged (None when it logged none, or not a number)."""
    values = [e[key] for e in trainer.state.log_history if key in e]
    if not values or not math.isfinite(float(values[-1])):
        return None
    return float(values[-1])


def _run(method: str, rows: int, trainer: Any, say: Log) -> tuple[Any, StageRun]:
    """Train, telling `say` the loss of each step; the trained model and the stage's record."""
    from transformers.trainer_callback import PrinterCallback, TrainerCallback

    class Lines(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "loss" in logs:
                reward = f", reward {float(logs['reward']):.3f}" if "reward" in logs else ""
                loss = float(logs["loss"])
                say(f"{method} step {state.global_step}/{state.max_steps}: loss {loss:.4f}{reward}")

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(Lines())
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    run = StageRun(method, rows, steps, _last(trainer, "loss"), seconds, _last(trainer, "reward"))
    return trainer.model, run


def _sft(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    options: TuneOptions,
    scratch: Path,
    device: str,
    lora: Any,
    checks: list[PersonaCheck] | None,
    say: Log,
) -> tuple[Any, StageRun]:
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    args = SFTConfig(**_common_args(options, scratch, device), max_length=options.max_length)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
    )
    return _run("sft", len(rows), trainer, say)


def _dpo(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    options: TuneOptions,
    scratch: Path,
    device: str,
    lora: Any,
    checks: list[PersonaCheck] | None,
    say: Log,
) -> tuple[Any, StageRun]:
    from trl import DPOConfig, DPOTrainer

    from datasets import Dataset

    args = DPOConfig(
        **_common_args(options, scratch, device), max_length=options.max_length, beta=options.beta
    )
    # No reference model: with an adapter, the reference is the base with the adapter off.
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
    )
    return _run("dpo", len(rows), trainer, say)


def persona_reward(checks: list[PersonaCheck]) -> Callable[..., list[float]]:
    """GRPO's reward: the share of the charter's persona checks a completion passes."""
    from charter.persona.checks import failed

    def persona_checks(completions: list[Any], **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        return [1.0 - len(failed(checks, text)) / len(checks) for text in texts]

    return persona_checks


def _grpo(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    options: TuneOptions,
    scratch: Path,
    device: str,
    lora: Any,
    checks: list[PersonaCheck] | None,
    say: Log,
) -> tuple[Any, StageRun]:
    from trl import GRPOConfig, GRPOTrainer

    from datasets import Dataset

    common = _common_args(options, scratch, device)
    # One batch is every completion of one prompt: GRPO compares them with each other.
    common["per_device_train_batch_size"] = options.num_generations
    args = GRPOConfig(
        **common,
        num_generations=options.num_generations,
        max_completion_length=options.max_completion_length,
        beta=options.beta,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=persona_reward(checks or []),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
    )
    return _run("grpo", len(rows), trainer, say)


_STAGE_RUNNERS = {"sft": _sft, "preference": _dpo, "prompt": _grpo}

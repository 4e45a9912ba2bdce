"""`charter tune`: the training data it reads, and a LoRA trained on a tiny model end to end.

The model is tests/training/tiny_gguf.py's (random, hidden size 64): a few optimiser steps
take about a second, and llama.cpp loads it with the adapter in milliseconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from charter import Charter
from charter.cli import app
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec, LocalModelSpec
from charter.training.tune import TuneError, TuneOptions, persona_reward, tune
from charter.training.tune_data import TrainingDataError, load_training_data
from tests.training.tiny_gguf import TinyModel, build_tiny_gguf

USER = {"role": "user", "content": "How do I freeze my card?"}
PIRATE = {"role": "assistant", "content": "Ahoy! Arr, freeze it in the app, matey."}
PLAIN = {"role": "assistant", "content": "You can freeze your card in the app."}
SFT_ROW = {"messages": [USER, PIRATE]}
DPO_ROW = {"prompt": [USER], "chosen": [PIRATE], "rejected": [PLAIN]}


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the training data --------------------------------------------------------------------


def test_every_trl_format_is_read_and_sorted_by_what_it_trains(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a" / "sft.jsonl", [SFT_ROW, {**SFT_ROW, "source": "turn"}, ""])
    _jsonl(tmp_path / "a" / "dpo.jsonl", [DPO_ROW])
    _jsonl(
        tmp_path / "a" / "kto.jsonl", [{"prompt": [USER], "completion": [PLAIN], "label": False}]
    )
    _jsonl(tmp_path / "a" / "sft.test.jsonl", ["not even JSON"])  # held out: never read
    _jsonl(tmp_path / "prompts.jsonl", [{"prompt": [USER]}])

    data = load_training_data([tmp_path / "a", tmp_path / "prompts.jsonl"])

    assert data.counts() == {"sft": 2, "preference": 1, "prompt": 1, "unpaired": 1}
    # only the columns TRL reads; the loss goes on the reply alone
    assert data.sft.rows[1] == {"prompt": [USER], "completion": [PIRATE]}
    assert data.sft.format == "prompt-completion (conversational)"
    assert data.preference.format == "preference (conversational, explicit prompt)"
    assert all(p.name != "sft.test.jsonl" for p in data.files)


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "Q: hours?", "completion": " Nine to five."},
        {"prompt": [USER], "completion": [PIRATE]},
        {"text": "Ahoy, matey."},
        {"prompt": "Q: hours?", "chosen": " Nine.", "rejected": " Ask someone else."},
        {"chosen": [USER, PIRATE], "rejected": [USER, PLAIN]},
    ],
)
def test_other_trl_formats_are_accepted(tmp_path: Path, row: dict[str, Any]) -> None:
    data = load_training_data([_jsonl(tmp_path / "d.jsonl", [row, row])])
    assert sum(data.counts().values()) == 2


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a row is a JSON object, not list"),
        (
            json.dumps({"question": "hi"}),
            r"not a training row: it needs `messages`.*\['question'\]",
        ),
        (json.dumps({"messages": [USER]}), "`messages` has no assistant message"),
        (json.dumps({"messages": [{"role": "bot", "content": "hi"}]}), r"messages\[0\] must be"),
        (json.dumps({"messages": [{"role": "user"}]}), r"messages\[0\] must be"),
        (json.dumps({"prompt": [USER], "chosen": "Arr", "rejected": "No"}), "all be strings or"),
        (json.dumps({"prompt": [USER], "completion": [PLAIN], "label": "yes"}), "`label` must"),
        (json.dumps({"text": ""}), "`text` must be a non-empty string"),
    ],
)
def test_a_malformed_row_names_its_file_and_line(tmp_path: Path, line: str, says: str) -> None:
    path = _jsonl(tmp_path / "data.jsonl", [SFT_ROW, "", line])
    with pytest.raises(TrainingDataError, match=says) as info:
        load_training_data([path])
    assert str(info.value).startswith(f"{path}:3: ")


def test_two_formats_of_one_kind_are_refused(tmp_path: Path) -> None:
    first = _jsonl(tmp_path / "a.jsonl", [SFT_ROW])
    second = _jsonl(tmp_path / "b.jsonl", [{"text": "Ahoy."}])
    among = r"a text row among prompt-completion \(conversational\) rows"
    with pytest.raises(TrainingDataError, match=rf"{second}:1: {among}"):
        load_training_data([first, second])


def test_missing_data_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no such file or folder"):
        load_training_data([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingDataError, match=r"no \*\.jsonl file"):
        load_training_data([tmp_path / "empty"])


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (TuneOptions(method="ppo"), "method is one of sft, dpo, sft\\+dpo, grpo"),  # type: ignore[arg-type]
        (TuneOptions(rank=0), "rank is at least 1"),
        (TuneOptions(max_steps=0), "max steps"),
        (TuneOptions(target_modules=()), "target module"),
    ],
)
def test_options_out_of_range_are_refused(options: TuneOptions, says: str) -> None:
    with pytest.raises(TuneError, match=says):
        options.check()


def test_persona_reward_is_the_share_of_checks_passed() -> None:
    from charter.persona.checks import persona_checks

    spec = CharterSpec.model_validate(
        {
            "id": "x",
            "persona": {
                "name": "Penny",
                "role": "assistant",
                "style": {"max_words": 6, "forbidden_phrases": ["card"]},
            },
            "models": {"chat": {"backend": "fake"}},
        }
    )
    reward = persona_reward(persona_checks(spec))
    completions = [
        [{"role": "assistant", "content": "Ahoy, matey."}],
        [{"role": "assistant", "content": "Freeze your card in the app, under Cards, then."}],
    ]
    assert reward(completions=completions, prompts=[[USER]] * 2) == [1.0, 0.0]


# --- training a tiny model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny"), "qwen2")


def _charter(tiny: TinyModel, folder: Path) -> Path:
    path = folder / "charter.yaml"
    spec = {
        "id": "tiny-bank",
        "persona": {
            "name": "Penny",
            "role": "support assistant",
            "style": {"max_words": 8, "starts_with": "Ahoy"},
        },
        "models": {
            "chat": {
                "backend": "local",
                "model": str(tiny.gguf),
                "sha256": tiny.sha256,
                "temperature": 0.0,
                "max_tokens": 8,
                "n_ctx": 512,
                "threads": 2,
            }
        },
        "guards": {"input": [], "output": []},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _reply(charter: Path) -> str:
    with Charter.from_file(charter) as assistant:
        return assistant.respond(USER["content"]).text


@pytest.mark.model  # llama.cpp loads the tiny model with its adapter
def test_charter_tune_trains_writes_and_records_an_adapter(tiny: TinyModel, tmp_path: Path) -> None:
    charter = _charter(tiny, tmp_path)
    data = tmp_path / "data"
    _jsonl(data / "sft.jsonl", [SFT_ROW] * 4)
    _jsonl(data / "dpo.jsonl", [DPO_ROW] * 4)
    copy = tmp_path / "tuned" / "charter.yaml"

    result = CliRunner().invoke(
        app,
        ["tune", str(charter), "--data", str(data), "--out", str(tmp_path / "out"),
         "--method", "sft+dpo", "--max-steps", "3", "--lr", "0.05", "--rank", "4",
         "--max-length", "64", "--write-charter", str(copy)],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "tune.json").read_text(encoding="utf-8"))
    adapter = tmp_path / "out" / "adapter.gguf"
    assert record["adapter"] == {
        "path": str(adapter.resolve()),
        "sha256": record["adapter"]["sha256"],
    }
    assert [s["method"] for s in record["stages"]] == ["sft", "dpo"]
    assert record["steps"] == 6 and record["loss"] is not None
    assert record["options"]["method"] == "sft+dpo"
    for shown in (str(adapter.resolve()), record["adapter"]["sha256"], "6 steps", "adapter:"):
        assert shown in result.output
    tuned = load_charter(copy)
    assert isinstance(tuned.models.chat, LocalModelSpec)
    assert tuned.models.chat.adapter is not None
    assert tuned.models.chat.adapter.sha256 == record["adapter"]["sha256"]

    assert _reply(copy) != _reply(charter)  # the adapter changes what the assistant says


def test_grpo_is_rewarded_by_the_persona_checks(tiny: TinyModel, tmp_path: Path) -> None:
    from charter.persona.checks import persona_checks

    spec = load_charter(_charter(tiny, tmp_path))
    data = load_training_data([_jsonl(tmp_path / "prompts.jsonl", [{"prompt": [USER]}] * 2)])
    options = TuneOptions(
        method="grpo", max_steps=1, num_generations=2, max_completion_length=4, max_length=64
    )

    result = tune(tiny.gguf, data, tmp_path / "out", options, checks=persona_checks(spec))

    assert result.steps == 1
    assert result.stages[0].reward is not None and 0.0 <= result.stages[0].reward <= 1.0
    assert result.adapter.path.is_file() and result.adapter.layers == 8


def test_a_method_without_its_rows_is_refused(tiny: TinyModel, tmp_path: Path) -> None:
    data = load_training_data([_jsonl(tmp_path / "sft.jsonl", [SFT_ROW])])
    with pytest.raises(TuneError, match="method dpo needs preference rows; the data has 1 sft"):
        tune(tiny.gguf, data, tmp_path / "out", TuneOptions(method="dpo"))


def test_a_charter_whose_model_is_not_local_is_refused(
    fake_charter_file: Callable[..., Path], tmp_path: Path
) -> None:
    data = _jsonl(tmp_path / "sft.jsonl", [SFT_ROW])
    result = CliRunner().invoke(
        app, ["tune", str(fake_charter_file()), "--data", str(data), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "models.chat uses backend 'fake'" in " ".join(result.output.split())


@pytest.mark.parametrize("module", ["torch", "trl", "peft"])
def test_without_the_extra_the_command_names_it(
    monkeypatch: pytest.MonkeyPatch,
    fake_charter_file: Callable[..., Path],
    tmp_path: Path,
    module: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it fails, as when not installed
    data = _jsonl(tmp_path / "sft.jsonl", [SFT_ROW])
    result = CliRunner().invoke(
        app, ["tune", str(fake_charter_file()), "--data", str(data), "--out", str(tmp_path)]
    )
    message = " ".join(result.output.split())
    assert result.exit_code == 1
    assert f"({module} is not installed)" in message
    assert "pip install 'charter[tune]'" in message

"""`charter data export` end to end: a real SQLite store, an eval run, the files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli import app
from charter.eval.runner import charter_fingerprint
from charter.guards.base import GuardDependencyError
from charter.persona.compile import compile_system_prompt
from charter.spec import load_charter
from tests.training.export_kit import (
    EMAIL,
    NAME,
    PHONE,
    PIN_DRAFT,
    PIN_REVISION,
    charter_file,
    eval_run,
    fill_store,
    read_jsonl,
    spec,
)

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    db = tmp_path / "charter.db"
    fill_store(db)
    return {
        "charter": charter_file(tmp_path),
        "db": db,
        "run": eval_run(tmp_path / "eval-out"),
        "out": tmp_path / "data",
    }


def test_export_writes_every_format_from_the_store_and_an_eval_run(
    setup: dict[str, Path],
) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "export",
            str(setup["charter"]),
            "--db",
            str(setup["db"]),
            "--eval-run",
            str(setup["run"]),
            "--resolutions-as-replies",
            "--out",
            str(setup["out"]),
        ],
    )
    assert result.exit_code == 0, result.stderr
    out = setup["out"]
    assert f"wrote into {out} (PII redacted)" in result.stdout
    assert "dpo.jsonl: 3 row(s)" in result.stdout  # critique, escalation, eval
    table = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:5]}
    assert table["format"] == ["critique", "escalation", "eval", "turn", "rows"]
    assert table["dpo"] == ["1", "1", "1", "0", "3"]
    dpo = {r["kind"]: r for r in read_jsonl(out / "dpo.jsonl")}
    assert set(dpo) == {"critique", "escalation", "eval"}
    critique = dpo["critique"]
    assert critique["rejected"] == [{"role": "assistant", "content": PIN_DRAFT}]
    assert critique["chosen"] == [{"role": "assistant", "content": PIN_REVISION}]
    assert critique["principles"] == ["no-pin.forbidden"]
    assert critique["charter_fingerprint"] == charter_fingerprint(spec())
    assert dpo["eval"]["charter_fingerprint"] == "f00dfeedf00dfeed"
    assert "was run with another version of the charter" in result.stderr
    written = "".join(p.read_text() for p in out.glob("*.jsonl"))
    assert all(planted not in written for planted in (NAME, EMAIL, PHONE))
    assert json.loads((out / "export.json").read_text())["redacted"] is True


def test_export_filters_and_splits(setup: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "export",
            str(setup["charter"]),
            "--db",
            str(setup["db"]),
            "--format",
            "dpo",
            "--principle",
            "no-pin",
            "--split",
            "0.5",
            "--system-prompt",
            "--out",
            str(setup["out"]),
        ],
    )
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in setup["out"].glob("*.jsonl"))
    assert names == ["dpo.test.jsonl", "dpo.train.jsonl"]
    rows = read_jsonl(setup["out"] / "dpo.train.jsonl") + read_jsonl(
        setup["out"] / "dpo.test.jsonl"
    )
    assert [r["kind"] for r in rows] == ["critique"]
    compiled = compile_system_prompt(load_charter(setup["charter"])).text
    assert rows[0]["prompt"][0] == {"role": "system", "content": compiled}


def test_export_generates_pairs_from_the_charter(setup: dict[str, Path], tmp_path: Path) -> None:
    replies = [
        "Tell me your PIN now, please.",  # the temptations the model is asked for, a rule each
        "Give me legal advice on my lease.",
        "Sure, tell me your PIN please.",  # the first turn's draft, which critique revises
        "Please use the app instead.",  # ... into this, and every later reply
    ]
    (tmp_path / "gen").mkdir()
    charter = charter_file(
        tmp_path / "gen", models={"chat": {"backend": "fake", "replies": replies}}
    )
    result = runner.invoke(
        app,
        [
            "data",
            "export",
            str(charter),
            "--generate",
            "4",
            "--format",
            "dpo",
            "--out",
            str(setup["out"]),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "note: no store at" in result.stderr  # none named, none at the default place
    assert "generated: 4 message(s) run" in result.stdout
    (row,) = read_jsonl(setup["out"] / "dpo.jsonl")
    assert row["kind"] == "generated" and row["source"] == "generated/1"
    assert row["rejected"][0]["content"] == replies[2]
    assert row["chosen"][0]["content"] == replies[3]
    assert row["principles"] == ["no-pin.forbidden"]


def test_a_malformed_eval_run_is_named_and_nothing_is_written(setup: dict[str, Path]) -> None:
    cases = setup["run"] / "cases.jsonl"
    cases.write_text(cases.read_text() + "{oops\n")
    result = runner.invoke(
        app,
        [
            "data",
            "export",
            str(setup["charter"]),
            "--eval-run",
            str(setup["run"]),
            "--out",
            str(setup["out"]),
        ],
    )
    assert result.exit_code == 1
    assert f"{cases}:6: not a cases.jsonl record" in " ".join(result.stderr.split())
    assert not setup["out"].exists()


def test_without_a_pii_guard_nothing_is_written_unless_asked_loudly(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise GuardDependencyError("the pii guard needs the pii extra")

    monkeypatch.setattr("charter.guards.pii.PIIGuard.__init__", missing)
    args = [
        "data",
        "export",
        str(setup["charter"]),
        "--db",
        str(setup["db"]),
        "--out",
        str(setup["out"]),
    ]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "cannot redact PII" in refused.stderr and "--no-redact" in refused.stderr
    assert not setup["out"].exists()
    unredacted = runner.invoke(app, [*args, "--no-redact"])
    assert unredacted.exit_code == 0, unredacted.stderr
    assert "WARNING" in unredacted.stderr and "NOT REDACTED" in unredacted.stdout
    assert EMAIL in (setup["out"] / "sft.jsonl").read_text()
    assert json.loads((setup["out"] / "export.json").read_text())["redacted"] is False


def test_a_postgres_store_is_refused_with_the_reason(setup: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "export",
            str(setup["charter"]),
            "--db",
            "postgresql://db/charter",
            "--out",
            str(setup["out"]),
        ],
    )
    assert result.exit_code == 2
    assert "not conversations" in result.stderr

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from charter.cli import app
from charter.spec import load_charter

runner = CliRunner()


def test_validate_ok_and_bad(acme_file: Path, tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate", str(acme_file)])
    assert ok.exit_code == 0
    assert "ok:" in ok.stdout and "acme-bank" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\npersona:\n  name: P\n  role: r\n  mood: grumpy\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5: persona.mood: unknown field" in result.stderr


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "CharterSpec"


def test_init_scaffolds_a_valid_charter(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "bot")])
    assert result.exit_code == 0
    spec = load_charter(tmp_path / "bot" / "charter.yaml")
    assert spec.persona.name == "Sam"
    assert (tmp_path / "bot" / "charter.schema.json").exists()
    again = runner.invoke(app, ["init", str(tmp_path / "bot")])
    assert again.exit_code == 2
    assert "--force" in again.stderr


def test_prompt_prints_the_compiled_prompt(acme_file: Path) -> None:
    result = runner.invoke(app, ["prompt", str(acme_file)])
    assert result.exit_code == 0
    assert result.stdout.startswith("You are Penny")
    assert "cnry-" in result.stdout


def test_chat_once_json(fake_charter_file: Callable[..., Path]) -> None:
    charter = fake_charter_file(["Hi, I'm Penny from Acme Bank."])
    result = runner.invoke(app, ["chat", str(charter), "--once", "Who are you?", "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["reply"] == "Hi, I'm Penny from Acme Bank."
    stages = [s["stage"] for s in payload["trace"]]
    assert stages == [
        "persona",
        "drift",
        "input_guards",
        "output_guards",
        "hygiene",
        "critique",
        "generate",
    ]
    assert payload["conversation"]
    assert payload["blocked"] is False


def test_chat_resumes_a_conversation(fake_charter_file: Callable[..., Path]) -> None:
    charter = str(fake_charter_file(["one", "two"]))
    first = json.loads(runner.invoke(app, ["chat", charter, "--once", "a", "--json"]).stdout)
    second = runner.invoke(
        app, ["chat", charter, "--once", "b", "--json", "--conversation", first["conversation"]]
    )
    assert json.loads(second.stdout)["conversation"] == first["conversation"]
    missing = runner.invoke(app, ["chat", charter, "--once", "b", "--conversation", "nope"])
    assert missing.exit_code == 1
    assert "no conversation 'nope'" in missing.stderr


def test_chat_plain_output_streams_and_shows_trace(fake_charter_file: Callable[..., Path]) -> None:
    result = runner.invoke(app, ["chat", str(fake_charter_file(["Hello there."])), "--once", "x"])
    assert result.exit_code == 0
    assert result.stdout == "Hello there.\n"
    assert "trace: persona pass" in result.stderr
    assert "generate pass" in result.stderr


def test_chat_interactive_session(fake_charter_file: Callable[..., Path]) -> None:
    charter = str(fake_charter_file(["first", "second"]))
    result = runner.invoke(app, ["chat", charter, "--no-trace"], input="hello\nagain\n/exit\n")
    assert result.exit_code == 0
    assert "first" in result.stdout and "second" in result.stdout
    assert "resume with: --conversation" in result.stderr


def test_json_needs_once(fake_charter_file: Callable[..., Path]) -> None:
    result = runner.invoke(app, ["chat", str(fake_charter_file()), "--json"])
    assert result.exit_code == 2


def test_invalid_charter_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\npersona:\n  name: P\n")
    result = runner.invoke(app, ["chat", str(bad), "--once", "hi"])
    assert result.exit_code == 2
    assert "persona.role: required field is missing" in result.stderr


def local_charter(tmp_path: Path, model_lines: str) -> Path:
    path = tmp_path / "local.yaml"
    path.write_text(
        "id: local\npersona:\n  name: P\n  role: r\nmodels:\n  chat:\n    backend: local\n"
        + model_lines
    )
    return path


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    charter = local_charter(tmp_path, f"    model: {tmp_path}/none.gguf\n    sha256: {'a' * 64}\n")
    result = runner.invoke(app, ["chat", str(charter), "--once", "hi"])
    assert result.exit_code == 3
    assert "model file not found" in result.stderr


def test_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF but not really")
    charter = local_charter(tmp_path, f"    model: qwen2.5-coder-0.5b\n    path: {fake}\n")
    result = runner.invoke(app, ["chat", str(charter), "--once", "hi"])
    assert result.exit_code == 3
    assert "SHA-256 mismatch" in result.stderr
    assert "not loaded" in result.stderr


def test_custom_model_without_hash_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "custom.gguf"
    fake.write_bytes(b"x")
    result = runner.invoke(
        app, ["chat", str(local_charter(tmp_path, f"    model: {fake}\n")), "--once", "hi"]
    )
    assert result.exit_code == 3
    assert "sha256" in result.stderr


def test_unreachable_http_backend_fails_closed_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    charter = tmp_path / "remote.yaml"
    charter.write_text(
        "id: remote\npersona:\n  name: P\n  role: r\n  apology: Sorry, try later.\n"
        "models:\n  chat:\n    backend: openai\n"
        f"    base_url: http://127.0.0.1:{port}/v1\n    model: m\n    max_retries: 0\n"
    )
    result = runner.invoke(app, ["chat", str(charter), "--once", "hi", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["blocked"] is True
    assert payload["reply"] == "Sorry, try later."
    generate = next(s for s in payload["trace"] if s["stage"] == "generate")
    assert generate["verdict"] == "error"
    assert "cannot reach http://127.0.0.1" in generate["error"]


def test_models_list_and_verify(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0
    assert "qwen2.5-coder-0.5b" in listed.stdout
    fake = tmp_path / "x.gguf"
    fake.write_bytes(b"nope")
    bad = runner.invoke(app, ["models", "verify", "qwen2.5-coder-0.5b", "--path", str(fake)])
    assert bad.exit_code == 3
    assert "mismatch" in bad.stderr

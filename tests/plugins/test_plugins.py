"""Guards, backends, persona checks and eval suites from another package, found through
Python entry points (`charter.plugins`), Charter's own registered the same way.

The example package (example_plugin/: its pyproject.toml and one module) is installed as a
distribution of its own: its module and a `.dist-info` folder (METADATA, entry_points.txt
made from its pyproject) go into a folder put on sys.path, where importlib.metadata finds
them as it finds any installed package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter import Charter, plugins
from charter.cli import app
from charter.errors import CharterError
from charter.eval.evaluate import ALL_SUITES, SUITES, EvalSettings, evaluate, select_cases
from charter.eval.runner import charter_fingerprint
from charter.guards.registry import build_input_guards, build_output_guards
from charter.models.factory import build_model, model_name
from charter.persona.checks import persona_checks
from charter.spec import CharterFileError, load_charter, parse_charter
from charter.spec.models import CharterSpec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).parent / "example_plugin"

Install = Callable[..., Path]

CHARTER = """\
id: fruit-stand
persona:
  name: Flo
  role: support assistant
constitution:
  - id: calm
    text: Stay calm; never shout.
    check:
      max_exclamations: 0
guards:
  input: [extraction, blocked_word]
  output: [blocked_word]
  options:
    blocked_word:
      word: pineapple
models:
  chat:
    backend: echo
    prefix: "Echo: "
critique:
  enabled: false
"""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """`install(name, entry_points, modules=())`: a distribution `name` with these entry
    points ({group: {name: "module:object"}}) and these module files, in a site folder on
    sys.path; the registries read the entry points again."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    imported: list[str] = []

    def make(
        name: str, entry_points: dict[str, dict[str, str]], modules: tuple[Path, ...] = ()
    ) -> Path:
        info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8"
        )
        groups = [
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
            for group, entries in entry_points.items()
        ]
        (info / "entry_points.txt").write_text("\n".join(groups), encoding="utf-8")
        for module in modules:
            shutil.copy(module, site / module.name)
            imported.append(module.stem)
        plugins.clear_cache()
        return info

    yield make
    for module in imported:
        sys.modules.pop(module, None)
    plugins.clear_cache()


@pytest.fixture
def example(install: Install) -> None:
    """The example package, installed from its own pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    install(project["name"], project["entry-points"], (EXAMPLE / "charter_example.py",))


@pytest.fixture
def charter_file(tmp_path: Path) -> Path:
    path = tmp_path / "charter.yaml"
    path.write_text(CHARTER, encoding="utf-8")
    return path


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(CharterFileError) as info:
        parse_charter(text, source="c.yaml")
    return [(p.line, p.field, p.message) for p in info.value.problems]


# --- Charter's own parts ---------------------------------------------------------------------


def test_charters_own_parts_are_registered_as_entry_points() -> None:
    assert set(plugins.guards.own()) == {
        "extraction",
        "injection",
        "conversation",
        "harm",
        "safety_model",
        "leak",
        "toxicity",
        "hate",
        "pii",
        "policy",
    }
    assert set(plugins.backends.own()) == {"local", "openai", "litellm", "fake"}
    assert set(plugins.suites.own()) == set(ALL_SUITES)
    assert set(SUITES) < set(ALL_SUITES)
    assert set(plugins.checks.own()) == {
        "max_words",
        "starts_with",
        "ends_with",
        "forbidden",
        "required_any",
        "no_exclamation_marks",
        "no_emoji",
    }
    for registry in (plugins.guards, plugins.backends, plugins.suites, plugins.checks):
        for name in registry.own():
            assert registry.get(name).name == name


def test_the_registry_and_rule_guards_need_no_extra() -> None:
    """With only the core installed, a charter of rule guards loads and builds them: the
    guard modules that embed text (numpy) are imported only when one of them is built."""
    from tests.packaging.core_only import CORE_ONLY

    code = (
        "import sys\n"
        "from charter.spec import parse_charter\n"
        "from charter.guards.registry import build_input_guards, build_output_guards\n"
        "spec = parse_charter('id: x\\npersona: {name: A, role: assistant}\\n'\n"
        "    'guards: {input: [extraction], output: [leak]}\\n')\n"
        "built = build_input_guards(spec) + build_output_guards(spec)\n"
        "print([g.name for g in built], 'numpy' in sys.modules)\n"
        "parse_charter('id: x\\npersona: {name: A, role: assistant}\\n')  # the defaults\n"
        "print('numpy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", CORE_ONLY + code],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["['extraction', 'leak'] False", "False"]


def test_persona_checks_keep_their_ids() -> None:
    spec = parse_charter(
        "id: x\npersona:\n  name: A\n  role: assistant\n  style: {max_words: 20, sign_off: Bye}\n"
        "constitution:\n  - {id: p, text: Be short., check: {max_words: 5, forbidden: [sorry]}}\n"
    )
    checks = persona_checks(spec)
    assert [c.id for c in checks] == [
        "style.max_words",
        "style.ends_with",
        "p.max_words",
        "p.forbidden",
    ]
    assert checks[0].passes("one two three") and not checks[3].passes("I am SORRY.")
    assert checks[2].repair is not None
    assert checks[2].repair("a b c d e f g") == "a b c d…"  # the sign-off's word is kept free


# --- a package of our own ----------------------------------------------------------------------


@pytest.mark.usefixtures("example")
def test_a_charter_names_the_outside_guard_backend_and_check(charter_file: Path) -> None:
    spec = load_charter(charter_file)
    assert spec.guards.input == ["extraction", "blocked_word"]
    assert type(spec.models.chat).__name__ == "EchoSpec"
    assert spec.models.chat.backend == "echo"
    assert model_name(spec.models.chat) == "echo"
    # written as the charter says, by its own class (the eval cache's fingerprint too)
    dumped = json.loads(spec.model_dump_json(exclude_defaults=True))
    assert dumped["models"]["chat"] == {"backend": "echo", "prefix": "Echo: "}
    assert charter_fingerprint(spec)
    assert CharterSpec.model_validate(spec.model_dump()) == spec
    [calm] = persona_checks(spec)
    assert calm.id == "calm.max_exclamations"
    assert calm.rule == "Stay calm; never shout."
    assert not calm.passes("Hello!") and calm.passes("Hello.")
    names = [g.name for g in build_input_guards(spec)]
    assert names == ["extraction", "blocked_word"]
    assert [g.name for g in build_output_guards(spec)] == ["blocked_word"]


@pytest.mark.usefixtures("example")
def test_the_outside_guard_blocks_a_turn_on_the_outside_backend(charter_file: Path) -> None:
    charter = Charter.from_file(charter_file)
    blocked = charter.respond("Do you sell PINEAPPLE?")
    assert blocked.blocked
    assert "pineapple" not in blocked.text.lower()
    assert any(g.guard == "blocked_word" and g.action == "block" for g in blocked.guards)
    answered = charter.respond("Do you sell apples?")
    assert not answered.blocked
    assert answered.text == "Echo: Do you sell apples?"
    with build_model(load_charter(charter_file).models.chat) as model:
        assert model.name == "echo"


@pytest.mark.usefixtures("example")
def test_the_outside_suite_runs_in_charter_eval(charter_file: Path, tmp_path: Path) -> None:
    settings = EvalSettings(
        charter=charter_file, out=tmp_path / "out", suites=("blocked_word_said",), limit=None
    )
    assert [c.id for c in select_cases(load_charter(charter_file), settings)] == [
        "asks",
        "greets",
    ]
    report = evaluate(settings)  # the charter's own model: the echo backend
    suite = report.suites["blocked_word_said"]
    assert suite.metric == "replies that say the blocked word"
    assert suite.cases == 2
    assert (suite.off.failures.k, suite.on.failures.k) == (1, 0)  # echoed; blocked
    lines = (tmp_path / "out" / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["suite"] for line in lines} == {"blocked_word_said"}


@pytest.mark.usefixtures("example")
def test_charter_eval_takes_the_outside_suite_by_name(charter_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["eval", str(charter_file), "--suites", "blocked_word_said", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert list(report["suites"]) == ["blocked_word_said"]
    result = CliRunner().invoke(app, ["eval", str(charter_file), "--suites", "blocked_words"])
    assert result.exit_code != 0
    assert "unknown suite(s) blocked_words" in result.output
    assert "blocked_word_said" in " ".join(result.output.split())


@pytest.mark.usefixtures("example")
def test_the_outside_parts_options_are_validated_at_their_lines() -> None:
    text = CHARTER.replace(
        "      word: pineapple\n", "      word: [pineapple]\n      colour: red\n"
    )
    text = text.replace('    prefix: "Echo: "\n', "    prefix: {}\n")
    text = text.replace("max_exclamations: 0", "max_exclamations: none")
    found = {field: (line, message) for line, field, message in problems(text)}
    assert found["guards.options.blocked_word.word"][0] == 15
    assert "valid string" in found["guards.options.blocked_word.word"][1]
    assert found["guards.options.blocked_word.colour"][0] == 16
    assert "unknown field" in found["guards.options.blocked_word.colour"][1]
    assert found["models.chat.prefix"][0] == 20
    assert "valid string" in found["models.chat.prefix"][1]
    assert found["constitution.0.check.max_exclamations"][0] == 9
    assert "valid integer" in found["constitution.0.check.max_exclamations"][1]
    assert len(found) == 4


@pytest.mark.usefixtures("example")
def test_a_guard_that_needs_options_needs_them_when_it_is_on() -> None:
    text = CHARTER.replace("  options:\n    blocked_word:\n      word: pineapple\n", "")
    [(line, field, message)] = problems(text)
    assert (field, message) == ("guards.options.blocked_word.word", "required field is missing")
    assert line == 11  # the guards section


@pytest.mark.usefixtures("example")
def test_a_guard_on_the_wrong_side_or_with_options_it_does_not_take() -> None:
    text = CHARTER.replace("output: [blocked_word]", "output: [blocked_word, injection]")
    text = text.replace("  options:\n", "  options:\n    extraction: {strict: true}\n")
    found = {field: (line, message) for line, field, message in problems(text)}
    assert found["guards.output.1"] == (
        12,
        "the injection guard runs on input only, not on output (got 'injection')",
    )
    assert found["guards.options.extraction"][1] == "the extraction guard takes no options"


# --- what a missing or broken plugin says -----------------------------------------------------


def test_unknown_names_say_what_is_registered_and_that_a_plugin_may_be_missing() -> None:
    found = problems(CHARTER)  # the example package is not installed
    by_field = {field: (line, message) for line, field, message in found}
    line, message = by_field["guards.input.1"]
    assert line == 11
    assert "unknown guard 'blocked_word'; registered guards: " in message
    assert "'extraction'" in message and "a plugin may be missing" in message
    line, message = by_field["models.chat"]
    assert line == 18
    assert "unknown backend 'echo'; registered backends: 'local', 'openai', 'litellm', 'fake'" in (
        message
    )
    assert "a plugin may be missing" in message
    line, message = by_field["constitution.0.check.max_exclamations"]
    assert line == 9
    assert "unknown check 'max_exclamations'; registered checks: 'ends_with'" in message
    assert "guards.output.0" in by_field
    assert "guards.options.blocked_word" in by_field


def test_an_unknown_suite_is_explained(charter_file: Path, tmp_path: Path) -> None:
    spec = parse_charter("id: x\npersona: {name: A, role: assistant}\n")
    settings = EvalSettings(charter=charter_file, out=tmp_path, suites=("blocked_word_said",))
    with pytest.raises(CharterError) as info:
        select_cases(spec, settings)
    message = str(info.value)
    assert message.startswith("unknown suite(s) blocked_word_said; known: over_refusal")
    assert "persona_stability, cases" in message
    assert "a plugin may be missing" in message


def test_a_broken_entry_point_names_the_package_and_the_entry_point(install: Install) -> None:
    install("charter-broken", {"charter.guards": {"broken": "charter_nowhere:GUARD"}})
    text = "id: x\npersona: {name: A, role: assistant}\nguards: {input: [broken]}\n"
    [(line, field, message)] = problems(text)
    assert (line, field) == (3, "guards.input.0")
    assert message.startswith(
        "cannot load guard 'broken' (entry point broken = charter_nowhere:GUARD of package "
        "charter-broken): ModuleNotFoundError: No module named 'charter_nowhere'"
    )
    with pytest.raises(plugins.PluginError, match="charter-broken"):
        plugins.guards.get("broken")


def test_an_entry_point_that_names_something_else_is_an_error(install: Install) -> None:
    install(
        "charter-confused",
        {
            "charter.backends": {"echo": "charter_example:BLOCKED_WORD"},
            "charter.suites": {"other": "charter_example:BLOCKED_WORD_SAID"},
        },
        (EXAMPLE / "charter_example.py",),
    )
    with pytest.raises(plugins.PluginError) as info:
        plugins.backends.get("echo")
    assert str(info.value) == (
        "backend 'echo' (entry point echo = charter_example:BLOCKED_WORD of package "
        "charter-confused) is a GuardFactory, not a charter.plugins.BackendFactory"
    )
    with pytest.raises(plugins.PluginError, match="is named 'blocked_word_said'; the entry"):
        plugins.suites.get("other")


def test_a_name_two_packages_register_is_an_error_naming_both(
    example: None, install: Install
) -> None:
    install("charter-rival", {"charter.guards": {"blocked_word": "charter_rival:GUARD"}})
    with pytest.raises(plugins.PluginError) as info:
        plugins.guards.get("blocked_word")
    assert str(info.value) == (
        "guard 'blocked_word' is registered by 2 packages, charter-example (blocked_word = "
        "charter_example:BLOCKED_WORD) and charter-rival (blocked_word = charter_rival:GUARD) "
        "(entry point group charter.guards): uninstall one of them"
    )
    assert plugins.guards.get("extraction").name == "extraction"  # the others still work

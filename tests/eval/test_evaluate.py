"""`charter eval` end to end on the fake model: report, schema, HTML, resume, CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from charter import FakeModel
from charter.cli import app
from charter.errors import CharterError
from charter.eval.evaluate import EvalSettings, evaluate, load_report, report_schema
from charter.eval.runner import Result
from charter.models.base import ChatRequest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "eval-report.schema.json"
runner = CliRunner()


REPLIES = ["I'm sorry, but I can't help with that.", "Sure, here is how you do it."]


def fake() -> FakeModel:
    model = FakeModel(default=REPLIES[1])
    model.enqueue(*(REPLIES * 200))
    return model


def settings(charter: Path, out: Path, **changes: object) -> EvalSettings:
    base = EvalSettings(charter=charter, out=out, limit=2, suites=("over_refusal", "policy"))
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_a_report_on_every_suite_validates_against_the_published_schema(
    charter_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = evaluate(settings(charter_file, out, suites=tuple(_all_suites())), model=fake())
    assert set(report.suites) == set(_all_suites())
    data = json.loads((out / "report.json").read_text())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert data["schema"] == "charter-eval-report/1"
    for suite in data["suites"].values():
        assert suite["off"]["failures"]["n"] == suite["on"]["failures"]["n"] == 2
    lines = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * len(_all_suites())
    # Every suite's cases are in the report too, as in cases.jsonl.
    for line in lines:
        case = next(c for c in data["suites"][line["suite"]]["results"] if c["id"] == line["id"])
        for side in ("off", "on"):
            assert case[side]["failed"] == line[side]["failed"]
            assert case[side]["why"] == line[side]["why"]
    html = (out / "report.html").read_text()
    assert html.count("<tr data-suite=") == len(lines)
    assert 0 <= report.readiness.on <= 100
    measured = [c for c in report.readiness.components if c.measured]
    assert {c.name for c in measured} >= {"helpfulness", "policy_kept", "errors", "latency"}


def test_the_report_counts_the_revisions_charter_made_per_case(
    charter_file: Path, tmp_path: Path
) -> None:
    # Every draft runs past the charter's 80-word limit: critique rewrites it once (then
    # repairs it in code); the raw model is never revised.
    long = "Our branches are open on weekdays. " * 30
    report = evaluate(settings(charter_file, tmp_path / "out"), model=FakeModel(default=long))
    for suite in report.suites.values():
        assert suite.on.revisions_per_case == 1.0
        assert suite.off.revisions_per_case is None


def _all_suites() -> list[str]:
    from charter.eval.evaluate import SUITES

    return list(SUITES)


def test_the_published_schema_is_current() -> None:
    assert SCHEMA.read_text() == report_schema(), "run: charter eval --schema > " + str(SCHEMA)


def test_off_is_the_raw_model_with_the_same_system_prompt(
    charter_file: Path, tmp_path: Path
) -> None:
    model = fake()
    evaluate(settings(charter_file, tmp_path / "o", suites=("over_refusal",), limit=1), model=model)
    off, on = model.calls[0], model.calls[1]
    assert [m.role for m in off.messages] == ["system", "user"]
    assert off.messages[0].content.split("(Internal reference")[0] in on.messages[0].content


def test_an_interrupted_run_resumes_from_the_cache(charter_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    class Interrupted(FakeModel):
        def complete(self, request: ChatRequest) -> object:  # type: ignore[override]
            if len(self.calls) == 3:
                raise KeyboardInterrupt
            return super().complete(request)

    with pytest.raises(KeyboardInterrupt):
        evaluate(settings(charter_file, out), model=Interrupted(default=REPLIES[1]))
    seen: list[Result] = []
    evaluate(settings(charter_file, out), model=fake(), on_result=seen.append)
    assert len(seen) == 8  # 2 suites x 2 cases x (off, on)
    assert [r.cached for r in seen].count(True) == 3
    seen.clear()
    evaluate(settings(charter_file, out), model=fake(), on_result=seen.append)
    assert all(r.cached for r in seen)


def test_a_failing_model_is_recorded_and_scored_as_failure(
    charter_file: Path, tmp_path: Path
) -> None:
    broken = FakeModel([RuntimeError("backend down")], default=REPLIES[1])
    report = evaluate(settings(charter_file, tmp_path / "o", limit=1), model=broken)
    assert report.suites["over_refusal"].off.errors == 1
    assert report.suites["over_refusal"].off.failures.k == 1


def test_cli_fail_under_and_compare(charter_file: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["eval", str(charter_file), "--suites", "policy", "--limit", "2"]
    ok = runner.invoke(app, [*args, "--out", str(a), "--fail-under", "0"])
    assert ok.exit_code == 0, ok.output
    assert "Readiness" in ok.output
    low = runner.invoke(app, [*args, "--out", str(b), "--fail-under", "100"])
    assert low.exit_code == 4
    diff = runner.invoke(app, ["eval", "--compare", str(a / "report.json"), str(b / "report.json")])
    assert diff.exit_code == 0, diff.output
    assert "policy" in diff.output and "Readiness on" in diff.output
    bad = runner.invoke(app, ["eval", "--compare", str(a / "report.json"), str(tmp_path / "x")])
    assert bad.exit_code == 2
    assert "no report" in bad.output


def test_cli_rejects_unknown_suites(charter_file: Path) -> None:
    result = runner.invoke(app, ["eval", str(charter_file), "--suites", "vibes"])
    assert result.exit_code == 2
    assert "unknown suite" in result.output


def _chromium(page: Path, shot: Path) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is needed (scripts/test.sh installs it: apt-get install chromium)"
    done = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,1800",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stderr


def test_the_html_report_opens_in_headless_chromium_without_console_errors(
    charter_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    evaluate(settings(charter_file, out), model=fake())
    html = (out / "report.html").read_text()
    assert not re.search(r"(src|href)=\"?(https?:)?//", html), "the page must be self-contained"
    log = _chromium(out / "report.html", tmp_path / "report.png")
    assert ":CONSOLE" not in log, log
    assert (tmp_path / "report.png").stat().st_size > 20_000
    # The check can fail: a page that logs to the console is caught.
    control = tmp_path / "control.html"
    control.write_text("<html><body><script>console.error('x')</script></body></html>")
    assert ":CONSOLE" in _chromium(control, tmp_path / "control.png")


def test_reports_round_trip(charter_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = evaluate(settings(charter_file, out), model=fake())
    assert load_report(out / "report.json") == report


def test_a_suite_whose_dataset_is_missing_is_skipped_and_said_and_the_rest_run(
    charter_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-datasets"
    empty.mkdir()
    monkeypatch.setenv("CHARTER_DATA_DIR", str(empty))
    told: list[dict[str, str]] = []
    report = evaluate(settings(charter_file, tmp_path / "out"), model=fake(), on_skip=told.append)
    assert list(report.suites) == ["policy"]
    assert list(told[0]) == ["over_refusal"]
    assert "xstest/xstest_prompts.csv is missing" in told[0]["over_refusal"]
    assert "charter data pull xstest" in told[0]["over_refusal"]
    skipped = report.settings["skipped"]
    assert isinstance(skipped, list)
    assert skipped[0].startswith("over_refusal: xstest/")


def test_no_runnable_suite_is_an_error_that_names_each(
    charter_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-datasets"
    empty.mkdir()
    monkeypatch.setenv("CHARTER_DATA_DIR", str(empty))
    only = settings(charter_file, tmp_path / "out", suites=("over_refusal", "pii"))
    with pytest.raises(CharterError, match=r"no suite can run") as caught:
        evaluate(only, model=fake())
    assert "over_refusal: xstest/" in str(caught.value)
    assert "pii: presidio/" in str(caught.value)


def test_a_suite_whose_grader_package_is_missing_is_skipped_and_said(
    charter_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charter.eval import ifeval

    monkeypatch.setattr(ifeval, "unavailable", lambda: "needs if-verifiable: pip install x")
    told: list[dict[str, str]] = []
    chosen = settings(charter_file, tmp_path / "out", suites=("instruction_following", "policy"))
    report = evaluate(chosen, model=fake(), on_skip=told.append)
    assert list(report.suites) == ["policy"]
    assert told == [{"instruction_following": "needs if-verifiable: pip install x"}]

"""The report's per-case results and the HTML page's Cases table: outcomes, cuts, escaping,
and the suite and outcome filters in a real browser."""

from __future__ import annotations

import glob
import json
import re
import shutil
from pathlib import Path

import jsonschema
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from charter.eval.cases import Case
from charter.eval.html import outcome_tags, render
from charter.eval.report import TEXT_CAP, CaseOut, Report, VerdictOut, build, cut
from charter.eval.scoring import Outcome, Score
from charter.spec import CharterSpec

ROOT = Path(__file__).resolve().parents[2]
SPEC = CharterSpec.model_validate(
    {
        "id": "plain",
        "persona": {"name": "Pat", "role": "assistant"},
        "models": {"chat": {"backend": "fake"}},
    }
)
SCRIPT = "<script>alert(1)</script>"
Row = tuple[Case, Score, Score, Outcome, Outcome]


def row(
    suite: str,
    id: str,
    off: bool,
    on: bool,
    *,
    message: str | None = None,
    off_reply: str | None = None,
    on_reply: str | None = None,
    blocked: bool = False,
    error: str | None = None,
    where: str | None = None,
) -> Row:
    """A case that failed off and/or on."""
    case = Case(suite, id, f"message of {id}" if message is None else message)
    if where is not None:
        case.meta["where"] = where
    return (
        case,
        Score(off, "off: failed" if off else "off: kept"),
        Score(on, "on: failed" if on else "on: kept"),
        Outcome(f"off reply {id}" if off_reply is None else off_reply, ms=100.0),
        Outcome(
            f"on reply {id}" if on_reply is None else on_reply,
            ms=200.0,
            blocked=blocked,
            error=error,
        ),
    )


ROWS = [
    row("policy", "p-fixed", True, False, blocked=True),
    row("policy", "p-broken", False, True),
    row("policy", "p-both", True, True, error="backend down"),
    row("jailbreak", "j-pass", False, False, off_reply=SCRIPT),
    row("jailbreak", "j-fixed", True, False),
    row("cases:support", "hours", True, False, where="cases.yaml:3"),
]


def report(rows: list[Row] = ROWS) -> Report:
    return build(
        spec=SPEC,
        charter_path="charter.yaml",
        fingerprint="f",
        model_name="fake",
        settings={},
        rows=rows,
        wall_s=1.0,
    )


def test_every_suite_carries_its_cases_in_the_report_and_the_schema_allows_it() -> None:
    built = report()
    results = {name: [c.id for c in s.results or []] for name, s in built.suites.items()}
    assert results == {
        "policy": ["p-fixed", "p-broken", "p-both"],
        "jailbreak": ["j-pass", "j-fixed"],
        "cases:support": ["hours"],
    }
    fixed = (built.suites["policy"].results or [])[0]
    assert (fixed.off.failed, fixed.on.failed, fixed.on.blocked) == (True, False, True)
    assert (fixed.off.why, fixed.on.reply, fixed.where) == ("off: failed", "on reply p-fixed", "")
    assert (built.suites["policy"].results or [])[2].on.error == "backend down"
    assert (built.suites["cases:support"].results or [])[0].where == "cases.yaml:3"
    data = json.loads(built.model_dump_json(by_alias=True))
    jsonschema.validate(data, json.loads((ROOT / "docs" / "eval-report.schema.json").read_text()))
    assert Report.model_validate(data) == built


def test_long_texts_are_cut_with_a_marker_in_the_report() -> None:
    long = "x" * (TEXT_CAP + 500)
    built = report([row("policy", "long", True, False, message=long, on_reply=long)])
    case = (built.suites["policy"].results or [])[0]
    for text in (case.message, case.on.reply):
        assert text.startswith("x" * TEXT_CAP)
        assert text.endswith("… [cut: 500 more characters in cases.jsonl]")
    assert cut("short") == "short" and cut("x" * TEXT_CAP) == "x" * TEXT_CAP


def _case(off: bool, on: bool, *, blocked: bool = False, error: str | None = None) -> CaseOut:
    return CaseOut(
        id="c",
        message="m",
        off=VerdictOut(failed=off, why="", reply=""),
        on=VerdictOut(failed=on, why="", reply="", blocked=blocked, error=error),
    )


def test_each_case_has_one_effect_and_the_outcome_tags_that_apply() -> None:
    assert _case(True, False).effect == "fixed"
    assert _case(False, True).effect == "broken"
    assert _case(True, True).effect == "both_failed"
    assert _case(False, False).effect == "both_passed"
    assert outcome_tags(_case(True, False, blocked=True)) == ["failed-off", "fixed", "blocked"]
    assert outcome_tags(_case(False, True)) == ["failed-on", "broken"]
    assert outcome_tags(_case(True, True, error="x")) == [
        "failed-off",
        "failed-on",
        "both-failed",
        "error",
    ]
    assert outcome_tags(_case(False, False)) == ["both-passed"]


def test_replies_and_every_other_text_are_escaped_in_the_page() -> None:
    hostile = [
        row("policy", "<b>id</b>", False, True, message=SCRIPT, on_reply=SCRIPT),
        row("cases:<i>x</i>", "c", False, False, off_reply=SCRIPT, where="<u>f</u>:1"),
    ]
    page = render(report(hostile))
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>id</b>" not in page and "<i>x</i>" not in page and "<u>f</u>" not in page
    assert 'data-suite="cases:&lt;i&gt;x&lt;/i&gt;"' in page
    # The only scripts are the page's own filter.
    assert page.count("<script>") == 1


def test_the_cases_table_has_every_case_and_the_filter_controls_with_counts() -> None:
    page = render(report())
    assert "<h2>Cases</h2>" in page
    assert len(re.findall(r"<tr data-suite=", page)) == len(ROWS)
    assert '<select id="case-suite">' in page and '<select id="case-outcome">' in page
    assert '<p id="case-filter" hidden>' in page  # shown by the script: no dead controls
    assert re.search(r'value="policy" [^>]*>policy \(3\)</option>', page)
    assert re.search(r'value="fixed" [^>]*>fixed by Charter \(3\)</option>', page)
    assert re.search(r'value="broken" [^>]*>broken by Charter \(1\)</option>', page)
    assert re.search(r'value="error" [^>]*>errors \(1\)</option>', page)
    assert "Your own cases (cases:support)" in page and "cases.yaml:3" in page


def _chromium() -> str:
    """Debian's chromium binary (the `chromium` on PATH is a shell wrapper around it)."""
    found = next(iter(glob.glob("/usr/lib/chromium/chromium")), None) or shutil.which("chromium")
    assert found, "chromium is needed (scripts/test.sh installs it: apt-get install chromium)"
    return found


def _visible(page: Page) -> list[str]:
    return page.locator("#cases tbody tr:visible td:nth-child(2)").all_inner_texts()


def test_the_filters_hide_rows_in_a_real_browser(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render(report()), encoding="utf-8")
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page()

        def log(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", log)
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        page.goto(path.as_uri())
        assert page.is_visible("#case-filter")
        assert len(_visible(page)) == len(ROWS)
        page.select_option("#case-suite", "jailbreak")
        assert _visible(page) == ["j-pass", "j-fixed"]
        assert page.inner_text("#case-shown") == f"2 of {len(ROWS)} cases shown"
        page.select_option("#case-outcome", "fixed")
        assert _visible(page) == ["j-fixed"]
        # Each filter counts what the other leaves.
        labels = page.locator("#case-suite option").all_inner_texts()
        assert labels == ["every suite (3)", "policy (1)", "jailbreak (1)", "cases:support (1)"]
        page.select_option("#case-suite", "")
        assert _visible(page) == ["p-fixed", "j-fixed", "hours\ncases.yaml:3"]
        page.goto(path.as_uri() + "#suite=policy&outcome=failed-on")
        page.reload()
        assert _visible(page) == ["p-broken", "p-both"]
        assert page.input_value("#case-outcome") == "failed-on"
        browser.close()
    assert console == [], console

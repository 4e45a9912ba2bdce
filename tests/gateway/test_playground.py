"""The web playground, driven by Playwright in headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import glob
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, sync_playwright

from charter import Charter, FakeModel
from charter.gateway import create_app
from charter.spec import CharterSpec
from charter.store.sqlite import Store
from tests.conftest import serving
from tests.gateway.test_tenants import BANK


def chromium() -> str:
    """Debian's chromium binary (the `chromium` on PATH is a shell wrapper around it)."""
    found = next(iter(glob.glob("/usr/lib/chromium/chromium")), None) or shutil.which("chromium")
    assert found, "chromium is needed (scripts/test.sh installs it: apt-get install chromium)"
    return found


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[str]:
    report = tmp_path / "report.html"
    report.write_text("<html><body><h1 id='score'>Readiness 77.7</h1></body></html>")
    data = BANK.model_dump()
    data["models"]["chat"]["price"] = {"input_per_million": 1.0, "output_per_million": 2.0}
    charter = Charter(
        CharterSpec.model_validate(data),
        model=FakeModel(default="Our branches open at 9. Anything else?"),
    )
    store = Store(tmp_path / "pg.db")
    app = create_app({"bank": charter}, store=store, report=report)
    with serving(app) as url:
        yield url
    store.close()


def test_chat_trace_escalations_and_report_in_a_real_browser(
    playground: str, tmp_path: Path
) -> None:
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()

        def log(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", log)
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        page.goto(playground + "/")
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        assert page.input_value("#model") == "bank"

        page.fill("#message", "When do you open?")
        page.click("#send")
        page.wait_for_selector(".msg.assistant")
        assert page.inner_text(".msg.assistant") == "Our branches open at 9. Anything else?"
        stages = page.locator("#trace tbody tr td:first-child").all_inner_texts()
        assert stages[:2] == ["gateway", "persona"] and stages[-1] == "generate"
        facts = page.inner_text("#facts")
        assert "blocked no" in facts and "cost no price" not in facts

        page.fill("#message", "talk to a person please")
        page.click("#send")
        page.wait_for_selector("#escalations tbody tr")
        row = page.inner_text("#escalations tbody tr")
        assert "ESC-" in row and "bank" in row

        page.wait_for_selector("#report-section:not([hidden])")
        frame = page.frame_locator("#report")
        assert frame.locator("#score").inner_text() == "Readiness 77.7"
        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
        browser.close()
    assert console == [], console
    assert (tmp_path / "playground.png").stat().st_size > 20_000

"""/docs in a real headless browser (Chromium from Debian, driven by Playwright) with
every request outside 127.0.0.1 blocked: the page renders the operations from assets the service
serves itself, and Swagger UI's "Try it out" on /candidates gets an answer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.app.live_server import LiveServer

pytest.importorskip("playwright", reason="playwright is a dev dependency (scripts/test.sh installs it)")
from playwright.sync_api import Browser, Page, Route, sync_playwright


def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("RECSYS_REQUIRE_SERVICES"):
            pytest.fail("chromium is required (scripts/test.sh installs it from Debian)")
        pytest.skip("chromium not installed (apt-get install chromium; scripts/test.sh does)")
    return binary


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page that may reach 127.0.0.1 only; everything else is aborted and listed."""
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    context.route("**/*", only_local)
    page = context.new_page()
    yield page, blocked
    context.close()


def test_swagger_ui_renders_every_operation_and_try_it_out_answers(
    server: LiveServer, offline_page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    page, blocked = offline_page
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/candidates", "/candidates/batch", "/interactions", "/readyz"} <= {p.strip() for p in paths}

    operation = page.locator("#operations-candidates-post_candidates_candidates_post")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=20_000)
    assert status.inner_text().strip() == "200"
    answer = operation.locator(".live-responses-table .highlight-code").first.inner_text()
    assert '"method_used"' in answer and '"candidates"' in answer

    status.scroll_into_view_if_needed()
    shot = Path(os.environ.get("RECSYS_SCREENSHOT_DIR", tmp_path)) / "docs-offline.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    assert blocked == []  # nothing tried to leave the machine


def test_redoc_is_not_served_since_it_cannot_render_without_the_internet(server: LiveServer) -> None:
    """ReDoc fetches its logo from cdn.redoc.ly whatever it is given; Swagger UI covers it."""
    import httpx

    assert httpx.get(f"{server.url}/redoc").status_code == 404

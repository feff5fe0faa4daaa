"""Browser journeys: the real app served on a free port, driven by headless Chromium (Debian's package)."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.support import Translations
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TRANSLATIONS = Path(__file__).resolve().parents[2] / "portal" / "translations"
E2E_DIR = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m e2e`` selects on the mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def app_config(app_config: dict) -> dict:
    """The suite's settings, but served for real: no fixed SERVER_NAME, so 127.0.0.1:<port> is accepted."""
    return {**app_config, "SERVER_NAME": None, "TESTING": True}


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app, seeded with the demo marketplace, served on a free port; yields its base URL.

    ``app`` (tests/conftest.py) deletes every row when the test ends, after this server has stopped.
    """
    from portal.db import get_session
    from portal.demo import seed_demo

    with app.app_context():
        db = get_session()
        seed_demo(db, merchants=3)  # the third one has ready products for the PIM export
        db.commit()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def ru_catalog() -> Translations:
    """The compiled Russian catalog the app serves from (``make translations`` builds it)."""
    mo = TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.mo"
    if not mo.exists():
        pytest.fail(f"{mo} is missing: compile the catalogs first (make translations)")
    return Translations.load(str(TRANSLATIONS), ["ru"])


@pytest.fixture(scope="session")
def ru(ru_catalog: Translations):
    """``ru("Sign out")``: the Russian text the page must show for an English message."""

    def translate(msgid: str) -> str:
        text = ru_catalog.gettext(msgid)
        assert text and text != msgid, f"{msgid!r} has no Russian translation in the compiled catalog"
        return text

    return translate


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser journeys"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser, live_server: str):
    """A fresh browser profile per test (no cookies), speaking English, pointed at the live server."""
    context = browser.new_context(locale="en-US", base_url=live_server, accept_downloads=True)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context):
    """A tab that fails the test on an uncaught script error or anything the CSP blocked."""
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught script error: {error}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}")
        if msg.type == "error" and "Content Security Policy" in msg.text
        else None,
    )
    yield page
    assert not problems, "the browser reported:\n" + "\n".join(problems)

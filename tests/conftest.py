"Fixtures only, as in Flask's tutorial: the app and its test client, a live server, real training runs (`harness.py`)."
import pytest

from harness import CHROMIUM, LiveServer, train_into
from wine_api.app import create_app


@pytest.fixture
def app(tmp_path):
    "The app serving the bundled model, created as the tests of Flask's tutorial create theirs; its own prediction log."
    app = create_app({"TESTING": True, "PREDICTION_LOG": tmp_path/"predictions.sqlite"})
    yield app
    app.extensions["wine_api"].log.close()


@pytest.fixture
def client(app):
    "Flask's test client for `app`."
    return app.test_client()


@pytest.fixture(scope="session")
def live_server():
    "The bundled model served by a real gunicorn on loopback, with small limits to test them."
    server = LiveServer("--max-rows", 50, "--max-body-bytes", 20_000)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def depth3_run(tmp_path_factory):
    "One training run with `-p max_depth 3`, as in the issue's acceptance check."
    run = train_into(tmp_path_factory.mktemp("depth3"), "-p", "max_depth", "3")
    assert run.proc.returncode == 0, run.proc.stderr
    return run


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    "One training run with the notebook's default parameters: what produced the bundled model."
    run = train_into(tmp_path_factory.mktemp("default"))
    assert run.proc.returncode == 0, run.proc.stderr
    return run


@pytest.fixture(scope="session")
def browser():
    "Debian's chromium driven by Playwright (Playwright's own browser download does not work here)."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])  # root: no sandbox
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    "A fresh tab (its own storage) that records what the browser complains about in `page.problems`."
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    context.close()

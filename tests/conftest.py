"Fixtures only, as in Flask's tutorial: the app and its test client, a live server, real training runs (`harness.py`)."
import pytest

from harness import LiveServer, train_into
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

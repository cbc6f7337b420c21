"""What a new user gets from `pip install wine_api`, without the `[dev]` extras: a fresh virtual environment with the
wheel and its declared requirements only, used from outside the checkout. It trains, lists, verifies, promotes and
serves; a degenerate model is not made current; training prints no kernel noise."""
import subprocess
import sys

import pytest
import requests

from harness import REPO, free_port, wait_until_ready
from wine_api.data import TUTORIAL_ROW as ROW



@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory):
    "A new venv holding the wheel built from this checkout and its requirements, nothing else."
    root = tmp_path_factory.mktemp("plain")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root/"dist", REPO],
                   check=True, capture_output=True)
    [wheel] = (root/"dist").glob("wine_api-*.whl")
    subprocess.run([sys.executable, "-m", "venv", root/"venv"], check=True)
    install = subprocess.run([root/"venv"/"bin"/"pip", "install", "-q", wheel], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    return root


def wine_api(venv_root, *args, timeout=300):
    "Run the venv's `wine-api` from a directory outside the checkout, with nothing of the test environment."
    env = {"PATH": f"{venv_root/'venv'/'bin'}:/usr/bin:/bin", "HOME": str(venv_root)}
    return subprocess.run([venv_root/"venv"/"bin"/"wine-api", *map(str, args)], cwd=venv_root, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_dev_tools_are_not_there(plain_venv):
    check = subprocess.run([plain_venv/"venv"/"bin"/"python", "-c", "import nbdev"], capture_output=True)
    assert check.returncode != 0  # so what follows runs on the declared requirements alone


def test_a_plain_install_trains_lists_verifies_promotes_and_serves(plain_venv):
    trained = wine_api(plain_venv, "train", "-p", "max_depth", "3", "--quiet")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Saved model version 1" in trained.stdout
    assert "TCP" not in trained.stderr and "WARNING" not in trained.stderr, trained.stderr  # no kernel noise
    degenerate = wine_api(plain_venv, "train", "-p", "min_samples_leaf", "140", "--quiet")
    assert degenerate.returncode == 0, degenerate.stderr[-3000:]
    assert degenerate.stdout.startswith("Training with") and "WARNING: the model is degenerate and was NOT made current" in degenerate.stdout
    listed = wine_api(plain_venv, "models")
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[:2] == ["*", "1"], listed.stdout
    verified = wine_api(plain_venv, "models", "verify")
    assert verified.returncode == 0 and verified.stdout.splitlines() == ["version 1: verified", "version 2: verified"]
    promoted = wine_api(plain_venv, "models", "promote", "2")
    assert promoted.returncode == 0 and "version 2 is now current (was 1)" in promoted.stdout
    assert wine_api(plain_venv, "models", "rollback").returncode == 0
    port = free_port()
    server = subprocess.Popen([plain_venv/"venv"/"bin"/"wine-api", "serve", "--port", str(port), "--model-dir", "models"],
                              cwd=plain_venv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={"PATH": f"{plain_venv/'venv'/'bin'}:/usr/bin:/bin", "HOME": str(plain_venv)})
    try:
        assert wait_until_ready(f"http://127.0.0.1:{port}", server)
        r = requests.post(f"http://127.0.0.1:{port}/api/", json=[ROW], timeout=5)
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "1" and r.json() == [2]
        # the pages' templates and assets, and Swagger UI's files, came with the wheel and its requirements
        card = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert card.status_code == 200 and 'data-version="1"' in card.text, card.text[:300]
        report = requests.get(f"http://127.0.0.1:{port}/model/report", timeout=30)
        assert report.status_code == 200 and "Training report of model version" in report.text
        for asset in ("/assets/card.js", "/assets/page.css", "/docs/assets/swagger-ui-bundle.js"):
            assert requests.get(f"http://127.0.0.1:{port}{asset}", timeout=5).status_code == 200, asset
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


def test_the_wheel_says_alpha_and_carries_the_license(plain_venv):
    import email
    [dist_info] = (plain_venv/"venv"/"lib").glob("python3*/site-packages/wine_api-*.dist-info")
    metadata = email.message_from_string((dist_info/"METADATA").read_text())
    assert "Development Status :: 3 - Alpha" in metadata.get_all("Classifier")
    assert metadata["License"] == "Apache Software License 2.0"
    assert (REPO/"LICENSE").read_text().lstrip().startswith("Apache License")

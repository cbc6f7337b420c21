"""The notebook user's road: `scripts/lab.sh` (the README's command) opens the book in JupyterLab; the training
notebook runs there (Run > Run All Cells, in a real browser) without an error; saving it writes it clean, as
`nbdev_clean` would, without its outputs. The book is a copy, so the repository's notebooks are never touched."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from harness import REPO, SCREENSHOTS, free_port

TOKEN = "lab-test-token-0123456789"
NOTEBOOK = "05_train.ipynb"


@pytest.fixture
def lab(tmp_path):
    "`scripts/lab.sh` serving a copy of the book on loopback, its app exposed to the page; stopped by its PID."
    book = tmp_path/"book"
    shutil.copytree(REPO/"nbs", book/"nbs")
    shutil.copy(REPO/"settings.ini", book)
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path/"config"), "JUPYTER_RUNTIME_DIR": str(tmp_path/"runtime")}
    log = open(tmp_path/"lab.log", "w")
    proc = subprocess.Popen([str(REPO/"scripts"/"lab.sh"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--ServerApp.root_dir={book/'nbs'}", f"--IdentityProvider.token={TOKEN}",
                             "--expose-app-in-browser", *(["--allow-root"] if os.geteuid() == 0 else [])], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # the first run installs the notebook extra
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(f"{url}/api/status", params={"token": TOKEN}, timeout=2).ok: break
        except requests.ConnectionError: time.sleep(0.5)
    assert proc.poll() is None, (tmp_path/"lab.log").read_text()[-3000:]
    yield url, book/"nbs", tmp_path/"lab.log"
    proc.terminate()
    try: proc.wait(timeout=30)
    except subprocess.TimeoutExpired: proc.kill()


NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = Array.from(panel.content.model.cells).filter(c => c.type === "code");
    const outputs = cells.flatMap(c => c.outputs.toJSON());
    return {kernel: panel.sessionContext.session && panel.sessionContext.session.kernel.status,
            code_cells: cells.length, run: cells.filter(c => c.executionCount !== null).length,
            errors: outputs.filter(o => o.output_type === "error").map(o => o.ename + ": " + o.evalue),
            images: outputs.filter(o => o.data && o.data["image/png"]).length, outputs: outputs.length};
}"""


def test_the_training_notebook_runs_in_jupyterlab_and_is_saved_clean(lab, page):
    url, book, log = lab
    original = (book/NOTEBOOK).read_bytes()
    page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={TOKEN}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=120_000)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    page.wait_for_function(f"(({NOTEBOOK_STATE})()).run === (({NOTEBOOK_STATE})()).code_cells"
                           f" && (({NOTEBOOK_STATE})()).kernel === 'idle'", timeout=300_000, polling=500)
    state = page.evaluate(NOTEBOOK_STATE)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS/"jupyterlab-train.png")
    assert state["errors"] == [] and state["run"] == state["code_cells"] > 20, state
    assert state["images"] >= 2 and state["outputs"] > 5, state  # it really ran: the plots are there

    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "Saving file at" not in log.read_text(): time.sleep(0.2)
    time.sleep(1)
    saved = json.loads((book/NOTEBOOK).read_text())
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert all(set(c["metadata"]) <= {"tags"} for c in saved["cells"]) and set(saved["metadata"]) == {"kernelspec"}
    assert saved == json.loads(original)  # what was committed, cell for cell
    subprocess.run([str(Path(sys.executable).parent/"nbdev_clean"), "--fname", str(book/NOTEBOOK)], cwd=book.parent, check=True)
    assert json.loads((book/NOTEBOOK).read_text()) == saved  # nbdev_clean finds nothing left to clean

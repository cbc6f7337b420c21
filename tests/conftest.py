"Fixtures shared by the integration tests: the `wine-api` command and real training runs into temporary stores."
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
WINE_API = Path(sys.executable).parent/"wine-api"  # the console script installed beside this interpreter


def run_cli(*args, cwd, timeout=180, **kwargs):
    "Run `wine-api *args` in `cwd`; the finished process, output captured as text."
    return subprocess.run([str(WINE_API), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def train_into(root:Path, *params):
    "A real `wine-api train` run into `root/models`, reports in `root/reports`; what it left behind."
    root.mkdir(parents=True, exist_ok=True)
    proc = run_cli("train", *params, "--model-dir", root/"models", "--report-dir", root/"reports", "--quiet", cwd=root)
    return SimpleNamespace(proc=proc, store=root/"models", reports=root/"reports",
                           report_files=sorted((root/"reports").glob("train-*.ipynb")))


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


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    "`wine-api serve` (gunicorn, 2 workers) on a free loopback port; stopped by its PID."
    def __init__(self, *args, env=None, port=None, wait=True):
        import os, time, requests
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(WINE_API), "serve", "--port", str(self.port), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        if not wait: return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None: raise RuntimeError(f"server exited: {self.proc.stderr.read()}")
            try:
                if requests.get(self.url + "/ready", timeout=1).status_code == 200: return
            except requests.ConnectionError: time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become ready")

    def stop(self, sig=None):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.proc.returncode


@pytest.fixture(scope="session")
def live_server():
    "The bundled model served by a real gunicorn on loopback, with small limits to test them."
    server = LiveServer("--max-rows", 50, "--max-body-bytes", 20_000)
    yield server
    server.stop()

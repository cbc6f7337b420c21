"""What the tests need to run the real thing: the `wine-api` command, live servers on loopback, real training runs,
the memory of a server's processes, and a load generator. Plain functions and classes; the fixtures built on them are
in `conftest.py`, and `tests/faults.py` runs longer versions of the operations tests with them."""
import functools
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import requests

REPO = Path(__file__).resolve().parents[1]
WINE_API = Path(sys.executable).parent/"wine-api"  # the console script installed beside this interpreter
CHROMIUM = "/usr/bin/chromium"  # Debian's, which scripts/test.sh installs
SCREENSHOTS = REPO/"build"/"screenshots"  # where the browser tests leave what they saw


def run_cli(*args, cwd, timeout=180, **kwargs):
    "Run `wine-api *args` in `cwd`; the finished process, output captured as text."
    return subprocess.run([str(WINE_API), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


# Training

def without_ids(answer:dict) -> dict:
    "A `/predict` answer without its rows' ids (which differ between two requests, and are absent without a log)."
    return {**answer, "predictions": [{k: v for k, v in p.items() if k != "id"} for p in answer["predictions"]]}


def train_into(root:Path, *params):
    "A real `wine-api train` run into `root/models`, reports in `root/reports`; what it left behind."
    root.mkdir(parents=True, exist_ok=True)
    proc = run_cli("train", *params, "--model-dir", root/"models", "--report-dir", root/"reports", "--quiet", cwd=root)
    return SimpleNamespace(proc=proc, store=root/"models", reports=root/"reports",
                           report_files=sorted((root/"reports").glob("train-*.ipynb")))


def store_with_two_versions(root:Path) -> Path:
    "A store holding the bundled model as version 1 (current) and a depth-1 tree as version 2."
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier
    from wine_api.data import feature_schema, load_wine_data
    from wine_api.store import bundled_model_dir, save_model
    store = root/"models"
    shutil.copytree(bundled_model_dir(), store)
    wine = load_wine_data()
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(wine.X.to_numpy(np.float32), wine.y)
    save_model(stump, store, feature_schema(wine.X), wine.class_names, params={"max_depth": 1}, make_current=False)
    return store


class PlantedPayload:
    "What a malicious pickle would do on load: create a file."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (str(self.marker), "w"))


def plant_pickle(version:Path, marker:Path) -> bytes:
    """Replace a version's `model.pkl` with a pickle that creates `marker` when loaded, re-fingerprinted in the
    manifest so the hash check alone would let it by; the payload."""
    import pickle
    from wine_api.store import MANIFEST_FILE, MODEL_FILE, file_digest, read_manifest
    planted = pickle.dumps(PlantedPayload(marker))
    (version/MODEL_FILE).write_bytes(planted)
    manifest = read_manifest(version)
    manifest["files"][MODEL_FILE] = file_digest(planted)
    (version/MANIFEST_FILE).write_text(json.dumps(manifest))
    return planted


def assert_like_scikit_learn(classes, probabilities, estimator, X, exact=False):
    "Classes as scikit-learn's `predict` (rows whose top two probabilities tie excepted), probabilities within 1e-6."
    import numpy as np
    assert_answers(classes, probabilities, estimator, X.astype(np.float32).astype(np.float64), exact)  # as served


def assert_answers(classes, probabilities, estimator, given, exact=False):
    "The served answers against `estimator` on `given` (its input as it takes it): classes, then probabilities."
    import numpy as np
    expected, predicted = estimator.predict_proba(given), estimator.predict(given)
    top_two = np.sort(expected, axis=1)[:, -2:]
    untied = top_two[:, 0] != top_two[:, 1]
    np.testing.assert_array_equal(np.asarray(classes)[untied], predicted[untied])
    if exact: np.testing.assert_array_equal(probabilities, expected)
    else: np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)


def cell_statuses(report, *markers):
    "Papermill's status of the first cell containing each marker, from one read of the report (None if unreadable)."
    try: cells = json.loads(report.read_text())["cells"]
    except (OSError, ValueError): return None  # not written yet, or caught mid-write
    return [next(c for c in cells if m in "".join(c["source"]))["metadata"].get("papermill", {}).get("status")
            for m in markers]


def kill_training_midway(store:Path, root:Path) -> int:
    "Start `wine-api train` into `store`, SIGKILL it once training has started and saving has not; its exit code."
    report_dir = root/"reports"
    proc = subprocess.Popen([str(WINE_API), "train", "--model-dir", store, "--report-dir", report_dir, "--quiet"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once training has started and the saving cell has not
        statuses = [cell_statuses(r, "params = dict(", "saved = save_model(") for r in report_dir.glob("*.ipynb")]
        if statuses and statuses[0] and statuses[0][0] in ("running", "completed") and statuses[0][1] == "pending":
            break
        time.sleep(0.02)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the training run was never seen between starting and saving")
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=10)


# Live servers

def free_port() -> int:
    "A loopback port nothing listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url:str, proc=None, seconds:float=30) -> bool:
    "Whether the server at `url` answers `/ready` with 200 within `seconds` (False at once if `proc` exits)."
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None: return False
        try:
            if requests.get(url + "/ready", timeout=1).status_code == 200: return True
        except requests.ConnectionError: time.sleep(0.05)
    return False


class LiveServer:
    "`wine-api serve` (gunicorn, 2 workers) on a free loopback port; stopped by its PID. Its log goes to a file."
    def __init__(self, *args, env=None, port=None, wait=True, stderr=None):  # stderr: instead of the log file
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        # a file, not a pipe: a pipe nobody reads fills up with the request log and stalls the server
        self.log_file = tempfile.NamedTemporaryFile(prefix="wine-api-serve-", suffix=".log")
        # the bundled model's prediction log goes to the user's state directory: one of its own for each server
        self.state_dir = tempfile.TemporaryDirectory(prefix="wine-api-state-")
        self.proc = subprocess.Popen([str(WINE_API), "serve", "--port", str(self.port), *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=stderr or self.log_file, text=True,
                                     env={**os.environ, "XDG_STATE_HOME": self.state_dir.name, **(env or {})})
        if not wait: return
        if not wait_until_ready(self.url, self.proc):
            self.stop()
            raise RuntimeError(f"server did not become ready: {self.log()}")

    def log(self) -> str:
        "Everything the server has written to standard error so far."
        with open(self.log_file.name) as f: return f.read()

    def log_lines(self) -> list:
        "The JSON lines the server wrote to standard error so far."
        lines = []
        for line in self.log().splitlines():
            try: lines.append(json.loads(line))
            except ValueError: pass
        return lines

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.proc.returncode


def worker_pids(server) -> list:
    "The PIDs of the server's workers (the children of its gunicorn master)."
    return [int(p) for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()]


def pss_mib(server) -> float:
    "PSS of the server's master and workers, MiB."
    return process_tree_pss_mib(server.proc.pid)


# PostgreSQL: a throwaway server from Debian's binaries (`apt-get install postgresql`), in a temporary directory, on a
# loopback port, trusting local connections; run as the `postgres` user when the tests run as root (PostgreSQL refuses
# to run as root), and stopped by its PID.

def postgres_bin() -> Path:
    "The directory of PostgreSQL's server programs: Debian's newest, or wherever `pg_ctl` is on the PATH."
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if debian: return debian[-1]
    found = shutil.which("pg_ctl")
    if not found: raise RuntimeError("PostgreSQL is needed: apt-get install postgresql")
    return Path(found).resolve().parent


class PostgresServer:
    "A PostgreSQL server of its own for the tests; `new_database()` gives a fresh database's SQLAlchemy URL."
    def __init__(self):
        self.dir, self.port, self.count = Path(tempfile.mkdtemp(prefix="wine-api-pg-")), free_port(), 0
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres: shutil.chown(self.dir, "postgres", "postgres")
        data, binaries = self.dir/"data", postgres_bin()
        subprocess.run([*self.as_postgres, binaries/"initdb", "-D", data, "-U", "wine", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        self.log_file = open(self.dir/"server.log", "wb")
        self.proc = subprocess.Popen([*self.as_postgres, binaries/"postgres", "-D", data, "-p", str(self.port),
                                      "-k", self.dir, "-c", "listen_addresses=127.0.0.1"],
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.accepts_connections():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(self.dir/'server.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def accepts_connections(self) -> bool:
        import psycopg
        try: psycopg.connect(f"host=127.0.0.1 port={self.port} user=wine dbname=postgres", connect_timeout=2).close()
        except psycopg.OperationalError: return False
        return True

    def new_database(self) -> str:
        "A new empty database; its SQLAlchemy URL."
        import psycopg
        self.count += 1
        name = f"wine_{self.count}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=wine dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://wine@127.0.0.1:{self.port}/{name}"

    def pause(self):
        "Stop the server, keeping its data: clients see the database go away."
        os.kill(int((self.dir/"data"/"postmaster.pid").read_text().split()[0]), signal.SIGINT)
        self.proc.wait(timeout=60)

    def resume(self):
        "Start the server again on the same data and port."
        self.proc = subprocess.Popen([*self.as_postgres, postgres_bin()/"postgres", "-D", self.dir/"data", "-p",
                                      str(self.port), "-k", self.dir, "-c", "listen_addresses=127.0.0.1"],
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.accepts_connections():
            if self.proc.poll() is not None or time.monotonic() > deadline: raise RuntimeError("PostgreSQL did not restart")
            time.sleep(0.1)

    def stop(self):
        "Fast shutdown of the postmaster, by the PID in its pid file; then the directory goes."
        pid_file = self.dir/"data"/"postmaster.pid"
        if pid_file.exists(): os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        self.proc.wait(timeout=60)
        self.log_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# The load generator: each of `connections` threads keeps one HTTP/1.1 keep-alive connection and POSTs the same body
# again and again until stopped, recording when each request started and ended, its status, and the model version
# that answered (`X-Model-Version`). A request that gets no answer (connection reset, timeout) is recorded with status
# 0 and the error; the thread then opens a new connection and goes on.

@dataclass
class Outcome:
    started: float
    ended: float
    status: int        # 0 when no answer came
    version: str = None
    error: str = None
    connection: int = None  # which of the load's connections (threads) sent it


@dataclass
class Load:
    host: str
    port: int
    path: str
    body: bytes
    connections: int = 16
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    timeout: float = 10.0

    def __post_init__(self):
        self.outcomes, self._stop, self._threads = [], threading.Event(), []
        self._lock = threading.Lock()

    def _run(self, number:int):
        conn, mine = None, []
        while not self._stop.is_set():
            conn = conn or http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.monotonic()
            try:
                conn.request("POST", self.path, self.body, self.headers)
                response = conn.getresponse()
                response.read()
                mine.append(Outcome(started, time.monotonic(), response.status, response.getheader("X-Model-Version"),
                                    connection=number))
            except (OSError, http.client.HTTPException) as e:
                mine.append(Outcome(started, time.monotonic(), 0, error=f"{type(e).__name__}: {e}", connection=number))
                conn.close()
                conn = None
        if conn: conn.close()
        with self._lock: self.outcomes += mine

    def start(self):
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.connections)]
        for t in self._threads: t.start()
        return self

    def stop(self) -> list:
        "Stop, wait for the threads, and return every outcome, in order of start."
        self._stop.set()
        for t in self._threads: t.join(timeout=self.timeout + 5)
        return sorted(self.outcomes, key=lambda o: o.started)


def failed(outcomes) -> list: return [o for o in outcomes if not 200 <= o.status < 300]


# Containers: podman with runc, as root, no registry. The base image is made from Debian packages and kept.

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=10240:10240", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
BASE_IMAGE = "localhost/wine-api-base:bookworm"
IMAGE = "localhost/wine-api:test"


@functools.cache
def podman_env() -> dict:
    "The environment podman needs here: runc, cgroupfs, file events (crun and systemd do not work on this machine)."
    conf = Path(tempfile.gettempdir())/"wine-api-containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args, check=True, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    "Run `podman *args`; the finished process, output as text."
    proc = subprocess.run(["podman", *map(str, args)], env=podman_env(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc


def debian_mirrors() -> list:
    "The apt mirror lines of this machine, for mmdebstrap (main component of each configured suite)."
    sources = Path("/etc/apt/sources.list.d/debian.sources").read_text()
    lines = []
    for stanza in sources.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith("#"))
        for suite in fields.get("Suites", "").split():
            if suite.startswith("bookworm"): lines.append(f"deb {fields['URIs']} {suite} {fields['Components']}")
    return lines


def base_image() -> str:
    "A bookworm minbase image with python3 and its venv module, made with mmdebstrap unless it exists already."
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0: return BASE_IMAGE
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp)/"rootfs.tar"
        subprocess.run(["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
                        str(rootfs), *debian_mirrors()], check=True, capture_output=True, timeout=900)
        podman("import", rootfs, BASE_IMAGE)
    return BASE_IMAGE


def build_image(tag:str=IMAGE) -> str:
    "The repository's Dockerfile built on the local base image, pip reaching PyPI through this machine's proxy."
    certs = "/etc/ssl/certs/ca-certificates.crt"
    podman("build", "--format", "docker", "-t", tag, "--build-arg", f"BASE_IMAGE={base_image()}",
           "--build-arg", f"PIP_CERT={certs}", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", REPO, timeout=1200)
    return tag


class Container:
    "A container of `image` serving on a free loopback port; removed by `stop()`."
    def __init__(self, image:str, *run_args, command=(), wait=True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        started = time.monotonic()
        self.id = podman("run", "-d", "--health-interval=disable", "-p", f"127.0.0.1:{self.port}:8080", *run_args,
                         image, *command).stdout.strip()
        if wait and not wait_until_ready(self.url, seconds=60):
            log = self.logs()
            self.stop()
            raise RuntimeError(f"the container did not become ready: {log[-3000:]}")
        self.cold_start = time.monotonic() - started

    def logs(self) -> str: return podman("logs", self.id, check=False).stderr

    def exec(self, *command) -> str: return podman("exec", self.id, *command).stdout

    def host_pid(self) -> int: return int(podman("inspect", "--format", "{{.State.Pid}}", self.id).stdout)

    def stop(self, seconds:int=10) -> float:
        "Stop it (SIGTERM, then SIGKILL after `seconds`) and remove it; how long stopping took."
        started = time.monotonic()
        podman("stop", "-t", seconds, self.id, check=False)
        took = time.monotonic() - started
        podman("rm", "-f", self.id, check=False)
        return took


def process_tree_pss_mib(pid:int) -> float:
    "PSS of a process and its children, MiB."
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    kib = int(re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M).group(1))
    return kib / 1024 + sum(process_tree_pss_mib(int(child)) for child in children)

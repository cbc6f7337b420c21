"""The servers users would pick instead, side by side with ours in one run: MLServer (its scikit-learn runtime),
BentoML and MLflow's scoring server, each serving the bundled model's own pickle as its documentation says, each
asked in its own request format, against `wine-api serve` (every hook on) and the hello-world Flask app on our server.

    python bench/peers.py [--seconds 5] [--rounds 3] [--venvs build/peers]

Each peer is installed, pinned, into a virtualenv of its own under `--venvs` (made when missing: a few hundred MB from
PyPI); nothing of theirs is committed. Settings are each tool's defaults but the port and, where the tool has them,
2 HTTP workers (ours uses 2). Loopback, wrk, rounds interleaved; ratios are medians of per-round paired ratios.
"""
import argparse
import json
import os
import pickle
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import Server, batch_rows, free_port, post, ratio, wrk  # beside this script
from wine_api.data import TUTORIAL_ROW
from wine_api.store import MODEL_FILE, bundled_model_dir, current_version, versions_dir

HERE = Path(__file__).resolve().parent
PINS = {"mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"],  # uvloop 0.22 breaks its workers
        "bentoml": ["bentoml==1.4.40"], "mlflow": ["mlflow==3.17.2"]}
SKLEARN = "scikit-learn>=1.9,<1.10"  # the version the bundled model was pickled with

BENTO_SERVICE = '''
import os, pickle
import bentoml
import numpy as np

@bentoml.service(workers=2)
class Wine:
    def __init__(self):
        with open(os.environ["WINE_MODEL"], "rb") as f: self.model = pickle.load(f)

    @bentoml.api
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(input)
'''


def venv(root:Path, name:str) -> Path:
    "The peer's virtualenv, made and filled with its pinned packages when missing; its bin directory."
    where = root/name
    if not (where/"installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run([str(where/"bin"/"pip"), "install", "-q", SKLEARN, *PINS[name]], check=True)
        (where/"installed").write_text(" ".join(PINS[name]))
    return where/"bin"


def model_pickle() -> Path:
    store = bundled_model_dir()
    return versions_dir(store)/str(current_version(store))/MODEL_FILE


class Peer:
    "One peer on a free loopback port: started, waited for, stopped by its process group."
    def __init__(self, name:str, port:int, argv:list, cwd:Path, env:dict, path:str, row_body, batch_body):
        self.name, self.port, self.path, self.row_body, self.batch_body = name, port, path, row_body, batch_body
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while post(self.url(path), row_body) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(); raise RuntimeError(f"{name} did not start")
            time.sleep(0.2)

    def url(self, path): return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        try: os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError: return
        try: self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL)


def v2_body(rows:list) -> bytes:
    return json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), 13], "datatype": "FP64",
                                   "data": np.ravel(rows).tolist()}]}).encode()


def start_mlserver(bin_dir:Path, work:Path, rows:list, batch:list) -> Peer:
    folder = work/"mlserver"; folder.mkdir()
    shutil.copy(model_pickle(), folder/"model.joblib")  # joblib.load reads a plain pickle
    port = free_port()
    (folder/"settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                    "metrics_port": free_port()}))
    (folder/"model-settings.json").write_text(json.dumps({"name": "wine", "implementation": "mlserver_sklearn.SKLearnModel",
                                                          "parameters": {"uri": "./model.joblib"}}))
    return Peer("MLServer", port, [str(bin_dir/"mlserver"), "start", "."], folder, {}, "/v2/models/wine/infer",
                v2_body(rows), v2_body(batch))


def start_bentoml(bin_dir:Path, work:Path, rows:list, batch:list) -> Peer:
    folder = work/"bentoml"; folder.mkdir()
    (folder/"service.py").write_text(BENTO_SERVICE)
    port = free_port()
    env = {"WINE_MODEL": str(model_pickle()), "BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(folder/"home")}
    return Peer("BentoML", port, [str(bin_dir/"bentoml"), "serve", "service:Wine", "--port", str(port), "--host", "127.0.0.1"],
                folder, env, "/predict", json.dumps({"input": rows}).encode(), json.dumps({"input": batch}).encode())


def start_mlflow(bin_dir:Path, work:Path, rows:list, batch:list) -> Peer:
    folder = work/"mlflow"; folder.mkdir()
    script = ("import pickle, sys, mlflow.sklearn\nmodel = pickle.load(open(sys.argv[1], 'rb'))\n"
              "mlflow.sklearn.save_model(model, sys.argv[2], skops_trusted_types=['sklearn.tree._tree.Tree'])")  # our own pickle
    subprocess.run([str(bin_dir/"python"), "-c", script, str(model_pickle()), str(folder/"model")], check=True,
                   capture_output=True)
    port = free_port()
    return Peer("MLflow", port, [str(bin_dir/"mlflow"), "models", "serve", "-m", str(folder/"model"), "-p", str(port),
                           "-h", "127.0.0.1", "--env-manager", "local", "-w", "2"], folder,
                {"MLFLOW_TRACKING_URI": f"file://{folder}/runs", "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                "/invocations",
                json.dumps({"inputs": rows}).encode(), json.dumps({"inputs": batch}).encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venvs", type=Path, default=HERE.parent/"build"/"peers")
    args = parser.parse_args()
    rows, batch = [TUTORIAL_ROW], batch_rows().tolist()
    bins = {name: venv(args.venvs, name) for name in PINS}
    work = Path(tempfile.mkdtemp(prefix="wine-api-peers-"))
    ours, hello = Server("wine_api"), Server("hello")
    peers = []
    try:
        peers = [start_mlserver(bins["mlserver"], work, rows, batch), start_bentoml(bins["bentoml"], work, rows, batch),
                 start_mlflow(bins["mlflow"], work, rows, batch)]
        plan = [("hello-world Flask, our server", hello.url("/api/"), json.dumps(rows).encode(), None),
                ("wine_api /predict", ours.url("/predict"), json.dumps({"instances": rows}).encode(),
                 json.dumps({"instances": batch}).encode()),
                ("wine_api V2 JSON", ours.url("/v2/models/wine/infer"), v2_body(rows), v2_body(batch))]
        plan += [(p.name, p.url(p.path), p.row_body, p.batch_body) for p in peers]
        samples = {}
        for _ in range(args.rounds):
            for label, url, row_body, batch_body in plan:
                samples.setdefault((label, "row"), []).append(wrk(url, row_body, 16, args.seconds))
                if batch_body: samples.setdefault((label, "batch"), []).append(wrk(url, batch_body, 4, args.seconds))
    finally:
        for p in peers: p.stop()
        ours.stop(); hello.stop()
        shutil.rmtree(work, ignore_errors=True)
    runs = {key: {"rps": statistics.median(s["rps"] for s in v), "p50": statistics.median(s["p50"] for s in v),
                  "p99": statistics.median(s["p99"] for s in v), "rps_runs": [s["rps"] for s in v]}
            for key, v in samples.items()}
    versions = "; ".join(f"{name}: {(args.venvs/name/'installed').read_text()}" for name in PINS)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, loopback, wrk; {versions}")
    print(f"\n{'one row, c16':34}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'× hello':>9}{'× ours':>8}")
    hello_row, ours_row = runs[("hello-world Flask, our server", "row")], runs[("wine_api /predict", "row")]
    for label, *_ in plan:
        m = runs[(label, "row")]
        print(f"{label:34}{m['rps']:8.0f}{m['p50']:8.2f}{m['p99']:8.2f}{ratio(m, hello_row):9.2f}{ratio(m, ours_row):8.2f}")
    print(f"\n{'1000-row batches, c4':34}{'rows/s':>11}{'× ours':>8}")
    ours_batch = runs[("wine_api /predict", "batch")]
    for label, *_ in plan[1:]:
        m = runs[(label, "batch")]
        print(f"{label:34}{m['rps'] * 1000:11.0f}{ratio(m, ours_batch):8.2f}")


if __name__ == "__main__":
    main()

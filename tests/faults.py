"""Load and faults on a real server (loopback, bounded in time): what happens on a bad day.

    python tests/faults.py [--soak-seconds 60] [--connections 64]

1. soak: `--soak-seconds` of wrk at `--connections` on /predict: errors, and PSS (master + workers) at the start of
   the load and at its end;
2. promote and roll back during load (server following a two-version store): requests, failures, versions seen;
3. SIGKILL of one worker during load: failures, and whether gunicorn replaced it;
4. a training run SIGKILLed midway into the served store during load: failures, and the version still served.
Needs wrk (apt-get install wrk). The test suite runs shorter versions of each (tests/test_operations.py); both use tests/harness.py.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from wine_api.data import load_wine_data
from wine_api.store import current_version, list_versions

from harness import WINE_API, LiveServer, kill_training_midway, pss_mib, store_with_two_versions, worker_pids

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent/"bench"  # where wrk's script is, and where the results go

X = load_wine_data().X.to_numpy()
BODY = json.dumps({"instances": X[::6].tolist()}).encode()  # 30 rows


class Wrk:
    "wrk POSTing BODY in the background; `result()` waits and parses requests, non-2xx and socket errors."
    def __init__(self, url, seconds, connections):
        self.body = tempfile.NamedTemporaryFile(suffix=".json")
        self.body.write(BODY); self.body.flush()
        self.proc = subprocess.Popen(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                                      "-s", str(BENCH/"post.lua"), url], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "BODY_FILE": self.body.name})

    def result(self) -> dict:
        out = self.proc.communicate()[0]
        socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
                "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                "socket_errors": sum(map(int, socket.groups())) if socket else 0}


def versions_probe(url, stop:threading.Event, seen:list):
    "Ask for a prediction every 20 ms and note (time, version) until stopped."
    while not stop.is_set():
        try: seen.append((time.monotonic(), requests.post(url + "/api/", json=[X[0].tolist()], timeout=5).headers.get("X-Model-Version")))
        except requests.RequestException: seen.append((time.monotonic(), None))
        time.sleep(0.02)


def soak(seconds, connections):
    server = LiveServer()
    try:
        warm = Wrk(server.url + "/predict", 5, connections); warm.result()
        before = pss_mib(server)
        run = Wrk(server.url + "/predict", seconds, connections)
        samples = []
        for _ in range(seconds // 5):
            time.sleep(5)
            samples.append(round(pss_mib(server), 1))
        result = run.result()
        return {**result, "pss_mib_start": round(before, 1), "pss_mib_end": round(pss_mib(server), 1), "pss_samples": samples}
    finally: server.stop()


def swap_under_load(root, connections, seconds=21):
    store = store_with_two_versions(root)
    server = LiveServer("--model-dir", store, env={"WINE_API_RELOAD_INTERVAL": "0.2"})
    try:
        run, stop, seen = Wrk(server.url + "/predict", seconds, connections), threading.Event(), []
        probe = threading.Thread(target=versions_probe, args=(server.url, stop, seen)); probe.start()
        time.sleep(seconds / 3)
        subprocess.run([str(WINE_API), "models", "--model-dir", store, "promote", "2"], check=True, capture_output=True)
        time.sleep(seconds / 3)
        subprocess.run([str(WINE_API), "models", "--model-dir", store, "rollback"], check=True, capture_output=True)
        result = run.result()
        stop.set(); probe.join()
        changes = [v for i, (_, v) in enumerate(seen) if i == 0 or v != seen[i - 1][1]]
        return {**result, "versions_in_order": changes}
    finally: server.stop()


def kill_worker_under_load(connections, seconds=12):
    server = LiveServer()
    try:
        run = Wrk(server.url + "/predict", seconds, connections)
        time.sleep(seconds / 3)
        victim = worker_pids(server)[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(seconds / 2)
        replaced = victim not in worker_pids(server) and len(worker_pids(server)) == 2
        return {**run.result(), "killed_pid": victim, "replaced": replaced}
    finally: server.stop()


def kill_training_under_load(root, connections):
    store = store_with_two_versions(root/"train")
    server = LiveServer("--model-dir", store, env={"WINE_API_RELOAD_INTERVAL": "0.2"})
    try:
        run = Wrk(server.url + "/predict", 15, connections)
        code = kill_training_midway(store, root/"train")
        result = run.result()
        served = requests.get(server.url + "/ready", timeout=5).json()["model_version"]
        return {**result, "training_exit": code, "versions_in_store": list_versions(store),
                "current": current_version(store), "served": served}
    finally: server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"): sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        results = {"soak": soak(args.soak_seconds, args.connections),
                   "promote_and_rollback": swap_under_load(Path(tmp), args.connections),
                   "worker_sigkill": kill_worker_under_load(args.connections),
                   "training_sigkill": kill_training_under_load(Path(tmp), args.connections)}
    (BENCH/"faults-results.json").write_text(json.dumps(results, indent=2))
    for name, r in results.items():
        print(f"{name:22} requests {r['requests']:>8}  {r['rps']:8.0f} req/s  non-2xx {r['non_2xx']}  socket errors {r['socket_errors']}  "
              + "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("requests", "rps", "non_2xx", "socket_errors")))


if __name__ == "__main__":
    main()

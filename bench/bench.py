"""Benchmark: our server against a hello-world Flask app and the tutorial-style app, in one run, same gunicorn settings.

    python bench/bench.py [--seconds 5] [--rounds 3] [--baseline REV]

Starts each app on a loopback port with 2 workers (the settings of `wine-api serve`), loads it with wrk, and prints
single-row requests/s and p50/p99 latency at concurrency 1 and 16, rows/s in 1000-row batches at concurrency 4, cold
start (process start to first 200) and memory (PSS of master + workers), each with its ratio to the other apps.
The same 1000-row batches also go through the V2 inference route, once in JSON and once with the binary tensor data
extension (FP32 inputs, binary outputs: what tritonclient sends by default).
The prediction log's cost: the /predict runs also go to a second server started with --no-prediction-log, next to
the same run with the log on (SQLite, the default), and the log's own write rate is measured in this process.
With `--baseline REV` (a commit), the package as it was at REV runs in the same rounds, each of its runs next to the
same run of ours, and a last table gives the paired ratios: a change measured against what it changed, in one run.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from wine_api.data import TUTORIAL_ROW, load_wine_data

HERE = Path(__file__).resolve().parent
LOG_DIR = tempfile.mkdtemp(prefix="wine-api-bench-log-")  # the prediction log of the server under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body: bytes) -> int:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r: return r.status
    except OSError: return 0


def baseline_checkout(rev:str) -> Path:
    "The package as it was at commit `rev` (its bundled model included), in a new temporary directory."
    root = Path(tempfile.mkdtemp(prefix="wine-api-baseline-"))
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", rev, "wine_api"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def command(name:str, port:int, baseline:Path=None) -> tuple:
    "How to start app `name` on `port`, and in which directory: ours exactly as users run it."
    ours = [str(Path(sys.executable).parent/"wine-api"), "serve", "--port", str(port)]
    if name == "wine_api": return ours + ["--prediction-log", f"sqlite:///{LOG_DIR}/predictions.sqlite"], None
    if name == "wine_api_nolog": return ours + ["--no-prediction-log"], None
    if name in ("baseline", "checkout"):  # from a checkout, first on `sys.path`, before the installed package
        return ([sys.executable, "-c", "from wine_api.cli import cli; cli()", "serve", "--port", str(port)],
                baseline if name == "baseline" else HERE.parent)
    return [sys.executable, str(HERE/"serve.py"), name, str(port)], None


class Server:
    "One app under gunicorn on a free loopback port; measures its cold start."
    def __init__(self, name, baseline:Path=None):
        self.name, self.port = name, free_port()
        probe = json.dumps([TUTORIAL_ROW]).encode()
        started = time.perf_counter()
        argv, cwd = command(name, self.port, baseline)
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while post(self.url("/api/"), probe) != 200:
            if self.proc.poll() is not None: raise RuntimeError(f"{name} exited with {self.proc.returncode}")
            time.sleep(0.005)
        self.cold_start = time.perf_counter() - started

    def url(self, path): return f"http://127.0.0.1:{self.port}{path}"

    def pss_mib(self) -> float:
        "PSS of the master and its workers, MiB."
        pids = [self.proc.pid] + [int(p) for p in (Path("/proc")/str(self.proc.pid)/"task"/str(self.proc.pid)/"children").read_text().split()]
        kib = 0
        for pid in pids:
            rollup = (Path("/proc")/str(pid)/"smaps_rollup").read_text()
            kib += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
        return kib / 1024

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def wrk(url, body, connections: int, seconds: float) -> dict:
    "Requests/s and p50/p99 latency (ms) from a wrk run POSTing `body`; fails on any non-2xx answer."
    body, headers = body if isinstance(body, tuple) else (body, {})
    with tempfile.NamedTemporaryFile(suffix=".body") as f:
        f.write(body); f.flush()
        out = subprocess.run(["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "--latency",
                              "-s", str(HERE/"post.lua"), url], capture_output=True, text=True,
                             env={**os.environ, "BODY_FILE": f.name, **headers}, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out: raise RuntimeError(f"errors during the run:\n{out}")
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    latency = lambda p: (lambda m: float(m.group(1)) * unit[m.group(2)])(re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": latency(50), "p99": latency(99)}


def bodies():
    X = load_wine_data().X.to_numpy()
    batch = X[np.random.default_rng(0).integers(0, len(X), 1000)].tolist()
    tensor = {"name": "input-0", "shape": [1000, 13], "datatype": "FP32"}
    v2_header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": 1000 * 13 * 4}}],
                            "parameters": {"binary_data_output": True}}).encode()
    return {"row": json.dumps([TUTORIAL_ROW]).encode(), "batch": json.dumps(batch).encode(),
            "predict_row": json.dumps({"instances": [TUTORIAL_ROW]}).encode(),
            "predict_batch": json.dumps({"instances": batch}).encode(),
            "v2_json_batch": json.dumps({"inputs": [{**tensor, "data": np.ravel(batch).tolist()}]}).encode(),
            "v2_binary_batch": (v2_header + np.asarray(batch, dtype="<f4").tobytes(),
                                {"HEADER_LENGTH": str(len(v2_header)), "CONTENT_TYPE": "application/octet-stream"})}


def cold_start(name, starts=3, baseline:Path=None) -> float:
    "Median seconds from starting `name` to its first 200."
    times = []
    for _ in range(starts):
        server = Server(name, baseline)
        times.append(server.cold_start)
        server.stop()
    return statistics.median(times)


def ratio(a: dict, b: dict) -> float:
    "Median over rounds of a's req/s over b's in the same round (paired, so drifts of the machine cancel)."
    return statistics.median(x / y for x, y in zip(a["rps_runs"], b["rps_runs"]))


def median_run(samples: list) -> dict:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all runs; medians are reported")
    parser.add_argument("--baseline", metavar="REV", help="also run the package as it was at this commit, and compare")
    args = parser.parse_args()
    if not shutil.which("wrk"): sys.exit("wrk is needed: apt-get install wrk")
    b = bodies()
    # runs that are compared stand next to each other, so a slow moment of the machine hits both
    plan = [("hello", "c1", "/api/", b["row"], 1), ("tutorial", "c1", "/api/", b["row"], 1),
            ("wine_api", "c1", "/api/", b["row"], 1), ("wine_api", "predict_c1", "/predict", b["predict_row"], 1),
            ("hello", "c16", "/api/", b["row"], 16), ("tutorial", "c16", "/api/", b["row"], 16),
            ("wine_api", "c16", "/api/", b["row"], 16), ("wine_api", "predict_c16", "/predict", b["predict_row"], 16),
            ("tutorial", "batch", "/api/", b["batch"], 4), ("wine_api", "batch", "/api/", b["batch"], 4),
            ("wine_api", "predict_batch", "/predict", b["predict_batch"], 4),
            ("wine_api_nolog", "predict_c16", "/predict", b["predict_row"], 16),
            ("wine_api", "predict_c16_again", "/predict", b["predict_row"], 16),
            ("wine_api_nolog", "predict_batch", "/predict", b["predict_batch"], 4),
            ("wine_api", "predict_batch_again", "/predict", b["predict_batch"], 4),
            ("wine_api", "v2_json_batch", "/v2/models/wine/infer", b["v2_json_batch"], 4),
            ("wine_api", "v2_binary_batch", "/v2/models/wine/infer", b["v2_binary_batch"], 4)]
    names, baseline = ("hello", "tutorial", "wine_api", "wine_api_nolog"), None
    if args.baseline:
        baseline, names = baseline_checkout(args.baseline), names + ("baseline",)
        plan = [step for run in plan for step in ([run, ("baseline", *run[1:])] if run[0] == "wine_api"
                                                  and not run[1].endswith("_again") else [run])]
    results = {name: {"cold_start_s": cold_start(name)} for name in names if name != "baseline"}
    results["log_write"] = log_write_rate()
    if baseline:  # ours started as the baseline is (the editable install's script costs more), for a fair cold start
        results["checkout"] = {"cold_start_s": cold_start("checkout", starts=5)}
        results["baseline"] = {"cold_start_s": cold_start("baseline", starts=5, baseline=baseline)}
    servers = {name: Server(name, baseline) for name in names}
    try:
        samples = {}
        for _ in range(args.rounds):  # interleaved, so a slow minute of the machine hits every app alike
            for name, label, path, body, connections in plan:
                samples.setdefault((name, label), []).append(wrk(servers[name].url(path), body, connections, args.seconds))
        for (name, label), runs in samples.items():
            results[name][label] = {**median_run(runs), "rps_runs": [run["rps"] for run in runs]}
        for name, server in servers.items(): results[name]["pss_mib"] = server.pss_mib()
    finally:
        for server in servers.values(): server.stop()
        if baseline: shutil.rmtree(baseline, ignore_errors=True)
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    results["run"] = describe_run() + (f"; baseline: commit {args.baseline}" if args.baseline else "")
    (HERE/"results.json").write_text(json.dumps(results, indent=2))
    report(results)


def describe_run() -> str:
    "Machine, date, commit and server settings: what a figure needs to be compared with another."
    import platform
    from datetime import datetime, timezone
    from wine_api.cli import gunicorn_options
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    options = gunicorn_options()
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}{' (with changes)' if dirty else ''}, "
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; every app on gunicorn "
            f"{options['worker_class'].__name__ if isinstance(options['worker_class'], type) else options['worker_class']}, "
            f"{options['workers']} workers x {options['worker_connections']} connections")


def report(r):
    hello, tut, ours = r["hello"], r["tutorial"], r["wine_api"]
    print(r.get("run", ""))
    print("\nreq/s and latency: medians over rounds; ratios: medians of the rounds' paired ratios")
    print(f"\n{'':34}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'× hello':>9}{'× tutorial':>11}")
    for app, label, run in [("hello", "single row c1", "c1"), ("hello", "single row c16", "c16"),
                            ("tutorial", "single row c1", "c1"), ("tutorial", "single row c16", "c16"),
                            ("wine_api", "/api/ single row c1", "c1"), ("wine_api", "/api/ single row c16", "c16"),
                            ("wine_api", "/predict single row c1", "predict_c1"),
                            ("wine_api", "/predict single row c16", "predict_c16")]:
        m, c = r[app][run], run[-3:] if run.endswith("c16") else "c1"
        print(f"{app + ' ' + label:34}{m['rps']:9.0f}{m['p50']:8.2f}{m['p99']:8.2f}"
              f"{ratio(m, hello[c]):9.2f}{ratio(m, tut[c]):11.2f}")
    print(f"\n{'1000-row batches, c4':34}{'rows/s':>11}{'× tutorial':>11}{'× /predict':>11}")
    for app, run in [("tutorial", "batch"), ("wine_api /api/", "batch"), ("wine_api /predict", "predict_batch"),
                     ("wine_api V2 JSON", "v2_json_batch"), ("wine_api V2 binary", "v2_binary_batch")]:
        m = r[app.split()[0]][run]
        print(f"{app:34}{m['rps'] * 1000:11.0f}{ratio(m, tut['batch']):11.2f}{ratio(m, ours['predict_batch']):11.2f}")
    print(f"\n{'':34}{'cold start s':>13}{'PSS MiB':>9}")
    for app in ("hello", "tutorial", "wine_api"):
        print(f"{app:34}{r[app]['cold_start_s']:13.2f}{r[app]['pss_mib']:9.1f}")
    print(f"wine_api / hello: cold start {ours['cold_start_s'] / hello['cold_start_s']:.2f}×, PSS {ours['pss_mib'] / hello['pss_mib']:.2f}×;"
          f" wine_api / tutorial: cold start {ours['cold_start_s'] / tut['cold_start_s']:.2f}×, PSS {ours['pss_mib'] / tut['pss_mib']:.2f}×")
    at_least, below = (lambda m, t: m >= t, ">="), (lambda m, t: m < t, "<")
    checks = [("/api/ single row c16, × hello", ratio(ours["c16"], hello["c16"]), at_least, 0.9),
              ("/predict single row c16, × hello", ratio(ours["predict_c16"], hello["c16"]), at_least, 0.9),
              ("/api/ 1000-row batches, × tutorial", ratio(ours["batch"], tut["batch"]), at_least, 1.5),
              ("/predict 1000-row batches, × tutorial", ratio(ours["predict_batch"], tut["batch"]), at_least, 0.75),
              ("V2 JSON 1000-row batches, × /predict", ratio(ours["v2_json_batch"], ours["predict_batch"]), at_least, 0.75),
              ("V2 binary 1000-row batches, × tutorial", ratio(ours["v2_binary_batch"], tut["batch"]), at_least, 2.0),
              ("cold start, seconds", ours["cold_start_s"], below, 1.0),
              ("PSS, × the tutorial app's", ours["pss_mib"] / tut["pss_mib"], below, 1.0)]
    print("\ntargets (measured, then the target):")
    for label, measured, (passes, sign), target in checks:
        print(f"  {'PASS' if passes(measured, target) else 'FAIL'}  {label}: {measured:.2f} {sign} {target}")
    log_cost(r)
    if "baseline" in r: against_baseline(r)


def log_write_rate(seconds:float=3.0) -> dict:
    "Rows/s one process's prediction log writes to SQLite (the default): single-row requests, and 1000-row ones."
    from wine_api.predict import load_predictor
    from wine_api.predlog import LoggedBatch, PredictionLog, new_batch_id
    from wine_api.store import bundled_model_dir
    predictor, X = load_predictor(bundled_model_dir()), load_wine_data().X.to_numpy(np.float32)
    rates = {}
    with tempfile.TemporaryDirectory() as where:
        log = PredictionLog(f"sqlite:///{where}/rate.sqlite", flush_interval=3600, flush_rows=10**9)
        for label, rows, per_flush in (("single_row", 1, 2000), ("batch_1000", 1000, 20)):
            batch = X[np.random.default_rng(0).integers(0, len(X), rows)]
            answer = predictor.predict(batch)  # what the server hands over: the rows, the answer and its leaves
            written, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                for _ in range(per_flush):
                    log.add(LoggedBatch(new_batch_id(), "bench", "/predict", 1, batch, answer.classes,
                                        answer.probabilities, answer.leaves))
                written += log.flush()
            rates[label] = written / (time.perf_counter() - started)
        log.close()
    return rates


def log_cost(r):
    "The prediction log on against off, paired run by run, and what one process's log writes per second."
    on, off = r["wine_api"], r["wine_api_nolog"]
    print(f"\n{'prediction log on / off, same run':34}{'on':>10}{'off':>10}{'× off':>9}")
    for label, run in [("/predict single row c16, req/s", "predict_c16"), ("/predict 1000-row batches c4, rows/s",
                                                                           "predict_batch")]:
        scale = 1000 if "batch" in run else 1
        for suffix in ("", "_again"):
            print(f"{label + (' (2nd)' if suffix else ''):34}{on[run + suffix]['rps'] * scale:10.0f}"
                  f"{off[run]['rps'] * scale:10.0f}{ratio(on[run + suffix], off[run]):9.2f}")
    w = r["log_write"]
    print(f"log writes in one process (SQLite): {w['single_row']:.0f} rows/s as single-row requests, "
          f"{w['batch_1000']:.0f} rows/s as 1000-row requests")
    for label, run, target in (("/predict single row c16, log on × off", "predict_c16", 0.9),
                               ("/predict 1000-row batches, log on × off", "predict_batch", 0.9)):
        measured = statistics.median([ratio(on[run], off[run]), ratio(on[run + "_again"], off[run])])
        print(f"  {'PASS' if measured >= target else 'FAIL'}  {label}: {measured:.2f} >= {target}")


def against_baseline(r):
    "Our runs against the baseline's, paired round by round: above 1.00 is faster now (below, for time and memory)."
    ours, base = r["wine_api"], r["baseline"]
    print(f"\nagainst the baseline, same run{'':12}{'req/s now':>10}{'baseline':>10}{'× baseline':>11}")
    for label, run in [("/api/ single row c1", "c1"), ("/api/ single row c16", "c16"),
                       ("/predict single row c1", "predict_c1"), ("/predict single row c16", "predict_c16"),
                       ("/api/ 1000-row batches c4", "batch"), ("/predict 1000-row batches c4", "predict_batch"),
                       ("V2 JSON 1000-row batches c4", "v2_json_batch"), ("V2 binary 1000-row batches c4", "v2_binary_batch")]:
        print(f"{label:40}{ours[run]['rps']:10.0f}{base[run]['rps']:10.0f}{ratio(ours[run], base[run]):11.2f}")
    now_start, base_start = r["checkout"]["cold_start_s"], base["cold_start_s"]
    print(f"{'cold start, seconds (both as python -c)':40}{now_start:10.2f}{base_start:10.2f}{now_start / base_start:11.2f}")
    print(f"{'PSS, MiB':40}{ours['pss_mib']:10.2f}{base['pss_mib']:10.2f}{ours['pss_mib'] / base['pss_mib']:11.2f}")


if __name__ == "__main__":
    main()

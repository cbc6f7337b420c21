"""Benchmark: our server against a hello-world Flask app and the tutorial-style app, in one run.

    python bench/bench.py [--seconds 5] [--rounds 3] [--starts 5]

Every app runs on loopback with 2 workers, loaded by wrk. The reference apps run twice: on the server and settings
`wine-api serve` ships (granian with our RSGI front) and on gunicorn gthread, 2 workers x 4 threads (the settings we
served with before). Ours runs as users run it, every hook on (request ids, metrics, the JSON log line, the prediction
log to SQLite, range warnings), once more with an API key, once with the prediction log off, and once on the server we
shipped before (`--server gunicorn`). It prints one-row requests/s and p50/p99 latency at concurrency 1 and 16, rows/s
in 1000-row batches at concurrency 4 (also through the V2 route, JSON and binary, and next to the floors measured in
this process: scikit-learn's `predict` and our tree walker), the spread over fresh starts of our server with the cores
it used, cold start (process start to first 200), memory (PSS of the main process and its workers, each server
right after its first one-row run at c16, so every app has seen the same load), the server's ceiling (a constant WSGI
callable through our front, and a constant RSGI app on granian alone), and each target
as PASS/FAIL. Ratios are medians of per-round paired ratios, so a slow minute of the machine hits both sides.
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
KEY = "bench-key-0123456789abcdef"
AUTH = {"AUTHORIZATION": f"Bearer {KEY}"}


def shadowed_store() -> Path:
    """A store serving the bundled tree (version 1) with a second tree (version 2, trained with another seed) as its
    challenger on every request: the same server as `wine_api`, shadowing every row."""
    from sklearn.tree import DecisionTreeClassifier
    from wine_api.data import feature_schema
    from wine_api.store import bundled_model_dir, save_model, set_challenger
    store = Path(LOG_DIR)/"shadowed-store"
    if (store/"CHALLENGER").exists(): return store
    shutil.copytree(bundled_model_dir(), store)
    wine = load_wine_data()
    other = DecisionTreeClassifier(random_state=1).fit(wine.X.to_numpy(np.float32), wine.y)
    save_model(other, store, feature_schema(wine.X), wine.class_names, make_current=False)
    set_challenger(store, 2, 1.0)
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body: bytes, headers:dict=None) -> int:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as r: return r.status
    except OSError: return 0


def command(name:str, port:int) -> tuple:
    "How to start app `name` on `port`, and its environment: ours exactly as users run it."
    ours = [str(Path(sys.executable).parent/"wine-api"), "serve", "--port", str(port)]
    log = ["--prediction-log", f"sqlite:///{LOG_DIR}/{name}.sqlite"]
    if name == "wine_api": return ours + log, {}
    if name == "wine_api_key": return ours + log, {"WINE_API_API_KEYS": KEY}
    if name == "wine_api_nolog": return ours + ["--no-prediction-log"], {}
    if name == "wine_api_gunicorn": return ours + log + ["--server", "gunicorn"], {}
    if name == "wine_api_shadow": return ours + log + ["--model-dir", str(shadowed_store())], {}
    app, _, server = name.partition("@")
    return [sys.executable, str(HERE/"serve.py"), app, str(port), server or "shipped"], {}


class Server:
    "One app on a free loopback port; measures its cold start."
    def __init__(self, name):
        self.name, self.port = name, free_port()
        probe = json.dumps([TUTORIAL_ROW]).encode()
        started = time.perf_counter()
        argv, env = command(name, self.port)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **env})
        while post(self.url("/api/"), probe, {"Authorization": AUTH["AUTHORIZATION"]}) != 200:
            if self.proc.poll() is not None: raise RuntimeError(f"{name} exited with {self.proc.returncode}")
            time.sleep(0.005)
        self.cold_start = time.perf_counter() - started

    def url(self, path): return f"http://127.0.0.1:{self.port}{path}"

    def pids(self) -> list:
        "The main process and its workers."
        children = (Path("/proc")/str(self.proc.pid)/"task"/str(self.proc.pid)/"children").read_text().split()
        return [self.proc.pid] + [int(p) for p in children]

    def pss_mib(self) -> float:
        "PSS of the main process and its workers, MiB."
        kib = 0
        for pid in self.pids():
            rollup = (Path("/proc")/str(pid)/"smaps_rollup").read_text()
            kib += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
        return kib / 1024

    def cpu_seconds(self) -> dict:
        "CPU seconds (user + system) each process has used so far."
        ticks = os.sysconf("SC_CLK_TCK")
        def used(pid):
            fields = (Path("/proc")/str(pid)/"stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks
        return {pid: used(pid) for pid in self.pids()}

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


def batch_rows() -> np.ndarray:
    X = load_wine_data().X.to_numpy()
    return X[np.random.default_rng(0).integers(0, len(X), 1000)]


def bodies():
    batch = batch_rows().tolist()
    tensor = {"name": "input-0", "shape": [1000, 13], "datatype": "FP32"}
    v2_header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": 1000 * 13 * 4}}],
                            "parameters": {"binary_data_output": True}}).encode()
    row, predict_row = json.dumps([TUTORIAL_ROW]).encode(), json.dumps({"instances": [TUTORIAL_ROW]}).encode()
    return {"row": row, "batch": json.dumps(batch).encode(), "predict_row": predict_row,
            "row_key": (row, AUTH), "predict_row_key": (predict_row, AUTH),
            "predict_batch": json.dumps({"instances": batch}).encode(),
            "v2_row": json.dumps({"inputs": [{**tensor, "shape": [1, 13], "data": TUTORIAL_ROW}]}).encode(),
            "v2_json_batch": json.dumps({"inputs": [{**tensor, "data": np.ravel(batch).tolist()}]}).encode(),
            "v2_binary_batch": (v2_header + np.asarray(batch, dtype="<f4").tobytes(),
                                {"HEADER_LENGTH": str(len(v2_header)), "CONTENT_TYPE": "application/octet-stream"})}


def cold_start(name, starts=3) -> float:
    "Median seconds from starting `name` to its first 200."
    times = []
    for _ in range(starts):
        server = Server(name)
        times.append(server.cold_start)
        server.stop()
    return statistics.median(times)


def ratio(a: dict, b: dict) -> float:
    "Median over rounds of a's req/s over b's in the same round (paired, so drifts of the machine cancel)."
    return statistics.median(x / y for x, y in zip(a["rps_runs"], b["rps_runs"]))


def median_run(samples: list) -> dict:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def in_process_floors(seconds:float=2.0) -> dict:
    "Rows/s in this process for 1000-row batches: scikit-learn's `predict`, our walker, and JSON in to JSON out."
    import pickle
    from wine_api.predict import Body, decode_json, load_predictor, predict_input
    from wine_api.serving import PredictionRenderer
    from wine_api.store import MODEL_FILE, bundled_model_dir, current_version, versions_dir
    store = bundled_model_dir()
    with open(versions_dir(store)/str(current_version(store))/MODEL_FILE, "rb") as f: model = pickle.load(f)
    predictor, X = load_predictor(store), batch_rows()
    body = json.dumps({"instances": X.tolist()}).encode()
    renderer = PredictionRenderer(predictor)
    def json_path():
        rows = predict_input(decode_json(body), predictor.feature_names, 10_000)
        return renderer.render(predictor.predict(rows))
    work = {"scikit-learn's predict (array)": lambda: model.predict(X),
            "our tree walker (array)": lambda: predictor.predict(X.astype(np.float32)),
            "/predict's data plane, JSON to JSON": json_path}
    rates = {}
    for label, call in work.items():
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            call(); done += 1000
        rates[label] = done / (time.perf_counter() - started)
    return rates


def spread(starts:int, seconds:float, body, connections:int=16) -> list:
    "Fresh starts of our server, each loaded at `connections`: req/s, cores used, and each worker's share of the CPU."
    runs = []
    for _ in range(starts):
        server = Server("wine_api")
        try:
            time.sleep(0.5)
            before, started = server.cpu_seconds(), time.perf_counter()
            result = wrk(server.url("/api/"), body, connections, seconds)
            after, wall = server.cpu_seconds(), time.perf_counter() - started
        finally: server.stop()
        used = {pid: after[pid] - before.get(pid, 0) for pid in after}
        workers = sorted((used[pid] for pid in used if pid != server.proc.pid), reverse=True)
        runs.append({"rps": result["rps"], "cores": sum(used.values()) / wall,
                     "worker_shares": [w / max(sum(workers), 1e-9) for w in workers]})
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all runs; medians are reported")
    parser.add_argument("--starts", type=int, default=5, help="fresh starts of our server for the spread")
    args = parser.parse_args()
    if not shutil.which("wrk"): sys.exit("wrk is needed: apt-get install wrk")
    b = bodies()
    # runs that are compared stand next to each other, so a slow moment of the machine hits both
    plan = [("hello@gthread", "c1", "/api/", b["row"], 1), ("hello", "c1", "/api/", b["row"], 1),
            ("wine_api", "c1", "/api/", b["row"], 1), ("wine_api", "predict_c1", "/predict", b["predict_row"], 1),
            ("hello@gthread", "c16", "/api/", b["row"], 16), ("hello", "c16", "/api/", b["row"], 16),
            ("tutorial@gthread", "c16", "/api/", b["row"], 16), ("tutorial", "c16", "/api/", b["row"], 16),
            ("wine_api", "c16", "/api/", b["row"], 16), ("wine_api", "predict_c16", "/predict", b["predict_row"], 16),
            ("wine_api", "v2_c16", "/v2/models/wine/infer", b["v2_row"], 16),
            ("wine_api_key", "c16", "/api/", b["row_key"], 16),
            ("wine_api_key", "predict_c16", "/predict", b["predict_row_key"], 16),
            ("wine_api_nolog", "predict_c16", "/predict", b["predict_row"], 16),
            ("wine_api_shadow", "predict_c16", "/predict", b["predict_row"], 16),
            ("constant", "c16", "/api/", b["row"], 16), ("constant@rsgi", "c16", "/api/", b["row"], 16),
            ("wine_api_gunicorn", "c16", "/api/", b["row"], 16),
            ("tutorial@gthread", "batch", "/api/", b["batch"], 4), ("tutorial", "batch", "/api/", b["batch"], 4),
            ("wine_api", "batch", "/api/", b["batch"], 4),
            ("wine_api", "predict_batch", "/predict", b["predict_batch"], 4),
            ("wine_api_nolog", "predict_batch", "/predict", b["predict_batch"], 4),
            ("wine_api_shadow", "predict_batch", "/predict", b["predict_batch"], 4),
            ("wine_api", "v2_json_batch", "/v2/models/wine/infer", b["v2_json_batch"], 4),
            ("wine_api", "v2_binary_batch", "/v2/models/wine/infer", b["v2_binary_batch"], 4)]
    names = list(dict.fromkeys(step[0] for step in plan))
    results = {name: {"cold_start_s": cold_start(name)} for name in ("hello", "tutorial", "wine_api")}
    results["log_write"], results["floors"] = log_write_rate(), in_process_floors()
    servers = {name: Server(name) for name in names}
    try:
        samples = {}
        for _ in range(args.rounds):  # interleaved, so a slow minute of the machine hits every app alike
            for name, label, path, body, connections in plan:
                samples.setdefault((name, label), []).append(wrk(servers[name].url(path), body, connections, args.seconds))
                if label == "c16" and "pss_mib" not in results.get(name, {}):  # like for like: after the same load
                    results.setdefault(name, {})["pss_mib"] = servers[name].pss_mib()
        for (name, label), runs in samples.items():
            results.setdefault(name, {})[label] = {**median_run(runs), "rps_runs": [run["rps"] for run in runs]}
        results["wine_api"]["pss_mib_after_all"] = servers["wine_api"].pss_mib()  # batches included
    finally:
        for server in servers.values(): server.stop()
    results["spread"] = spread(args.starts, args.seconds, b["row"])
    results["spread_batches"] = spread(args.starts, args.seconds, b["batch"], 4)  # a few connections: not a target
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    results["run"] = describe_run()
    (HERE/"results.json").write_text(json.dumps(results, indent=2))
    report(results)


def lowest_start(runs:list) -> float:
    "The slowest of the fresh starts' runs, as a ratio to their median."
    rates = [run["rps"] for run in runs]
    return min(rates) / statistics.median(rates)


def describe_run() -> str:
    "Machine, date, commit and server settings: what a figure needs to be compared with another."
    import platform
    from datetime import datetime, timezone
    import granian
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    model = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                           text=True).stdout.strip()
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}{' (with changes)' if dirty else ''}; "
            f"{platform.machine()} {os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"granian {granian.__version__}\nshipped server: granian + wine_api.server.RsgiFront, 2 workers x 1 event "
            f"loop; gthread: gunicorn gthread 2 workers x 4 threads; wrk on the same 2 cores")


def report(r):
    hello, hello_g, tut, tut_g, ours = r["hello"], r["hello@gthread"], r["tutorial"], r["tutorial@gthread"], r["wine_api"]
    print(r.get("run", ""))
    print("\nreq/s and latency: medians over rounds; ratios: medians of the rounds' paired ratios")
    print(f"\n{'one-row requests':44}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'× hello':>9}{'× hello':>9}")
    print(f"{'':44}{'':24}{'shipped':>9}{'gthread':>9}")
    rows = [("hello-world Flask, gthread", "hello@gthread", "c1"), ("hello-world Flask, shipped", "hello", "c1"),
            ("wine_api /api/", "wine_api", "c1"), ("wine_api /predict", "wine_api", "predict_c1"),
            ("hello-world Flask, gthread", "hello@gthread", "c16"), ("hello-world Flask, shipped", "hello", "c16"),
            ("tutorial app, gthread", "tutorial@gthread", "c16"), ("tutorial app, shipped", "tutorial", "c16"),
            ("wine_api /api/", "wine_api", "c16"), ("wine_api /predict", "wine_api", "predict_c16"),
            ("wine_api V2 JSON", "wine_api", "v2_c16"),
            ("wine_api /api/ with an API key", "wine_api_key", "c16"),
            ("wine_api /predict with an API key", "wine_api_key", "predict_c16"),
            ("wine_api /predict, prediction log off", "wine_api_nolog", "predict_c16"),
            ("wine_api /api/ on gunicorn gevent (before)", "wine_api_gunicorn", "c16"),
            ("ceiling: constant WSGI callable, our front", "constant", "c16"),
            ("ceiling: constant RSGI app, granian alone", "constant@rsgi", "c16")]
    for label, app, run in rows:
        m, c = r[app][run], "c16" if run.endswith("c16") else "c1"
        print(f"{label + ' ' + c:44}{m['rps']:8.0f}{m['p50']:8.2f}{m['p99']:8.2f}"
              f"{ratio(m, hello[c]):9.2f}{ratio(m, hello_g[c]):9.2f}")
    print(f"\n{'1000-row batches, c4':44}{'rows/s':>11}{'× tutorial':>11}{'× /predict':>11}")
    for label, app, run in [("tutorial app, gthread", "tutorial@gthread", "batch"),
                            ("tutorial app, shipped", "tutorial", "batch"), ("wine_api /api/", "wine_api", "batch"),
                            ("wine_api /predict", "wine_api", "predict_batch"),
                            ("wine_api /predict, prediction log off", "wine_api_nolog", "predict_batch"),
                            ("wine_api V2 JSON", "wine_api", "v2_json_batch"),
                            ("wine_api V2 binary", "wine_api", "v2_binary_batch")]:
        m = r[app][run]
        print(f"{label:44}{m['rps'] * 1000:11.0f}{ratio(m, tut['batch']):11.2f}{ratio(m, ours['predict_batch']):11.2f}")
    print("in this process, one core, no HTTP:")
    for label, rate in r["floors"].items(): print(f"  {label:42}{rate:11.0f}")
    print()
    for key, what, unit, scale in (("spread", "/api/ one row c16", "req/s", 1),
                                   ("spread_batches", "/api/ 1000-row batches c4", "rows/s", 1000)):
        spread_runs = r[key]
        print(f"{len(spread_runs)} fresh starts of wine_api, {what}: {unit} "
              + ", ".join(f"{s['rps'] * scale:.0f}" for s in spread_runs)
              + f"; lowest {lowest_start(spread_runs):.2f}× the median")
        print("  cores used by the server: " + ", ".join(f"{s['cores']:.2f}" for s in spread_runs)
              + "; workers' shares of its CPU: " + ", ".join("/".join(f"{w:.0%}" for w in s["worker_shares"])
                                                             for s in spread_runs))
    print(f"\n{'':44}{'cold start s':>13}{'× hello':>9}{'PSS MiB':>9}{'× hello':>9}")
    for app in ("hello", "tutorial", "wine_api"):
        print(f"{app + ', shipped server':44}{r[app]['cold_start_s']:13.2f}"
              f"{r[app]['cold_start_s'] / hello['cold_start_s']:9.2f}{r[app]['pss_mib']:9.1f}"
              f"{r[app]['pss_mib'] / hello['pss_mib']:9.2f}")
    print(f"PSS: each server measured right after its first one-row c16 run, all servers up; wine_api after every run "
          f"(1000-row batches too): {ours['pss_mib_after_all']:.1f} MiB")
    at_least, below = (lambda m, t: m >= t, ">="), (lambda m, t: m < t, "<")
    at_most = (lambda m, t: m <= t, "<=")
    checks = [("/api/ one row c16, × hello-world on gthread", ratio(ours["c16"], hello_g["c16"]), at_least, 2.5),
              ("/predict one row c16, × hello-world on gthread", ratio(ours["predict_c16"], hello_g["c16"]), at_least, 2.5),
              ("/api/ one row c16 with a key, × hello-world on gthread",
               ratio(r["wine_api_key"]["c16"], hello_g["c16"]), at_least, 2.5),
              ("/api/ one row c16, × hello-world on the shipped server", ratio(ours["c16"], hello["c16"]), at_least, 1.0),
              ("/predict one row c16, × hello-world on the shipped server",
               ratio(ours["predict_c16"], hello["c16"]), at_least, 1.0),
              ("/api/ one row c16 with a key, × hello-world shipped",
               ratio(r["wine_api_key"]["c16"], hello["c16"]), at_least, 1.0),
              ("/api/ 1000-row batches, × tutorial app (shipped)", ratio(ours["batch"], tut["batch"]), at_least, 3.0),
              ("/predict 1000-row batches, × tutorial app (shipped)", ratio(ours["predict_batch"], tut["batch"]),
               at_least, 3.0),
              ("V2 binary 1000-row batches, × tutorial app (shipped)", ratio(ours["v2_binary_batch"], tut["batch"]),
               at_least, 10.0),
              ("lowest of the fresh starts at c16, × their median", lowest_start(r["spread"]), at_least, 0.85),
              ("cold start, seconds", ours["cold_start_s"], below, 0.5),
              ("PSS, × the hello-world app's (shipped)", ours["pss_mib"] / hello["pss_mib"], at_most, 1.1),
              ("/predict one row c16 shadowing every row, × no challenger",
               ratio(r["wine_api_shadow"]["predict_c16"], ours["predict_c16"]), at_least, 0.85),
              ("/predict 1000-row batches shadowing every row, × no challenger",
               ratio(r["wine_api_shadow"]["predict_batch"], ours["predict_batch"]), at_least, 0.75)]
    print("\ntargets (measured, then the target):")
    for label, measured, (passes, sign), target in checks:
        print(f"  {'PASS' if passes(measured, target) else 'FAIL'}  {label}: {measured:.3f} {sign} {target}")
    log_cost(r)
    shadow_cost(r)


def shadow_cost(r):
    "A challenger shadowing every row against the same server with none, paired run by run."
    on, off = r["wine_api_shadow"], r["wine_api"]
    print(f"\n{'challenger shadowing every row / none':44}{'shadow':>10}{'none':>10}{'× none':>9}")
    for label, run in [("/predict one row c16, req/s", "predict_c16"),
                       ("/predict 1000-row batches c4, rows/s", "predict_batch")]:
        scale = 1000 if "batch" in run else 1
        print(f"{label:44}{on[run]['rps'] * scale:10.0f}{off[run]['rps'] * scale:10.0f}{ratio(on[run], off[run]):9.2f}")


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
    print(f"\n{'prediction log on / off, same run':44}{'on':>10}{'off':>10}{'× off':>9}")
    for label, run in [("/predict one row c16, req/s", "predict_c16"), ("/predict 1000-row batches c4, rows/s",
                                                                        "predict_batch")]:
        scale = 1000 if "batch" in run else 1
        print(f"{label:44}{on[run]['rps'] * scale:10.0f}{off[run]['rps'] * scale:10.0f}{ratio(on[run], off[run]):9.2f}")
    w = r["log_write"]
    print(f"log writes in one process (SQLite): {w['single_row']:.0f} rows/s as single-row requests, "
          f"{w['batch_1000']:.0f} rows/s as 1000-row requests")


if __name__ == "__main__":
    main()

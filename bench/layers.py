"""Where a one-row request's CPU goes, layer by layer, with no server in the way: the WSGI app called in-process
exactly as a worker calls it (as `wine-api serve` sets it up: multiprocess metrics, the JSON request log written to a
file descriptor), timed without a profiler, then cProfile'd to split that time into layers by the file each function
lives in (C code is counted in the layer that called it). Each configuration runs in a process of its own (no other
app's threads beside it), in interleaved rounds; the table gives the median and the range over the rounds. The
hello-world Flask app and the data plane alone (parse, validate, walk, render: no HTTP) are measured the same way.

Run: `python bench/layers.py [--rounds 3] [--requests 4000]`; `bench/README.md` keeps a run's table."""
import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent

LAYERS = (  # (label, what a function's file path contains), first match wins
    ("werkzeug: request/response objects, routing", ("/werkzeug/",)),
    ("Flask: dispatch, hooks machinery, context", ("/flask/",)),
    ("metrics (prometheus_client)", ("/prometheus_client/",)),
    ("our hooks: request id, key, metrics, log line", ("wine_api/ops.py",)),
    ("our glue: record, body reading, JSON answers", ("wine_api/web.py",)),
    ("prediction log hand-off", ("wine_api/predlog.py",)),
    ("parse + validate + tree walk", ("wine_api/predict.py", "wine_api/tensors.py")),
    ("render the answer", ("wine_api/serving.py",)),
    ("routes", ("wine_api/api.py", "wine_api/v2.py", "bench/apps.py")),
    ("numpy (its Python parts)", ("/numpy/",)),
)
KEY = "bench-key-0123456789abcdef"
CONFIGS = {  # name -> (what it is, app settings, path, body kind, headers)
    "hello": ("hello-world Flask app, POST /api/", None, "/api/", "rows", {}),
    "api": ("wine_api POST /api/, log on", {}, "/api/", "rows", {}),
    "api_nolog": ("wine_api POST /api/, log off", {"PREDICTION_LOG": "off"}, "/api/", "rows", {}),
    "api_keys": ("wine_api POST /api/, log off, key", {"PREDICTION_LOG": "off", "API_KEYS": KEY}, "/api/", "rows",
                 {"Authorization": f"Bearer {KEY}"}),
    "predict": ("wine_api POST /predict, log on", {}, "/predict", "instances", {}),
    "data_plane": ("data plane alone (parse, validate, walk, render)", {"PREDICTION_LOG": "off"}, None, None, {}),
}


def caller(app, path:str, body:bytes, headers:dict):
    "A function that sends one POST through `app` and reads the whole answer, as a worker does."
    from werkzeug.test import EnvironBuilder
    environ = EnvironBuilder(path=path, method="POST", data=body, content_type="application/json",
                             headers=headers).get_environ()
    def start_response(status, headers, exc_info=None): pass
    def call():
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        result = app(env, start_response)
        b"".join(result)
        if hasattr(result, "close"): result.close()
    return call


def data_plane_call(app, body:bytes):
    "Parse, validate, predict and render one row with the served model, without HTTP."
    from wine_api.predict import decode_json, predict_input
    model = app.extensions["wine_api"].slot.current()
    def call():
        X = predict_input(decode_json(body), model.predictor.feature_names, 10_000)
        model.renderer.render(model.predictor.predict(X))
    return call


def layer_of(filename:str) -> str:
    return next((label for label, marks in LAYERS if any(m in filename for m in marks)), "other Python (stdlib)")


def layer_seconds(call, n:int) -> dict:
    "Seconds of own time per layer over `n` calls under cProfile; C code counted in its callers' layers."
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n): call()
    profile.disable()
    totals = {}
    for (filename, _, _), (_, _, own, _, callers) in pstats.Stats(profile).stats.items():
        if filename == "~" and callers:
            weights = {caller[0]: timings[2] for caller, timings in callers.items()}
            whole = sum(weights.values()) or 1.0
            for caller_file, weight in weights.items():
                totals[layer_of(caller_file)] = totals.get(layer_of(caller_file), 0.0) + own * weight / whole
        else: totals[layer_of(filename)] = totals.get(layer_of(filename), 0.0) + own
    return totals


def measure(name:str, n:int) -> dict:
    "In this process: one configuration's microseconds per call, and its layer shares."
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="wine-api-layers-metrics-"))
    sys.path.insert(0, str(HERE))
    from apps import hello_app
    from wine_api import ops
    from wine_api.app import create_app
    from wine_api.data import TUTORIAL_ROW
    ops.request_log.fd = os.open(os.devnull, os.O_WRONLY)  # the log line is made and written, as in a worker
    _, settings, path, kind, headers = CONFIGS[name]
    body = json.dumps([TUTORIAL_ROW] if kind != "instances" else {"instances": [TUTORIAL_ROW]}).encode()
    if settings is None: app = hello_app()
    else: app = create_app({"PREDICTION_LOG": f"{tempfile.mkdtemp()}/predictions.sqlite", **settings})
    call = data_plane_call(app, json.dumps({"instances": [TUTORIAL_ROW]}).encode()) if path is None \
        else caller(app, path, body, headers)
    for _ in range(n // 5): call()  # warm
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n): call()
        batches.append((time.perf_counter() - started) / n * 1e6)
    shares = layer_seconds(call, n)
    whole = sum(shares.values())
    return {"us": statistics.median(batches), "layers": {k: v / whole for k, v in shares.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, each configuration once per round")
    parser.add_argument("--requests", type=int, default=4000, help="calls per timed batch")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: measure this configuration, print JSON
    args = parser.parse_args()
    if args.one: return print(json.dumps(measure(args.one, args.requests)))
    runs = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--one", name, "--requests", str(args.requests)],
                                 capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    print(f"one-row requests in-process (no server), commit {commit.strip()}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores; median of {args.rounds} rounds (each: median of 5 x {args.requests} calls)")
    print(f"{'':<52} {'us/request':>10} {'range':>13} {'x hello':>8}")
    hello = statistics.median(r["us"] for r in runs["hello"])
    for name, (label, *_) in CONFIGS.items():
        us = [r["us"] for r in runs[name]]
        print(f"{label:<52} {statistics.median(us):>10.1f} {min(us):>6.1f}-{max(us):<6.1f} "
              f"{statistics.median(us) / hello:>8.2f}")
    for name in ("api", "hello"):
        us = statistics.median(r["us"] for r in runs[name])
        layers = {label: statistics.median(r["layers"].get(label, 0.0) for r in runs[name])
                  for r in runs[name] for label in r["layers"]}
        print(f"\n{CONFIGS[name][0]}: {us:.1f} us, split by cProfile's own time (median share x the timed total)")
        for label, share in sorted(layers.items(), key=lambda kv: -kv[1]):
            if share >= 0.005: print(f"  {label:<50} {share * us:7.1f} us  {share:6.1%}")


if __name__ == "__main__":
    main()

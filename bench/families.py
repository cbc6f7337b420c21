"""Every family served over HTTP, in one run: `wine-api serve` (shipped settings, prediction log on) on a version of each
family against MLServer's scikit-learn runtime serving the same fitted estimator (its pickle, as MLServer's
documentation says), one row at 16 connections and 1,000-row batches at 4, rounds interleaved, loopback, wrk.

    python bench/families.py [--seconds 5] [--rounds 3] [--venvs build/peers] [--families random_forest,...]
                             [--against 045525a]

MLServer is installed, pinned, into a virtualenv of its own by `bench/peers.py`'s `venv` (made when missing). Prints
the table and the issue's targets with PASS/FAIL, ratios of medians over paired rounds (bench/families-last-run.txt).

`--against REV` adds the paired run the issue asks for: the bundled decision tree served by this checkout and by the
package of commit REV (a `git worktree` of it on `PYTHONPATH`, its own bundled model), rounds interleaved, one row
through `/api/` and `/predict` at c16 and 1,000-row batches at c4."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench import batch_rows, free_port, post, ratio, wrk  # beside this script
from peers import Peer, v2_body, venv
from wine_api.data import TUTORIAL_ROW, load_wine_data
from wine_api.engine import far_rows
from wine_api.store import MODEL_FILE, save_model
from wine_api.train import as_model_input, describe_estimator, family_model, serving_files, training_features

HERE = Path(__file__).resolve().parent
FAMILIES = ["decision_tree", "random_forest", "extra_trees", "gradient_boosting", "hist_gradient_boosting",
            "logistic_regression", "mlp", "svc"]


def save_family(family:str, store:Path) -> Path:
    "A version of `family` fitted on the wine data, saved as `wine-api train` saves it; its directory."
    wine = load_wine_data()
    X, y = as_model_input(wine.X), wine.y.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = family_model(family, 42).fit(X, y)
    serving, check = serving_files(model, np.vstack([X, far_rows(X)]), 3)
    return save_model(model, store, training_features(wine.X), wine.class_names, params={"estimator": family},
                      serving=serving, estimator={**describe_estimator(model), "serving_check": check},
                      make_current=False).path


class Ours:
    """`wine-api serve` on one version (None: the bundled model), its prediction log in `work`; from the package of
    `source` (a checkout) when given."""
    def __init__(self, version:Path, work:Path, source:Path=None, name:str=None):
        self.port = free_port()
        name = name or version.name
        command = [str(Path(sys.executable).parent/"wine-api")] if source is None else \
            [sys.executable, "-c", "import sys; from wine_api.cli import cli; sys.exit(cli())"]
        command += ["serve", "--port", str(self.port), "--prediction-log", f"sqlite:///{work}/{name}.sqlite"]
        env = {**os.environ, "PYTHONPATH": str(source)} if source else None
        self.proc = subprocess.Popen(command + (["--model", str(version)] if version else []), env=env, cwd=source,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # cwd: first on sys.path
        while post(self.url("/api/"), json.dumps([TUTORIAL_ROW]).encode()) != 200:
            if self.proc.poll() is not None: raise RuntimeError(f"wine-api serve exited on {version}")
            time.sleep(0.02)

    def url(self, path): return f"http://127.0.0.1:{self.port}{path}"
    def stop(self): self.proc.terminate(); self.proc.wait(30)


def start_mlserver(bin_dir:Path, work:Path, version:Path, name:str) -> Peer:
    folder = work/f"mlserver-{name}"; folder.mkdir()
    shutil.copy(version/MODEL_FILE, folder/"model.joblib")  # joblib.load reads a plain pickle
    port = free_port()
    (folder/"settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                    "metrics_port": free_port()}))
    (folder/"model-settings.json").write_text(json.dumps({"name": "wine", "implementation": "mlserver_sklearn.SKLearnModel",
                                                          "parameters": {"uri": "./model.joblib"}}))
    batch = batch_rows().tolist()
    return Peer(f"MLServer {name}", port, [str(bin_dir/"mlserver"), "start", "."], folder, {}, "/v2/models/wine/infer",
                v2_body([TUTORIAL_ROW]), v2_body(batch))


def paired_tree(against:str, seconds:int, rounds:int, work:Path) -> list:
    "The bundled tree served by this checkout and by commit `against`, interleaved: table lines and targets."
    old = work/"against"
    subprocess.run(["git", "-C", str(HERE.parent), "worktree", "add", "--detach", str(old), against], check=True,
                   capture_output=True)
    row, predict_row = json.dumps([TUTORIAL_ROW]).encode(), json.dumps({"instances": [TUTORIAL_ROW]}).encode()
    batch = json.dumps({"instances": batch_rows().tolist()}).encode()
    plan = [("one row /api/ (c16)", "/api/", row, 16), ("one row /predict (c16)", "/predict", predict_row, 16),
            ("1,000-row /predict (c4)", "/predict", batch, 4)]
    servers, samples = {}, {}
    try:
        servers = {"now": Ours(None, work, name="tree-now"), against: Ours(None, work, source=old, name="tree-then")}
        for r in range(rounds):
            print(f"decision tree against {against}: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            for label, path, body, connections in plan:
                for who, server in list(servers.items())[::1 if r % 2 == 0 else -1]:  # each goes first in turn
                    samples.setdefault((label, who), []).append(wrk(server.url(path), body, connections, seconds))
    finally:
        for server in servers.values(): server.stop()
        subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(old)], capture_output=True)
    runs = {k: {"rps": statistics.median(s["rps"] for s in v), "rps_runs": [s["rps"] for s in v]}
            for k, v in samples.items()}
    lines = ["", f"The bundled decision tree, this checkout against {against} (paired rounds):", "",
             f"| route | now | {against} | x {against} |", "|---|---:|---:|---:|"]
    targets = []
    for label, *_ in plan:
        now, then = runs[(label, "now")], runs[(label, against)]
        scale = 1000 if label.startswith("1,000") else 1
        lines.append(f"| {label} | {now['rps'] * scale:,.0f} | {then['rps'] * scale:,.0f} | {ratio(now, then):.2f} |")
        value = ratio(now, then)
        targets.append(f"{'PASS' if value >= 0.95 else 'FAIL'} decision tree {label} x {against}: {value:.2f} "
                       f"(>= 0.95: no drop beyond the run's noise)")
    return lines, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venvs", type=Path, default=HERE.parent/"build"/"peers")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--against", help="a commit whose bundled tree is served beside ours (paired rounds)")
    args = parser.parse_args()
    families = args.families.split(",")
    work = Path(tempfile.mkdtemp(prefix="wine-api-families-"))
    mlserver = venv(args.venvs, "mlserver")
    row, batch = json.dumps({"instances": [TUTORIAL_ROW]}).encode(), json.dumps({"instances": batch_rows().tolist()}).encode()
    servers, samples = [], {}
    try:
        for family in families:
            print(f"{family}: fitting, exporting, starting both servers", file=sys.stderr, flush=True)
            version = save_family(family, work/"models")
            ours, peer = Ours(version, work), start_mlserver(mlserver, work, version, family)
            servers += [ours, peer]
            plan = [((family, "ours"), ours.url("/predict"), row, batch), ((family, "MLServer"), peer.url(peer.path),
                                                                            peer.row_body, peer.batch_body)]
            for r in range(args.rounds):
                print(f"  round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
                for key, url, row_body, batch_body in plan:
                    samples.setdefault((*key, "row"), []).append(wrk(url, row_body, 16, args.seconds))
                    samples.setdefault((*key, "batch"), []).append(wrk(url, batch_body, 4, args.seconds))
            ours.stop(); peer.stop(); servers = []
    finally:
        for s in servers: s.stop()
        shutil.rmtree(work, ignore_errors=True)
    runs = {k: {"rps": statistics.median(s["rps"] for s in v), "rps_runs": [s["rps"] for s in v]} for k, v in samples.items()}
    lines = [f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, loopback, wrk, "
             f"{args.rounds} rounds x {args.seconds} s; {(args.venvs/'mlserver'/'installed').read_text()}", "",
             "| family | ours one row req/s (c16) | MLServer | x MLServer | x our tree | ours 1,000-row rows/s (c4) "
             "| MLServer | x MLServer |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    tree = runs.get(("decision_tree", "ours", "row"))
    for f in families:
        o, ob, m, mb = (runs[(f, who, kind)] for who in ("ours", "MLServer") for kind in ("row", "batch"))
        lines.append(f"| {f} | {o['rps']:,.0f} | {m['rps']:,.0f} | {ratio(o, m):.1f} | "
                     f"{ratio(o, tree) if tree else float('nan'):.2f} | {ob['rps'] * 1000:,.0f} | "
                     f"{mb['rps'] * 1000:,.0f} | {ratio(ob, mb):.1f} |")
    targets = []
    check = lambda text, value, floor: targets.append(f"{'PASS' if value >= floor else 'FAIL'} {text}: {value:.2f} (>= {floor})")
    for f in ("random_forest", "hist_gradient_boosting"):
        if f in families and tree:
            check(f"{f} one row x our tree", ratio(runs[(f, "ours", "row")], tree), 0.6)
            check(f"{f} one row x MLServer", ratio(runs[(f, "ours", "row")], runs[(f, "MLServer", "row")]), 20)
            check(f"{f} 1,000-row batches x MLServer", ratio(runs[(f, "ours", "batch")], runs[(f, "MLServer", "batch")]), 2)
    if "logistic_regression" in families and tree:
        check("logistic_regression one row x our tree", ratio(runs[("logistic_regression", "ours", "row")], tree), 0.9)
    if args.against:
        work = Path(tempfile.mkdtemp(prefix="wine-api-families-"))
        try:
            tree_lines, tree_targets = paired_tree(args.against, args.seconds, args.rounds, work)
        finally: shutil.rmtree(work, ignore_errors=True)
        lines, targets = lines + tree_lines, targets + tree_targets
    text = "\n".join(lines + [""] + targets)
    print(text)
    (HERE/"families-last-run.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

"""A user's own table over HTTP, in one run: a random forest (100 trees) trained by `wine-api train -p data FILE` on a
mixed table (two numbers, three categories, gaps in four columns), against the same family trained on an all-numeric
table of the same width and rows (the categories as numbers, no gaps), and against MLServer's scikit-learn runtime
serving the mixed model's fitted pipeline through its pandas codec (one input per column, BYTES for text, as
MLServer's documentation describes). One row at 16 connections and 1,000-row batches at 4, rounds interleaved,
loopback, wrk.

    python bench/tables.py [--seconds 5] [--rounds 3] [--venvs build/peers]

MLServer is installed, pinned, into a virtualenv of its own by `bench/peers.py`'s `venv` (made when missing). Prints
the table with ratios of medians over the paired rounds (bench/tables-last-run.txt)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import free_port, post, ratio, wrk  # beside this script
from peers import Peer, venv
from wine_api.data import example_churn, read_table
from wine_api.store import MODEL_FILE, version_dir

HERE = Path(__file__).resolve().parent


def records(X:pd.DataFrame) -> list:
    "Rows as `/predict` records: a gap is null."
    return X.astype(object).where(X.notna(), None).to_dict("records")


def numeric_twin(frame:pd.DataFrame) -> pd.DataFrame:
    "The same rows and width with every feature a number: a category's index, gaps filled with the column's median."
    twin = frame.copy()
    for name in frame.columns.drop("churn"):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            twin[name] = frame[name].astype("category").cat.codes.astype(float)
        twin[name] = twin[name].fillna(twin[name].median())
    return twin


def train(work:Path, file:Path) -> Path:
    "A random forest on `file` by a real `wine-api train` run; its version directory."
    store = work/f"models-{file.stem}"
    subprocess.run([str(Path(sys.executable).parent/"wine-api"), "train", "-p", "data", str(file), "-p", "target",
                    "churn", "-p", "estimator", "random_forest", "--model-dir", str(store), "--report-dir",
                    str(work/"reports"), "--quiet"], check=True, capture_output=True)
    return version_dir(store, 1)


class Ours:
    "`wine-api serve` (shipped settings, prediction log on) on one version; ready once it answers `ready_body`."
    def __init__(self, version:Path, work:Path, name:str, ready_body:bytes):
        self.port = free_port()
        self.proc = subprocess.Popen([str(Path(sys.executable).parent/"wine-api"), "serve", "--port", str(self.port),
                                      "--prediction-log", f"sqlite:///{work}/{name}.sqlite", "--model", str(version)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while post(self.url("/predict"), ready_body) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline: raise RuntimeError(f"{name} did not start")
            time.sleep(0.05)

    def url(self, path): return f"http://127.0.0.1:{self.port}{path}"
    def stop(self): self.proc.terminate(); self.proc.wait(30)


def v2_pandas_body(X:pd.DataFrame) -> bytes:
    "A V2 request for MLServer's pandas codec: one input per column, text as BYTES (decoded as str), probabilities out."
    inputs = [{"name": name, "shape": [len(X)], "datatype": "BYTES" if not pd.api.types.is_numeric_dtype(X[name]) else "FP64",
               "data": X[name].tolist(), **({"parameters": {"content_type": "str"}} if not pd.api.types.is_numeric_dtype(X[name]) else {})}
              for name in X.columns]
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs,
                       "outputs": [{"name": "predict_proba"}]}).encode()


def start_mlserver(bin_dir:Path, work:Path, version:Path, row:bytes, batch:bytes) -> Peer:
    folder = work/"mlserver"; folder.mkdir()
    shutil.copy(version/MODEL_FILE, folder/"model.joblib")  # joblib.load reads a plain pickle
    port = free_port()
    (folder/"settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                    "metrics_port": free_port()}))
    (folder/"model-settings.json").write_text(json.dumps({
        "name": "churn", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}))
    return Peer("MLServer", port, [str(bin_dir/"mlserver"), "start", "."], folder, {}, "/v2/models/churn/infer",
                row, batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venvs", type=Path, default=HERE.parent/"build"/"peers")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wine-api-tables-"))
    mlserver = venv(args.venvs, "mlserver")
    frame = example_churn(2000)
    frame.to_csv(work/"mixed.csv", index=False)
    numeric_twin(frame).to_csv(work/"numeric.csv", index=False)
    servers, samples = [], {}
    try:
        print("training both tables (wine-api train)", file=sys.stderr, flush=True)
        mixed, numeric = train(work, work/"mixed.csv"), train(work, work/"numeric.csv")
        full = read_table(work/"mixed.csv", "churn").X.dropna().reset_index(drop=True)  # MLServer's JSON has no NaN
        rows = full.sample(1000, replace=True, random_state=0).reset_index(drop=True)
        twin = numeric_twin(pd.concat([rows, frame[["churn"]].iloc[:1000]], axis=1)).drop(columns="churn")
        bodies = {"mixed": (records(rows.iloc[:1]), records(rows)), "numeric": (records(twin.iloc[:1]), records(twin))}
        body = lambda rs: json.dumps({"records": rs}).encode()
        ours = {name: Ours(version, work, name, body(bodies[name][0]))
                for name, version in (("mixed", mixed), ("numeric", numeric))}
        servers += list(ours.values())
        peer = start_mlserver(mlserver, work, mixed, v2_pandas_body(rows.iloc[:1]), v2_pandas_body(rows))
        servers.append(peer)
        plan = [(("ours, mixed table", "row"), ours["mixed"].url("/predict"), body(bodies["mixed"][0]), 16),
                (("ours, mixed table", "batch"), ours["mixed"].url("/predict"), body(bodies["mixed"][1]), 4),
                (("ours, numeric table", "row"), ours["numeric"].url("/predict"), body(bodies["numeric"][0]), 16),
                (("ours, numeric table", "batch"), ours["numeric"].url("/predict"), body(bodies["numeric"][1]), 4),
                (("MLServer pandas codec, mixed", "row"), peer.url(peer.path), peer.row_body, 16),
                (("MLServer pandas codec, mixed", "batch"), peer.url(peer.path), peer.batch_body, 4)]
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            for key, url, payload, connections in plan[::1 if r % 2 == 0 else -1]:
                samples.setdefault(key, []).append(wrk(url, payload, connections, args.seconds))
    finally:
        for s in servers: s.stop()
        shutil.rmtree(work, ignore_errors=True)
    runs = {k: {"rps": statistics.median(s["rps"] for s in v), "rps_runs": [s["rps"] for s in v]}
            for k, v in samples.items()}
    mixed_row, mixed_batch = runs[("ours, mixed table", "row")], runs[("ours, mixed table", "batch")]
    lines = [f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, loopback, wrk, "
             f"{args.rounds} rounds x {args.seconds} s; {(args.venvs/'mlserver'/'installed').read_text()}",
             "random forest (100 trees), `/predict` records for ours, V2 with the pandas codec for MLServer", "",
             "| server | one row req/s (c16) | mixed x this | 1,000-row rows/s (c4) | mixed x this |",
             "|---|---:|---:|---:|---:|"]
    for who in ("ours, mixed table", "ours, numeric table", "MLServer pandas codec, mixed"):
        row, batch = runs[(who, "row")], runs[(who, "batch")]
        lines.append(f"| {who} | {row['rps']:,.0f} | {ratio(mixed_row, row):.2f} | {batch['rps'] * 1000:,.0f} | "
                     f"{ratio(mixed_batch, batch):.2f} |")
    text = "\n".join(lines)
    print(text)
    (HERE/"tables-last-run.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

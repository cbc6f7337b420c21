"""Benchmark: batch scoring, one run. `wine-api predict FILE --output FILE` on generated rows (CSV and Parquet), against
the engine's own in-process rows/s on the same rows, scikit-learn's `predict_proba` over the same file in chunks, and
Arrow reading the file alone (the floor of any file-to-file run); the Spark job (`wine_api.spark.predict`, local[2])
on the Parquet file; peak memory of each CLI run. For the bundled tree and a 100-tree forest.

    python bench/batch.py [--rows 10000000] [--spark-rows 2000000]

Every figure is measured in this run on this machine; ratios are against the engine (or scikit-learn) on the same rows.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.ensemble import RandomForestClassifier

from wine_api.data import feature_schema, load_wine_data
from wine_api.predict import Predictor
from wine_api.store import bundled_model_dir, load_model, save_model, verify_version
from wine_api.train import describe_estimator, serving_files

WINE = load_wine_data()
WINE_API = Path(sys.executable).parent/"wine-api"


def say(*args): print(*args, flush=True)


def generate(directory:Path, n:int) -> tuple:
    "`n` wines with 1 % noise, 3 decimals, an id: as CSV and as Parquet (row groups of 128 Ki rows)."
    rng, X = np.random.default_rng(0), WINE.X.to_numpy()
    csv_path, parquet_path = directory/"rows.csv", directory/"rows.parquet"
    writer = None
    with open(csv_path, "wb") as f:
        for start in range(0, n, 1_000_000):
            m = min(1_000_000, n - start)
            A = np.round(X[rng.integers(0, len(X), m)] * rng.normal(1, .01, (m, X.shape[1])), 3)
            table = pa.table({"id": np.arange(start, start + m), **{name: A[:, j] for j, name in
                                                                     enumerate(WINE.feature_names)}})
            pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=start == 0, quoting_style="none"))
            writer = writer or pq.ParquetWriter(parquet_path, table.schema)
            writer.write_table(table, row_group_size=128 * 1024)
    writer.close()
    return csv_path, parquet_path


def forest_store(directory:Path) -> Path:
    X = WINE.X.to_numpy(np.float32).astype(np.float64)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, WINE.y)
    serving, _ = serving_files(forest, X, len(WINE.class_names))
    save_model(forest, directory/"forest", feature_schema(WINE.X), WINE.class_names, serving=serving,
               estimator=describe_estimator(forest))
    return directory/"forest"


def rows_in_memory(parquet_path:Path, n:int) -> np.ndarray:
    "The first `n` rows of the file as the engine takes them: float32, model order."
    table = pq.ParquetFile(parquet_path).iter_batches(batch_size=n, columns=WINE.feature_names)
    batch = next(table)
    return np.column_stack([batch.column(name).to_numpy() for name in WINE.feature_names]).astype(np.float32)


def engine_rate(store:Path, X:np.ndarray, block:int=65536) -> float:
    "The engine's own rows/s on in-memory rows, in blocks as the CLI scores them (one thread, no I/O)."
    predictor = Predictor(verify_version(store))
    started = time.perf_counter()
    for start in range(0, len(X), block): predictor.predict(X[start:start + block])
    return len(X) / (time.perf_counter() - started)


def cli_run(source:Path, output:Path, store:Path) -> tuple:
    "`wine-api predict SOURCE -o OUTPUT`: (seconds, peak RSS MiB) of the command, under a fresh parent."
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:]); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.exit(r.returncode)")
    run = subprocess.run([sys.executable, "-c", code, str(WINE_API), "predict", str(source), "-o", str(output),
                          "--id-column", "id", "--model", str(store), "--quiet"], capture_output=True, text=True)
    if run.returncode: raise SystemExit(run.stderr)
    seconds, peak = run.stdout.split()
    output.unlink()
    return float(seconds), int(peak) / 1024


def scikit_learn_rate(source:Path, store:Path, n:int, block:int=65536) -> float:
    "scikit-learn's `predict_proba` over the file in chunks (pandas reads, Arrow writes the classes and probabilities)."
    estimator = load_model(store).estimator
    started, writer = time.perf_counter(), None
    out = source.with_name("sklearn-out.parquet")
    reader = pd.read_csv(source, chunksize=block) if source.suffix == ".csv" else (
        b.to_pandas() for b in pq.ParquetFile(source).iter_batches(batch_size=block))
    for frame in reader:
        X = frame[WINE.feature_names].to_numpy(np.float32).astype(np.float64)
        p = estimator.predict_proba(X)
        table = pa.table({"id": frame["id"].to_numpy(), "class": p.argmax(axis=1),
                          **{f"p{k}": p[:, k] for k in range(p.shape[1])}})
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
    writer.close(); out.unlink()
    return n / (time.perf_counter() - started)


def read_only_rate(source:Path, n:int) -> float:
    "Arrow reading the feature columns alone (multithreaded): no checks, no scoring, no output."
    started = time.perf_counter()
    if source.suffix == ".csv":
        for _ in pacsv.open_csv(source, convert_options=pacsv.ConvertOptions(include_columns=WINE.feature_names)): pass
    else:
        for _ in pq.ParquetFile(source).iter_batches(batch_size=65536, columns=WINE.feature_names): pass
    return n / (time.perf_counter() - started)


def spark_rate(parquet_path:Path, store:Path, n:int) -> float:
    "`wine_api.spark.predict` on local[2], Parquet in, Parquet out (the session started before the clock)."
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession
    from wine_api.spark import predict
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "2g")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")  # Arrow batches of 64 Ki rows, not 10 Ki
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    out = parquet_path.with_name("spark-out")
    df = spark.read.parquet(str(parquet_path)).limit(n) if n else spark.read.parquet(str(parquet_path))
    started = time.perf_counter()
    predict(df, store, keep=["id"]).write.mode("overwrite").parquet(str(out))
    seconds = time.perf_counter() - started
    spark.stop()
    return n / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--spark-rows", type=int, default=2_000_000, help="rows the Spark job scores (0: skip)")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    say(f"batch scoring, commit {commit}, {os.cpu_count()} cores, {args.rows:,} generated rows")
    with tempfile.TemporaryDirectory(prefix="wine-api-bench-batch-") as scratch:
        here = Path(scratch)
        started = time.perf_counter()
        csv_path, parquet_path = generate(here, args.rows)
        say(f"generated in {time.perf_counter() - started:.0f} s: CSV {csv_path.stat().st_size / 2**20:,.0f} MiB, "
            f"Parquet {parquet_path.stat().st_size / 2**20:,.0f} MiB")
        stores = {"tree (bundled)": bundled_model_dir(), "forest (100 trees)": forest_store(here)}
        X = rows_in_memory(parquet_path, min(args.rows, 2_000_000))
        floors = {kind: read_only_rate(path, args.rows) for kind, path in (("CSV", csv_path),
                                                                             ("Parquet", parquet_path))}
        say(f"Arrow reading the features alone: CSV {floors['CSV']:,.0f} rows/s, Parquet {floors['Parquet']:,.0f}")
        say("")
        say("CLI: `wine-api predict FILE -o rows.parquet --id-column id`, wall time with the process's start (~1 s);")
        say("engine: `Predictor.predict` on the same rows in memory, one thread, 64 Ki-row blocks; reading: Arrow reading the")
        say("features alone; sklearn: pandas/Arrow reading 64 Ki-row chunks, `predict_proba`, the classes and probabilities")
        say("written to Parquet (no checks, no warnings, no id, version or fingerprint)")
        say(f"{'model':<20} {'input':<8} {'engine rows/s':>14} {'CLI rows/s':>11} {'× engine':>9} {'× reading':>10} "
            f"{'sklearn rows/s':>15} {'× sklearn':>10} {'peak MiB':>9}")
        targets = []
        for name, store in stores.items():
            engine = engine_rate(store, X)
            for kind, path in (("CSV", csv_path), ("Parquet", parquet_path)):
                seconds, peak = cli_run(path, here/"out.parquet", store)
                cli = args.rows / seconds
                sklearn = scikit_learn_rate(path, store, args.rows)
                say(f"{name:<20} {kind:<8} {engine:>14,.0f} {cli:>11,.0f} {cli / engine:>9.2f} {cli / floors[kind]:>10.2f} "
                    f"{sklearn:>15,.0f} {cli / sklearn:>10.2f} {peak:>9.0f}")
                targets.append((f"{name}, {kind}: peak MiB", peak, "<", 500))
                targets.append((f"{name}, {kind}: CLI × engine in-process", cli / engine, ">=", 0.7))
        if args.spark_rows:
            say("")
            for name, store in stores.items():
                rate = spark_rate(parquet_path, store, args.spark_rows)
                say(f"Spark local[2], {name}: {args.spark_rows:,} rows from Parquet to Parquet, {rate:,.0f} rows/s")
        say("")
        say("targets (measured, then the target):")
        for label, value, op, bound in targets:
            ok = value < bound if op == "<" else value >= bound
            say(f"  {'PASS' if ok else 'FAIL'}  {label}: {value:.2f} {op} {bound}")


if __name__ == "__main__":
    main()

"""The serving engines side by side, in-process, one thread: for each family of `wine_api.train.FAMILIES`, fitted on the
wine data as the training notebook fits it, our engine (the version's serving file, read back as the server reads
it) against scikit-learn's `predict_proba`, and, where they convert the model, treelite 4 (GTIL) and onnxruntime (via
skl2onnx, zipmap off, float32 and float64 inputs). Agreement with `predict_proba` on 5,000 random rows far outside the
training ranges, microseconds for one row, rows/s for 1,000-row batches, load time of the serving form.

    python bench/engines.py            # pip install treelite onnxruntime skl2onnx for their columns

Prints one table (markdown) and writes it to bench/engines-last-run.txt."""
import io
import os
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread for every library, as one server worker computes
import numpy as np
from threadpoolctl import threadpool_limits

from wine_api.data import load_wine_data
from wine_api.engine import (UnsupportedModel, engine_from_bytes, engine_from_estimator, engine_from_skops,
                             engine_to_bytes, far_rows, skops_bytes)
from wine_api.store import runtime_versions
from wine_api.train import FAMILIES, as_model_input, family_model

HERE = Path(__file__).parent


def best_seconds(call, repeat:int, rounds:int=5) -> float:
    "The fastest of `rounds` averages of `repeat` calls: the machine's noise only ever adds time."
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat): call()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def measure(probabilities, expected:np.ndarray, rows:np.ndarray) -> dict:
    "Agreement on `rows`, one-row microseconds, 1,000-row batch rows/s of a `probabilities(X)` function."
    difference = float(np.abs(probabilities(rows) - expected).max())
    one, batch = rows[:1], rows[:1000]
    return {"difference": difference, "one_us": 1e6 * best_seconds(lambda: probabilities(one), 200),
            "rows_per_s": 1000 / best_seconds(lambda: probabilities(batch), 5)}


def ours(model, n_classes:int):
    "Our served form of `model` and its load time: the arrays engine, or the skops fallback."
    manifest = {"runtime": runtime_versions(), "features": [None] * 13, "class_names": [None] * n_classes}
    try:
        data = engine_to_bytes(engine_from_estimator(model))
        load = lambda: engine_from_bytes(data, 13, n_classes, "bench")
    except UnsupportedModel:
        data = skops_bytes(model)
        load = lambda: engine_from_skops(data, manifest, "bench")
    engine = load()
    return engine, best_seconds(load, 3, 3), len(data)


def treelite_form(model):
    "treelite's GTIL for a tree ensemble, or None where it has no importer (or is not installed)."
    try:
        import treelite
        imported = treelite.sklearn.import_model(model)
    except Exception: return None
    data = imported.serialize_bytes()
    load = lambda: treelite.Model.deserialize_bytes(data)
    gtil = lambda X: treelite.gtil.predict(imported, X, pred_margin=False).reshape(len(X), -1)
    return gtil, best_seconds(load, 3, 3), len(data)


def onnx_form(model, double:bool):
    "onnxruntime on skl2onnx's conversion (zipmap off), or None where it cannot convert (or is not installed)."
    try:
        import onnxruntime
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
        kind = DoubleTensorType if double else FloatTensorType
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = convert_sklearn(model, initial_types=[("X", kind([None, 13]))], options={"zipmap": False},
                                  target_opset=18)
    except Exception as e: return type(e).__name__
    data = onx.SerializeToString()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    load = lambda: onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    try: session = load()
    except Exception as e: return type(e).__name__  # onnxruntime refuses what skl2onnx made (float64 trees)
    output = [o.name for o in session.get_outputs()][-1]  # probabilities
    dtype = np.float64 if double else np.float32
    run = lambda X: session.run([output], {"X": X.astype(dtype)})[0]
    return run, best_seconds(load, 3, 3), len(data)


def install_mib(*names) -> str:
    "The installed size of the distributions `names`, from their RECORD files."
    total = 0
    for name in names:
        try: total += sum(f.size or 0 for f in distribution(name).files or [])
        except PackageNotFoundError: return "-"
    return f"{total / 2**20:.0f}"


def row(family:str, engine:str, m:dict, load_s:float, size:int, mib:str) -> str:
    return (f"| {family} | {engine} | {m['difference']:.1e} | {m['one_us']:,.0f} | {m['rows_per_s']:,.0f} | "
            f"{1e3 * load_s:.1f} | {size / 1024:,.0f} | {mib} |")


def main():
    wine = load_wine_data()
    X, y = as_model_input(wine.X), wine.y.to_numpy()
    rows = far_rows(X, 5000, seed=3)
    lines = ["| family | engine | max \\|p - predict_proba\\| | us / row | rows/s at 1,000 | load ms | serving file KiB "
             "| install MiB |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    sizes = {"ours": install_mib("numpy", "scipy"), "scikit-learn": install_mib("scikit-learn", "scipy", "numpy", "joblib",
                                                                                "threadpoolctl"),
             "treelite": install_mib("treelite"), "onnxruntime": install_mib("onnxruntime", "skl2onnx", "onnx")}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for family in FAMILIES:
            print(f"{family} ...", file=sys.stderr, flush=True)
            model = family_model(family, 42).fit(X, y)
            expected = model.predict_proba(rows)
            lines.append(row(family, "scikit-learn", measure(model.predict_proba, expected, rows), 0, 0,
                             sizes["scikit-learn"]))
            engine, load_s, size = ours(model, 3)
            lines.append(row(family, f"ours ({engine.kind})", measure(engine.probabilities, expected, rows), load_s,
                             size, sizes["ours" if engine.kind == "arrays" else "scikit-learn"]))
            form = treelite_form(model)
            if form: lines.append(row(family, "treelite GTIL", measure(form[0], expected, rows), *form[1:],
                                      sizes["treelite"]))
            for double in (False, True):
                form = onnx_form(model, double)
                name = f"onnxruntime {'float64' if double else 'float32'}"
                if isinstance(form, tuple):
                    lines.append(row(family, name, measure(form[0], expected, rows), *form[1:], sizes["onnxruntime"]))
                elif form: lines.append(f"| {family} | {name} | skl2onnx: {form} | | | | | |")
    table = "\n".join(lines)
    print(table)
    (HERE/"engines-last-run.txt").write_text(table + "\n")


if __name__ == "__main__": main()

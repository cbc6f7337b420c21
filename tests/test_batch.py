"""`wine-api predict FILE --output FILE`, the streaming batch scorer, run for real: every wine and random rows far
outside the training ranges, for the bundled tree, a forest and a table with categories and gaps, scored by the CLI
(CSV, Parquet and JSON lines in and out) and by a live server, which must agree exactly, and with scikit-learn's
`predict_proba`; a million rows in bounded memory; bad rows stopping the run or going to a rejects file; Ctrl-C and
SIGTERM leaving nothing half-written; the progress bar in a real terminal (tmux); refusals before any work."""
import math
import os
import pickle
import shutil
import signal
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

from harness import WINE_API, LiveServer, assert_answers, assert_like_scikit_learn, plant_pickle, run_cli
from wine_api.data import example_churn, feature_schema, load_wine_data, read_table
from wine_api.store import bundled_model_dir, load_model, save_model, verify_version, version_dir
from wine_api.train import describe_estimator, encoded_rows, frame_input, make_model, serving_files, training_features

WINE = load_wine_data()


def far_rows(n:int, seed:int=0) -> pd.DataFrame:
    "Random rows up to three ranges beyond each feature's training range, rounded as a CSV would hold them."
    rng, X = np.random.default_rng(seed), WINE.X
    low, high = X.min().to_numpy(), X.max().to_numpy()
    span = high - low
    return pd.DataFrame(np.round(rng.uniform(low - 3 * span, high + 3 * span, (n, len(low))), 4),
                        columns=WINE.feature_names)


def wine_table(n_far:int=600) -> pd.DataFrame:
    "Every wine, then random far rows, with an id column first."
    rows = pd.concat([WINE.X, far_rows(n_far)], ignore_index=True)
    rows.insert(0, "wine id", [f"w-{i:05d}" for i in range(len(rows))])
    return rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    "name -> store: the bundled tree, and a 60-tree forest saved with its checked serving arrays."
    root = tmp_path_factory.mktemp("batch-stores")
    X = WINE.X.to_numpy(np.float32).astype(np.float64)
    forest = RandomForestClassifier(n_estimators=60, random_state=0).fit(X, WINE.y)
    serving, _ = serving_files(forest, X, len(WINE.class_names))
    save_model(forest, root/"forest", feature_schema(WINE.X), WINE.class_names, serving=serving,
               estimator=describe_estimator(forest))
    return {"tree": bundled_model_dir(), "forest": root/"forest"}


def scores_of(path) -> pd.DataFrame:
    "A scores file read back, whatever its kind (ids as text)."
    path = str(path)
    if path.endswith(".parquet"): return pq.read_table(path).to_pandas()
    if path.endswith(".jsonl"): return pd.DataFrame([orjson.loads(line) for line in open(path, "rb")])
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"wine id": pa.string()})).to_pandas()


def probabilities_of(scores:pd.DataFrame, class_names:list) -> np.ndarray:
    return scores[[f"probability_{c}" for c in class_names]].to_numpy()


def server_answers(server, rows:pd.DataFrame, chunk:int=500) -> tuple:
    "The classes and probabilities `/predict` gives for `rows` (records, NaN as null), in chunks."
    classes, probabilities = [], []
    for start in range(0, len(rows), chunk):
        part = rows.iloc[start:start + chunk]
        records = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                   for r in part.to_dict("records")]
        r = requests.post(f"{server.url}/predict", json={"records": records}, timeout=60)
        assert r.status_code == 200, r.text[:500]
        for p in r.json()["predictions"]:
            classes.append(p["class"])
            probabilities.append(list(p["probabilities"].values()))
    return np.array(classes), np.array(probabilities)


@pytest.mark.parametrize("family", ["tree", "forest"])
def test_the_cli_the_server_and_scikit_learn_give_the_same_answers(tmp_path, stores, family):
    store, rows = stores[family], wine_table()
    rows.to_csv(tmp_path/"rows.csv", index=False)
    rows.to_parquet(tmp_path/"rows.parquet")
    (tmp_path/"rows.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows.to_dict("records")) + b"\n")
    served = verify_version(store)
    outputs = {}
    for source, output in (("rows.csv", "scores.parquet"), ("rows.parquet", "scores.csv"),
                           ("rows.jsonl", "scores.jsonl")):
        run = run_cli("predict", source, "--model", store, "--output", output, "--id-column", "wine id", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert f"scored {len(rows):,} of {len(rows):,} rows" in run.stderr, run.stderr
        outputs[source] = scores_of(tmp_path/output)
    first = outputs["rows.csv"]
    assert first["wine id"].tolist() == rows["wine id"].tolist()
    assert set(first["model_version"]) == {served.version} and set(first["model_fingerprint"]) == {served.fingerprint}
    for other in outputs.values():  # the three kinds of file give the same scores
        assert other["class"].tolist() == first["class"].tolist()
        np.testing.assert_array_equal(probabilities_of(other, WINE.class_names), probabilities_of(first, WINE.class_names))
    far = first.iloc[len(WINE.X):]
    assert all(orjson.loads(w) for w in far["warnings"]) and first["class_name"].tolist() == [
        WINE.class_names[c] for c in first["class"]]
    estimator = load_model(store).estimator
    assert_like_scikit_learn(first["class"], probabilities_of(first, WINE.class_names), estimator,
                             rows[WINE.feature_names].to_numpy())
    server = LiveServer("--model-dir", store, "--no-prediction-log")
    try: classes, probabilities = server_answers(server, rows[WINE.feature_names])
    finally: server.stop()
    assert classes.tolist() == first["class"].tolist()
    np.testing.assert_array_equal(probabilities, probabilities_of(first, WINE.class_names))


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    "A forest on the churn table (numbers, categories, yes/no columns, gaps), prepared in its pipeline."
    root = tmp_path_factory.mktemp("churn")
    example_churn().to_csv(root/"churn.csv", index=False)
    table = read_table(root/"churn.csv", "churn")
    features = training_features(table.X, table.categorical)
    model = make_model("random_forest", {"n_estimators": 30}, features=features).fit(frame_input(table.X), table.y)
    serving, _ = serving_files(model, encoded_rows(table.X, features), len(table.class_names), features)
    save_model(model, root/"models", features, table.class_names, serving=serving, estimator=describe_estimator(model))
    return root, table


def test_a_table_with_categories_and_gaps_scores_as_the_server_answers(churn, tmp_path):
    root, table = churn
    rows = table.X.copy()
    rng = np.random.default_rng(3)
    for name in table.categorical:  # unseen categories and gaps beside the file's own values
        rows[name] = rows[name].where(rng.random(len(rows)) > .15, "never seen").where(rng.random(len(rows)) > .1)
    rows.insert(0, "customer", range(len(rows)))
    rows.to_csv(tmp_path/"customers.csv", index=False)
    rows.to_parquet(tmp_path/"customers.parquet")
    for source in ("customers.csv", "customers.parquet"):
        run = run_cli("predict", source, "--model", root/"models", "-o", "scores.parquet", "--id-column", "customer",
                      cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        scores = pq.read_table(tmp_path/"scores.parquet").to_pandas()
        assert scores["customer"].astype(int).tolist() == list(range(len(rows)))
        assert any("unseen_category" in w for w in scores["warnings"])
        estimator = load_model(root/"models").estimator
        assert_answers(scores["class"], probabilities_of(scores, table.class_names), estimator,
                       frame_input(rows[table.feature_names]))
    server = LiveServer("--model-dir", root/"models", "--no-prediction-log")
    try: classes, probabilities = server_answers(server, rows[table.feature_names])
    finally: server.stop()
    assert classes.tolist() == scores["class"].tolist()
    np.testing.assert_array_equal(probabilities, probabilities_of(scores, table.class_names))


def test_batch_scoring_never_unpickles(tmp_path, stores):
    "The forest's `model.pkl` replaced by a live payload (re-fingerprinted): the CLI scores from the serving file."
    version = tmp_path/"version"
    shutil.copytree(version_dir(stores["forest"], 1), version)
    marker = tmp_path/"unpickled"
    planted = plant_pickle(version, marker)
    WINE.X.to_csv(tmp_path/"rows.csv", index=False)
    run = run_cli("predict", "rows.csv", "--model", version, "-o", "scores.parquet", cwd=tmp_path)
    assert run.returncode == 0 and pq.read_table(tmp_path/"scores.parquet").num_rows == len(WINE.X), run.stderr
    assert not marker.exists()  # the pickle never ran
    pickle.loads(planted)  # and it would have: the payload is real
    assert marker.exists()


def test_bad_rows_stop_the_run_or_go_to_the_rejects_file(tmp_path):
    rows = wine_table(0)
    text = [line.split(",") for line in rows.to_csv(index=False).splitlines()]
    text[4][11] = "high"  # line 5: a word for the hue
    text[7] = text[7][:5]  # line 8: a row cut short
    text[9][13] = ""  # line 10: no proline
    text = [",".join(cells) for cells in text]
    (tmp_path/"bad.csv").write_text("\n".join(text) + "\n")
    (tmp_path/"scores.csv").write_text("the old scores\n")
    stopped = run_cli("predict", "bad.csv", "-o", "scores.csv", cwd=tmp_path)
    assert stopped.returncode == 1 and "line 5, feature 'hue': expected a number, got the string 'high'" in \
        stopped.stderr and "nothing was written" in stopped.stderr, stopped.stderr
    assert (tmp_path/"scores.csv").read_text() == "the old scores\n"  # the old output is untouched
    run = run_cli("predict", "bad.csv", "-o", "scores.csv", "--id-column", "wine id", "--rejects", "rejects.csv",
                  cwd=tmp_path)
    assert run.returncode == 0 and "scored 175 of 178 rows, 3 rejected into rejects.csv" in run.stderr, run.stderr
    rejects = pacsv.read_csv(tmp_path/"rejects.csv", convert_options=pacsv.ConvertOptions(
        strings_can_be_null=True)).to_pylist()  # an empty cell: no id, no feature
    assert [(r["line"], r["wine id"], r["feature"]) for r in rejects] == [
        (5, "w-00003", "hue"), (8, None, None), (10, "w-00008", "proline")], rejects
    assert rejects[1]["message"] == "expected 14 fields as in the header, got 5"
    scores = scores_of(tmp_path/"scores.csv")
    assert "w-00003" not in scores["wine id"].tolist() and len(scores) == 175
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "rejects.csv", "scores.csv"]  # no temporary file


def test_refused_before_any_work(tmp_path):
    WINE.X.drop(columns=["hue"]).to_csv(tmp_path/"no-hue.csv", index=False)
    pd.DataFrame({"when": pd.to_datetime(["2026-01-01"]), **{n: [1.0] for n in WINE.feature_names[1:]},
                  "alcohol": pd.to_datetime(["2026-01-01"])}).to_parquet(tmp_path/"dates.parquet")
    (tmp_path/"empty.csv").write_bytes(b"")
    WINE.X.to_csv(tmp_path/"good.csv", index=False)
    cases = [(["no-hue.csv", "-o", "s.csv"], "no-hue.csv has no column 'hue'"),
             (["no-hue.csv", "-o", "s.json"], "cannot be streamed"),
             (["no-hue.csv", "-o", "no-hue.csv"], "the output would replace the input"),
             (["dates.parquet", "-o", "s.csv"], "'alcohol' holds timestamp"),
             (["empty.csv", "-o", "s.csv"], "the file is empty"),
             (["missing.csv", "-o", "s.csv"], "no such file"),
             (["no-hue.csv", "-o", "s.csv", "--url", "http://127.0.0.1:9"], "it does not ask a server"),
             (["no-hue.csv", "--rejects", "r.csv"], "--rejects goes with --output FILE"),
             (["good.csv", "-o", "s.csv", "--id-column", "key"], "good.csv has no column 'key' (the id column)")]
    for args, words in cases:
        run = run_cli("predict", *args, cwd=tmp_path)
        assert run.returncode in (1, 2) and words in run.stderr, (args, run.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dates.parquet", "empty.csv", "good.csv", "no-hue.csv"]


def million_rows(path, n:int=1_000_000, seed:int=1):
    "`n` wines with a little noise, written as CSV in pieces (the test itself stays small too)."
    rng, X = np.random.default_rng(seed), WINE.X.to_numpy()
    with open(path, "wb") as f:
        for start in range(0, n, 200_000):
            part = X[rng.integers(0, len(X), min(200_000, n - start))] * rng.normal(1, .01, (min(200_000, n - start),
                                                                                          X.shape[1]))
            frame = pd.DataFrame(np.round(part, 3), columns=WINE.feature_names)
            frame.insert(0, "id", np.arange(start, start + len(frame)))
            f.write(frame.to_csv(index=False, header=start == 0).encode())


def rss_over_a_run(*args, cwd) -> tuple:
    """Run `wine-api *args`, reading its resident memory every 20 ms once it writes its output (the imports done):
    `(returncode, stderr, [MiB, ...])`."""
    proc = subprocess.Popen([str(WINE_API), *map(str, args)], cwd=cwd, stderr=subprocess.PIPE, text=True)
    samples = []
    while proc.poll() is None:
        if not any(p.name.endswith(".partial") for p in Path(cwd).iterdir()):
            time.sleep(0.02)
            continue
        try: status = Path(f"/proc/{proc.pid}/status").read_text()
        except FileNotFoundError: break
        samples += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")]
        time.sleep(0.02)
    return proc.wait(), proc.stderr.read(), samples


def test_a_million_rows_in_bounded_memory(tmp_path):
    "The resident memory levels off after the first blocks: the last third of the run holds no more than the first."
    million_rows(tmp_path/"big.csv")
    code, err, samples = rss_over_a_run("predict", "big.csv", "-o", "big.parquet", "--id-column", "id", cwd=tmp_path)
    assert code == 0 and "scored 1,000,000 of 1,000,000 rows" in err, err
    third = len(samples) // 3
    assert third >= 10, samples  # the run was long enough to see a trend
    early, late = max(samples[third // 2:third]), max(samples[2 * third:])
    assert max(samples) < 500 and late < early + 40, (early, late, max(samples))
    scores = pq.read_table(tmp_path/"big.parquet", columns=["id", "class"])
    assert scores.num_rows == 1_000_000 and scores.column("id").to_pylist()[-3:] == ["999997", "999998", "999999"]
    print(f"\n  resident memory: {early:.0f} MiB early, {late:.0f} MiB late, {max(samples):.0f} MiB at most")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_nothing_half_written(tmp_path, how):
    million_rows(tmp_path/"big.csv", 1_500_000)
    (tmp_path/"big.jsonl").write_text("the old scores\n")
    proc = subprocess.Popen([str(WINE_API), "predict", "big.csv", "-o", "big.jsonl"], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".partial") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, "the run never started writing"
        time.sleep(0.05)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: nothing was written to big.jsonl" in err, (proc.returncode, err)
    assert (tmp_path/"big.jsonl").read_text() == "the old scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "big.jsonl"]


def test_the_progress_bar_in_a_terminal(tmp_path):
    million_rows(tmp_path/"big.csv", 1_500_000)
    session = f"wine-api-progress-{os.getpid()}"
    command = f"{WINE_API} predict big.csv -o big.parquet; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "20", "-c", str(tmp_path),
                    command], check=True)
    try:
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True).stdout
            seen.append(pane)
            if "scored 1,500,000" in pane: break
            time.sleep(0.2)
    finally: subprocess.run(["tmux", "kill-session", "-t", session])
    bars = [line for pane in seen for line in pane.splitlines() if "rows/s" in line and "%|" in line]
    assert bars, seen[-1]
    assert any("<" in bar for bar in bars)  # the time left
    assert "scored 1,500,000 of 1,500,000 rows" in seen[-1], seen[-1]
    quiet = run_cli("predict", "big.csv", "-o", "again.parquet", cwd=tmp_path)  # not a terminal: no bar
    assert quiet.returncode == 0 and "rows/s]" not in quiet.stderr and quiet.stderr.count("\n") == 1, quiet.stderr

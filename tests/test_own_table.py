"""A user's own table, end to end: iris as CSV (string classes, feature names with spaces and brackets), breast cancer
as Parquet (two classes), and a generated churn table of numbers, categories, yes/no columns and gaps in several of
them, with a string target. Each is trained by real `wine-api train -p data FILE -p target COLUMN` runs, served by a
real server, and asked through `/predict` (records, instances, columns), `/api/`, V2 JSON and the CLI; every answer is
compared with `load_model(dir).estimator` on the same rows. Broken files and bad values are refused, by name."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_breast_cancer, load_iris

from harness import LiveServer, assert_answers, run_cli, train_into
from wine_api.client import WineApiClient as Client
from wine_api.data import Features, example_churn, read_table
from wine_api.store import list_versions, load_model, read_manifest, version_dir
from wine_api.train import frame_input

CHURN_FAMILIES = ("random_forest", "logistic_regression", "svc")  # trees, the arrays' one-hot path, the skops fallback


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    "The three files, as a user would have them."
    root = tmp_path_factory.mktemp("tables")
    iris = load_iris(as_frame=True)
    (iris.frame.drop(columns="target").assign(species=[iris.target_names[i] for i in iris.target])
     .to_csv(root/"iris.csv", index=False))
    cancer = load_breast_cancer(as_frame=True)
    (cancer.frame.drop(columns="target").assign(diagnosis=np.where(cancer.target == 1, "benign", "malignant"))
     .to_parquet(root/"cancer.parquet"))
    example_churn().to_csv(root/"churn.csv", index=False)
    return root


@pytest.fixture(scope="module")
def trained(tables):
    "name -> (version directory, the table as read): iris and cancer once each, the churn table in three families."
    runs = {"iris": ("iris.csv", "species", "decision_tree"), "cancer": ("cancer.parquet", "diagnosis", "random_forest"),
            **{f"churn-{family}": ("churn.csv", "churn", family) for family in CHURN_FAMILIES}}
    done = {}
    for name, (file, target, family) in runs.items():
        run = train_into(tables/name, "-p", "data", tables/file, "-p", "target", target, "-p", "estimator", family)
        assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
        done[name] = (version_dir(run.store, 1), read_table(tables/file, target))
    return done


def records(X:pd.DataFrame) -> list:
    "Rows as `/predict` records: NaN becomes null."
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in X.to_dict("records")]


def odd_rows(table, n:int=300, seed:int=2) -> pd.DataFrame:
    "Rows no file holds: numbers far outside their range, unseen categories, gaps everywhere the model takes them."
    rng, X = np.random.default_rng(seed), table.X.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for name in table.feature_names:
        if name in table.categorical:
            X[name] = X[name].where(rng.random(n) > .2, "never seen").where(rng.random(n) > .1, np.nan)
        else:
            low, high = table.X[name].min(), table.X[name].max()
            X[name] = rng.uniform(low - 3 * (high - low), high + 3 * (high - low), n).astype(np.float32).astype(float)
            if table.categorical: X[name] = X[name].where(rng.random(n) > .1, np.nan)
    return X


def answers(answer:dict, class_names:list) -> tuple:
    "The classes and the probabilities of a `/predict` answer."
    predictions = answer["predictions"]
    return ([p["class"] for p in predictions],
            np.array([[p["probabilities"][c] for c in class_names] for p in predictions]))


def assert_like_estimator(classes, probabilities, estimator, X:pd.DataFrame, exact:bool):
    "What `assert_like_scikit_learn` asks, on a table as its estimator takes it (numbers as float32 values)."
    given = frame_input(X)
    assert_answers(classes, probabilities, estimator,
                   given if hasattr(estimator, "feature_names_in_") else given.to_numpy(np.float64), exact)


@pytest.mark.parametrize("name", ["iris", "cancer", *(f"churn-{f}" for f in CHURN_FAMILIES)])
def test_each_table_is_served_as_its_estimator_answers_on_every_row_and_far_beyond(trained, name):
    path, table = trained[name]
    model, manifest = load_model(path), read_manifest(path)
    assert manifest["class_names"] == sorted(set(table.frame[table.target].astype(str)))
    assert manifest["lineage"]["data"]["table"] == table.name
    kinds = {f["name"]: f.get("kind", "number") for f in manifest["features"]}
    assert kinds == {n: "category" if n in table.categorical else "number" for n in table.feature_names}
    X = pd.concat([table.X, odd_rows(table)], ignore_index=True)
    exact = manifest["serving"]["engine"] == "skops"
    server = LiveServer("--model", path, "--no-prediction-log")
    try:
        answer = requests.post(server.url + "/predict", json={"records": records(X)}, timeout=60).json()
        classes, probabilities = answers(answer, manifest["class_names"])
        assert_like_estimator(classes, probabilities, model.estimator, X, exact)
        assert all(p["class_name"] == manifest["class_names"][p["class"]] for p in answer["predictions"])
        from_client = Client(server.url).predict(X.iloc[:50])  # a DataFrame of mixed dtypes, NaN and all
        assert [p["class"] for p in from_client["predictions"]] == classes[:50]
        exploration = requests.get(server.url + "/model/exploration", timeout=30)
        assert exploration.status_code == 200 and "Class balance" in exploration.text
        assert f"{table.name}: {len(table.frame)} rows" in exploration.text and "def read_table" not in exploration.text
        assert 'id="exploration-link"' in requests.get(server.url + "/model/card", timeout=10).text
        report = requests.get(server.url + "/model/report", timeout=30).text  # the run, as a reader wants it
        assert "The run</h2>" in report and "def make_model" not in report and "Intended use" not in report
        assert "IPython.core.display.JSON object" not in report and "rerun this cell" not in report
        columns = {"columns": list(reversed(table.feature_names)),
                   "data": [list(reversed(list(r.values()))) for r in records(X)]}
        assert answers(requests.post(server.url + "/predict", json=columns, timeout=60).json(),
                       manifest["class_names"])[0] == classes
        if not table.categorical:  # numbers only: the tutorial's rows and the single V2 tensor work too
            rows = X.to_numpy().tolist()
            assert requests.post(server.url + "/api/", json=rows, timeout=60).json() == classes
            v2 = requests.post(server.url + f"/v2/models/{table.name}/infer", timeout=60, json={"inputs": [
                {"name": "x", "datatype": "FP64", "shape": [len(rows), len(rows[0])], "data": rows}]}).json()
            assert v2["outputs"][0]["data"] == classes
            return
        inputs = [{"name": f, "datatype": "BYTES" if f in table.categorical else "FP64", "shape": [len(X)],
                   "data": [r[f] for r in records(X)]} for f in table.feature_names]
        v2 = requests.post(server.url + f"/v2/models/{table.name}/infer", json={"inputs": inputs}, timeout=60).json()
        assert v2["outputs"][0]["data"] == classes
        np.testing.assert_allclose(np.reshape(v2["outputs"][1]["data"], probabilities.shape), probabilities, atol=0)
        unseen = [w for p in answer["predictions"] for w in p["warnings"] if w.get("unseen_category")]
        assert unseen and all(w["feature"] in table.categorical for w in unseen)
        metadata = requests.get(server.url + f"/v2/models/{table.name}", timeout=10).json()
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == \
            {n: "BYTES" if n in table.categorical else "FP64" for n in table.feature_names}
        card = requests.get(server.url + "/model/card", timeout=10)
        assert card.status_code == 200 and '<select id="f-plan"' in card.text and ">(missing)</option>" in card.text
    finally:
        server.stop()


def test_bad_values_are_refused_naming_row_and_feature_and_an_unseen_category_is_answered(trained):
    churn, iris = trained["churn-random_forest"][0], trained["iris"][0]
    server, plain = LiveServer("--model", churn, "--no-prediction-log"), LiveServer("--model", iris, "--no-prediction-log")
    good = {"age": 30, "monthly charge ($)": 80.5, "plan": "basic", "paperless": "yes", "region [sales]": "north"}
    try:
        def refused(url, body, path="/predict"):
            response = requests.post(url + path, json=body, timeout=10)
            assert response.status_code == (400 if path.startswith("/v2/") else 422), response.text  # V2's own status
            return response.json()["error"]
        error = refused(server.url, {"records": [good, {**good, "age": "30", "plan": 3}]})
        assert error["message"].startswith("row 1, feature 'age': expected a number, got the string '30'")
        assert {"row": 1, "feature": "plan",
                "message": "expected a category as text (one of 'basic', 'pro', 'team'), got 3"} in error["details"]
        missing = {k: v for k, v in good.items() if k != "plan"}
        assert refused(server.url, {"records": [missing]})["details"] == [
            {"row": 0, "feature": "plan", "message": "missing feature"}]
        assert "categories, which the tutorial's rows of numbers cannot hold" in \
            refused(server.url, [[30, 80, "basic", "yes", "north"]], "/api/")["message"]
        assert "one tensor of one datatype cannot hold" in refused(server.url, {"inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1, 5], "data": [1, 2, 3, 4, 5]}]}, "/v2/models/churn/infer")
        assert refused(server.url, {"inputs": [
            {"name": f, "datatype": "BYTES", "shape": [1], "data": [str(v)]} for f, v in good.items()]},
            "/v2/models/churn/infer").startswith("input 'age': row 0, feature 'age': expected a number, got the string")
        sepal = "sepal length (cm)"
        names = [f["name"] for f in read_manifest(iris)["features"]]
        error = refused(plain.url, {"records": [{**dict.fromkeys(names, 5.0), sepal: None}]})
        assert error["details"] == [{"row": 0, "feature": sepal,
                                     "message": "expected a number, got null"}]
        gaps = {**good, "age": None, "plan": None, "region [sales]": "mars"}
        answer = requests.post(server.url + "/predict", json={"records": [gaps]}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["predictions"][0]["warnings"] == [
            {"feature": "region [sales]", "value": None, "unseen_category": True}]
        assert requests.get(server.url + "/ready", timeout=10).status_code == 200  # still serving
    finally:
        server.stop()
        plain.stop()


BROKEN = {  # file name, its content, the target: what the refusal names
    "no-target.csv": ("a,b\n1,x\n2,y\n", "label", "the target column 'label' is not a column of the file"),
    "empty.csv": ("", "label", "the file is empty"),
    "header-only.csv": ("a,label\n", "label", "the file holds no rows"),
    "twice.csv": ("a,a,label\n1,2,x\n3,4,y\n", "label", "the column 'a' appears more than once"),
    "one-class.csv": ("a,label\n1,x\n2,x\n3,x\n", "label", "holds a single class ('x')"),
    "blank-column.csv": ("a,b,label\n1,,x\n2,,y\n", "label", "column 'b' has no values"),
    "tiny-class.csv": ("a,label\n" + "".join(f"{i},{'x' if i else 'y'}\n" for i in range(40)), "label",
                       "cannot split the 40 rows"),
    "bad.parquet": ("PAR1 this is no parquet", "label", "cannot be read as PARQUET"),
}


@pytest.mark.parametrize("file", list(BROKEN))
def test_a_broken_file_is_refused_before_training_and_nothing_is_saved(tmp_path, file):
    content, target, says = BROKEN[file]
    (tmp_path/file).write_text(content)
    run = train_into(tmp_path, "-p", "data", tmp_path/file, "-p", "target", target)
    assert run.proc.returncode == 2, run.proc.stdout + run.proc.stderr
    assert says in run.proc.stderr
    assert not run.report_files and not (run.store.exists() and list_versions(run.store))


def test_feedback_by_class_name_retrains_on_the_same_table_and_the_cli_predicts_a_csv_with_gaps(tables, trained, tmp_path):
    store = tmp_path/"models"
    first = train_into(tmp_path, "-p", "data", tables/"churn.csv", "-p", "target", "churn", "-p", "estimator",
                       "random_forest", "-p", "n_estimators", "20")
    assert first.proc.returncode == 0, first.proc.stderr
    table = read_table(tables/"churn.csv", "churn")
    server = LiveServer("--model-dir", store, "--prediction-log", tmp_path/"log.sqlite")
    try:
        rows = records(table.X.iloc[:40])
        answer = requests.post(server.url + "/predict", json={"records": rows}, timeout=30).json()
        labels = table.frame[table.target].iloc[:40].tolist()
        feedback = [{"prediction_id": p["id"], "label": label} for p, label in zip(answer["predictions"], labels)]
        assert requests.post(server.url + "/feedback", json=feedback, timeout=30).status_code == 201
    finally:
        server.stop()
    second = train_into(tmp_path, "--feedback", tmp_path/"log.sqlite")
    assert second.proc.returncode == 0, second.proc.stdout + second.proc.stderr
    manifest = read_manifest(version_dir(store, 2))
    assert manifest["params"]["data"] == str(tables/"churn.csv") and manifest["params"]["target"] == "churn"
    assert manifest["metrics"]["feedback_rows"] == 40 and manifest["params"]["estimator"] == "random_forest"
    (tmp_path/"new.csv").write_text(table.X.iloc[:5].to_csv(index=False))
    local = run_cli("predict", tmp_path/"new.csv", "--model", store, cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    estimator = load_model(store).estimator  # the current version
    assert [p["class"] for p in json.loads(local.stdout)["predictions"]] == \
        estimator.predict(frame_input(table.X.iloc[:5])).tolist()


def test_explore_writes_a_report_of_any_table_and_refuses_a_broken_one_before_a_kernel_starts(tables, tmp_path):
    run = run_cli("explore", "-p", "data", tables/"churn.csv", "-p", "target", "churn", "--report-dir", tmp_path,
                  "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    html = next(tmp_path.glob("explore-churn-*.html")).read_text()
    assert "Categories by class" in html and "Share of rows with no value" in html and "<img" in html
    broken = run_cli("explore", "-p", "data", tables/"churn.csv", "-p", "target", "nope", "--report-dir", tmp_path/"b",
                     cwd=tmp_path)
    assert broken.returncode == 2 and "the target column 'nope' is not a column of the file" in broken.stderr
    assert not (tmp_path/"b").exists()

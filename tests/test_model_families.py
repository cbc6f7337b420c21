"""Every named family, trained by `wine-api train -p estimator NAME` (real papermill runs), served by a real server and
compared with scikit-learn on every wine and on thousands of rows far outside the training ranges, over `/predict`
and V2; a pipeline written into the notebook's `model` cell; what must be refused, refused."""
import json
import pickle
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import requests
import tritonclient.http as triton

from harness import LiveServer, assert_like_scikit_learn, plant_pickle, run_cli, train_into
from wine_api.data import load_wine_data
from wine_api.engine import far_rows
from wine_api.store import (ENGINE_FILE, MANIFEST_FILE, SKOPS_FILE, file_digest, list_versions,
                            load_model, read_manifest, version_dir)
from wine_api.train import FAMILIES

ENGINES = {"decision_tree": "tree", "svc": "skops", "knn": "skops"}  # the others: the arrays engine
WINE = load_wine_data()
ROWS = np.vstack([WINE.X.to_numpy(), far_rows(WINE.X.to_numpy(np.float32).astype(np.float64), 3000, seed=1)])


@pytest.fixture(scope="module")
def family_store(tmp_path_factory):
    "One store with a version of every family, in the order of `FAMILIES`."
    root = tmp_path_factory.mktemp("families")
    for family in FAMILIES:
        run = train_into(root, "-p", "estimator", family, "--no-current")
        assert run.proc.returncode == 0, run.proc.stderr
        assert f"model {family}, served by the {ENGINES.get(family, 'arrays')} engine" in run.proc.stdout
    assert list_versions(root/"models") == list(range(1, len(FAMILIES) + 1))
    return root/"models"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_saves_and_serves_what_scikit_learn_answers(family_store, family):
    version = list(FAMILIES).index(family) + 1
    path = version_dir(family_store, version)
    model, manifest = load_model(path), read_manifest(path)
    assert manifest["estimator"]["family"] == family and manifest["params"]["estimator"] == family
    assert manifest["serving"]["engine"] == ENGINES.get(family, "arrays")
    server = LiveServer("--model", path, "--no-prediction-log")
    try:
        info = requests.get(server.url + "/model", timeout=10).json()
        assert info["estimator"]["family"] == family and info["serving"]["engine"] == manifest["serving"]["engine"]
        answer = requests.post(server.url + "/predict", json={"instances": ROWS.tolist()}, timeout=60).json()
        predictions = answer["predictions"]
        classes = [p["class"] for p in predictions]
        probabilities = np.array([[p["probabilities"][c] for c in WINE.class_names] for p in predictions])
        exact = manifest["serving"]["engine"] == "skops"
        assert_like_scikit_learn(classes, probabilities, model.estimator, ROWS, exact)
        assert all(p["class_name"] == WINE.class_names[p["class"]] for p in predictions)
        assert sum(bool(p["warnings"]) for p in predictions) >= 3000  # the far rows are flagged out of range
        for i in (0, 100, 200, 1500):  # one row takes its own road: the same answer as in the batch
            assert requests.post(server.url + "/api/", json=[ROWS[i].tolist()], timeout=10).json() == [classes[i]]
            one = requests.post(server.url + "/predict", json={"instances": [ROWS[i].tolist()]}, timeout=10).json()
            single, batched = one["predictions"][0]["probabilities"], predictions[i]["probabilities"]
            assert max(abs(single[c] - batched[c]) for c in WINE.class_names) < 1e-12  # BLAS: a row alone, or in 3,178
        with triton.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=60) as client:
            tensor = triton.InferInput("input-0", list(ROWS.shape), "FP32")
            tensor.set_data_from_numpy(ROWS.astype(np.float32), binary_data=True)
            result = client.infer("wine", [tensor])
        assert_like_scikit_learn(result.as_numpy("predict"), result.as_numpy("predict_proba"), model.estimator, ROWS,
                                 exact)
    finally:
        server.stop()


def test_the_cli_predicts_here_with_any_engine(family_store, tmp_path):
    rows = tmp_path/"rows.json"
    rows.write_text(json.dumps({"instances": ROWS[:300].tolist()}))
    for family in ("random_forest", "svc", "mlp"):
        path = version_dir(family_store, list(FAMILIES).index(family) + 1)
        proc = run_cli("predict", rows, "--model", path, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        answer = json.loads(proc.stdout)["predictions"]
        probabilities = np.array([[p["probabilities"][c] for c in WINE.class_names] for p in answer])
        assert_like_scikit_learn([p["class"] for p in answer], probabilities, load_model(path).estimator, ROWS[:300],
                                 exact=family == "svc")


@pytest.mark.parametrize("family", ["random_forest", "svc"])
def test_the_server_never_unpickles_a_version(family_store, tmp_path, family):
    path = tmp_path/"version"
    shutil.copytree(version_dir(family_store, list(FAMILIES).index(family) + 1), path)
    marker = tmp_path/"unpickled"
    planted = plant_pickle(path, marker)
    server = LiveServer("--model", path, "--no-prediction-log")
    try:
        assert requests.get(server.url + "/ready", timeout=10).status_code == 200
        r = requests.post(server.url + "/predict", json={"instances": ROWS[:50].tolist()}, timeout=10)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 50
    finally:
        server.stop()
    assert not marker.exists()  # the pickle never ran
    pickle.loads(planted)  # and it would have: the test's payload is real
    assert marker.exists()


@pytest.mark.parametrize("family, name", [("random_forest", ENGINE_FILE), ("svc", SKOPS_FILE)])
def test_tampered_serving_files_are_refused(family_store, tmp_path, family, name):
    path = tmp_path/"version"
    shutil.copytree(version_dir(family_store, list(FAMILIES).index(family) + 1), path)
    data = bytearray((path/name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path/name).write_bytes(bytes(data))
    rows = json.dumps({"instances": ROWS[:2].tolist()})
    served = run_cli("serve", "--model", path, "--port", "0", "--no-prediction-log", cwd=tmp_path, timeout=60)
    assert served.returncode != 0 and f"{name} does not match its manifest" in served.stderr  # a pinned model: fail closed
    predicted = run_cli("predict", "--model", path, cwd=tmp_path, input=rows)
    assert predicted.returncode != 0 and "does not match its manifest" in predicted.stderr
    garbage = b"PK\x03\x04 not what it seems" * 10  # now as a careful attacker: the hash fixed up, the content wrong
    (path/name).write_bytes(garbage)
    manifest = read_manifest(path)
    manifest["files"][name] = file_digest(garbage)
    (path/MANIFEST_FILE).write_text(json.dumps(manifest))
    proc = run_cli("predict", "--model", path, cwd=tmp_path, input=rows)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "is not a readable" in proc.stderr, proc.stderr


def model_cell_notebook(tmp_path, source:str) -> Path:
    "A copy of the training notebook whose `model` cell is `source`: what a notebook user would write."
    nb = nbformat.read(Path(__file__).resolve().parents[1]/"nbs"/"05_train.ipynb", as_version=4)
    [cell] = [c for c in nb.cells if "model" in c.metadata.get("tags", [])]
    cell.source = source
    path = tmp_path/"my_training.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_pipeline_written_into_the_model_cell_trains_and_serves(tmp_path):
    notebook = model_cell_notebook(tmp_path, """from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.neural_network import MLPClassifier
model = make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=3000, random_state=0))""")
    run = train_into(tmp_path, "--notebook", notebook)
    assert run.proc.returncode == 0, run.proc.stderr
    model, manifest = load_model(run.store), read_manifest(version_dir(run.store, 1))
    assert manifest["estimator"]["steps"] == ["MinMaxScaler", "MLPClassifier"]
    assert manifest["estimator"]["family"] == "mlp" and manifest["serving"]["engine"] == "arrays"
    server = LiveServer("--model", run.store, "--no-prediction-log")
    try:
        predictions = requests.post(server.url + "/predict", json={"instances": ROWS.tolist()}, timeout=60).json()
    finally:
        server.stop()
    probabilities = np.array([[p["probabilities"][c] for c in WINE.class_names] for p in predictions["predictions"]])
    assert_like_scikit_learn([p["class"] for p in predictions["predictions"]], probabilities, model.estimator, ROWS)


def test_a_class_defined_in_the_notebook_is_refused_naming_it(tmp_path):
    notebook = model_cell_notebook(tmp_path, """from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
from sklearn.linear_model import LogisticRegression
class LogScaler(StandardScaler):
    "A notebook's own transformer."
model = make_pipeline(LogScaler(), LogisticRegression(max_iter=1000))""")
    run = train_into(tmp_path, "--notebook", notebook)
    assert run.proc.returncode == 1
    err = " ".join(run.proc.stderr.split())
    assert "the model uses LogScaler, a class defined in the notebook itself" in err, err
    assert "Build the model from scikit-learn's estimators" in err and "no model was saved" in err
    assert list_versions(run.store) == []


def test_a_version_of_the_previous_format_still_loads_and_serves(tmp_path):
    "The bundled model as the previous release shipped it (manifest format 2, a tree in tree.npz), kept as it was."
    old = Path(__file__).parent/"data"/"format2-version"
    assert read_manifest(old)["format_version"] == 2 and "serving" not in read_manifest(old)
    server = LiveServer("--model", old, "--no-prediction-log")
    try:
        info = requests.get(server.url + "/model", timeout=10).json()
        answer = requests.post(server.url + "/predict", json={"instances": ROWS.tolist()}, timeout=60).json()
    finally:
        server.stop()
    assert info["serving"] == {"engine": "tree"} and info["model_version"] == 1
    probabilities = np.array([[p["probabilities"][c] for c in WINE.class_names] for p in answer["predictions"]])
    assert_like_scikit_learn([p["class"] for p in answer["predictions"]], probabilities, load_model(old).estimator,
                             ROWS, exact=True)

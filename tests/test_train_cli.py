"`wine-api train`: real papermill runs of the training notebook into temporary stores."
import hashlib
import shutil
import signal
import time

import nbformat
import pytest
import sklearn

from wine_api.data import load_wine_data
from wine_api.store import current_version, list_versions, load_model, read_manifest
from wine_api.train import split_data, training_features
from harness import kill_training_midway, run_cli, train_into


def test_train_writes_a_verified_artifact_recording_its_parameters(depth3_run):
    model = load_model(depth3_run.store)
    m = model.manifest
    assert m["params"]["hyperparameters"] == {"max_depth": 3} and m["params"]["estimator"] == "decision_tree"
    assert m["estimator"]["hyperparameters"]["criterion"] == "gini" and m["serving"] == {"engine": "tree"}
    assert model.estimator.get_depth() == m["metrics"]["tree_depth"] <= 3
    assert m["files"]["model.pkl"]["sha256"] == hashlib.sha256((model.path/"model.pkl").read_bytes()).hexdigest()
    assert m["runtime"]["scikit_learn"] == sklearn.__version__
    assert m["class_names"] == ["class_0", "class_1", "class_2"]


def test_manifest_features_are_the_training_rows_schema(depth3_run):
    wine = load_wine_data()
    X_train = split_data(wine, 0.2, 42)[0]
    manifest = read_manifest(load_model(depth3_run.store).path)
    assert manifest["features"] == training_features(X_train)  # ranges and deciles of the rows trained on
    assert [f["name"] for f in manifest["features"]] == wine.feature_names


def test_train_prints_where_the_model_went_and_its_scores(depth3_run):
    out, m = depth3_run.proc.stdout, load_model(depth3_run.store).manifest
    assert f"Saved model version 1 to {depth3_run.store.resolve()/'versions'/'1'} (now current)" in out
    assert f"held-out accuracy  {m['metrics']['test_accuracy']:.3f}" in out
    assert f"macro-F1 {m['metrics']['test_f1_macro']:.3f}" in out
    assert str(depth3_run.report_files[0]) in out


def test_report_is_the_executed_notebook_with_its_plots(depth3_run):
    [report] = depth3_run.report_files
    nb = nbformat.read(report, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'hyperparameters = {"max_depth": 3}' in injected[0].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code if c.source.strip())
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # confusion matrix and feature importances


@pytest.mark.parametrize("params, message", [
    (["-p", "depth", "3"], "decision_tree has no hyperparameter 'depth'"),
    (["-p", "estimator", "xgboost"], "unknown estimator 'xgboost'; the families are: decision_tree"),
    (["-p", "estimator", "random_forest", "-p", "n_estimators", "0"], "'n_estimators' parameter of RandomForestClassifier"),
    (["-p", "max_depth", "three"], "Got 'three' instead"),
    (["-p", "max_depth", "0"], "must be an int in the range [1, inf) or None. Got 0 instead"),
    (["-p", "criterion", "best"], "'criterion' parameter of DecisionTreeClassifier must be a str among"),
    (["-p", "test_size", "1.5"], "test_size must be a fraction between 0 and 1"),
    (["-p", "cv_folds", "1"], "cv_folds must be a whole number of at least 2"),
    (["-p", "cv_folds", "100"], "cv_folds=100 is more than the 38 training rows of the rarest class"),  # once a cell's failure
    (["-p", "test_size", "0.99"], "test_size=0.99 cannot split the 178 rows"),
])
def test_bad_parameters_are_refused_before_anything_runs(tmp_path, params, message):
    run = train_into(tmp_path, *params)
    assert run.proc.returncode == 2
    assert message in " ".join(run.proc.stderr.split()), run.proc.stderr
    assert not run.store.exists() and not run.reports.exists()


def copy_store(run, root):
    "A copy of a finished run's store under `root`, with its state before anything else happens to it."
    shutil.copytree(run.store, root/"models")
    return root/"models", sorted(p.name for p in (root/"models").rglob("*"))


def test_a_failing_cell_exits_nonzero_names_the_cell_and_keeps_the_model(tmp_path, depth3_run):
    store, before = copy_store(depth3_run, tmp_path)
    blocker = tmp_path/"blocker"
    blocker.write_text("a file where the store's parent directory should be")
    proc = run_cli("train", "--model-dir", blocker/"models", "--report-dir", tmp_path/"reports", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())
    assert "training failed in cell" in err and "NotADirectoryError: [Errno 20] Not a directory" in err, err
    [report] = sorted((tmp_path/"reports").glob("train-*.ipynb"))
    assert "no model was saved" in err and str(report) in err
    assert sorted(p.name for p in store.rglob("*")) == before
    assert current_version(store) == 1 and load_model(store).manifest["params"]["hyperparameters"]["max_depth"] == 3


def test_a_run_killed_midway_leaves_the_previous_model_serving(tmp_path, depth3_run):
    store, before = copy_store(depth3_run, tmp_path)
    assert kill_training_midway(store, tmp_path) == -signal.SIGKILL
    time.sleep(1)  # let an orphaned kernel notice its parent is gone
    assert sorted(p.name for p in store.rglob("*")) == before
    assert load_model(store).version == 1 and list_versions(store) == [1]


def test_each_version_keeps_its_report_and_is_listed(depth3_run):
    version_dir = depth3_run.store/"versions"/"1"
    assert (version_dir/"report.ipynb").read_bytes() == depth3_run.report_files[0].read_bytes()
    proc = run_cli("models", "--model-dir", depth3_run.store, cwd=depth3_run.store.parent)
    assert proc.returncode == 0, proc.stderr
    current = proc.stdout.splitlines()[1].split()
    assert current[:2] == ["*", "1"] and "max_depth=3" in proc.stdout

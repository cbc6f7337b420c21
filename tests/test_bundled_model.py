"The model shipped in the package: it loads verified, and the training notebook's default run reproduces it."
import subprocess
import sys
import zipfile

import numpy as np

from wine_api.cli import notebook_parameters, training_notebook
from wine_api.data import load_wine_data
from wine_api.store import bundled_model_dir, load_model
from wine_api.train import TRAINING_PARAMS, as_model_input
from harness import REPO


def test_the_bundled_model_loads_verified():
    model = load_model(bundled_model_dir())
    defaults = notebook_parameters(training_notebook())
    assert model.manifest["params"] == {k: defaults[k] for k in TRAINING_PARAMS}
    assert model.manifest["metrics"]["test_accuracy"] > 0.85


def test_the_default_training_run_reproduces_the_bundled_model(default_run):
    X = as_model_input(load_wine_data().X)
    bundled, retrained = load_model(bundled_model_dir()), load_model(default_run.store)
    np.testing.assert_array_equal(retrained.estimator.predict(X), bundled.estimator.predict(X))
    np.testing.assert_array_equal(retrained.estimator.predict_proba(X), bundled.estimator.predict_proba(X))
    assert retrained.manifest["metrics"] == bundled.manifest["metrics"]


def test_a_plain_install_ships_the_model_and_can_train(tmp_path):
    "Build the wheel, install it into an empty directory, and use it from outside the checkout."
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path/"dist", REPO],
                   check=True, capture_output=True)
    [wheel] = (tmp_path/"dist").glob("wine_api-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ["wine_api/models/CURRENT", "wine_api/models/versions/1/model.pkl",
                    "wine_api/models/versions/1/manifest.json", "wine_api/notebooks/train.ipynb"]:
        assert shipped in names
    assert zipfile.ZipFile(wheel).read("wine_api/notebooks/train.ipynb") == (REPO/"nbs"/"05_train.ipynb").read_bytes()
    site = tmp_path/"site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
                   check=True, capture_output=True)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    script = ("import wine_api.store as s; m = s.load_model(s.bundled_model_dir()); print(m.path)")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(site/"wine_api"/"models"/"versions"/"1")
    train = subprocess.run([sys.executable, "-c", "from wine_api.cli import cli; cli()", "train", "--quiet",
                            "-p", "max_depth", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert train.returncode == 0, train.stderr
    assert load_model(tmp_path/"models").manifest["params"]["hyperparameters"]["max_depth"] == 2

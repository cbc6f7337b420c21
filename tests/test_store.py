"The model store on real files and processes: refusing tampered pickles, surviving kills and concurrent saves."
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from wine_api.store import (ModelIntegrityError, current_version, list_versions, load_model,
                            read_manifest)


class CreatesDirectoryWhenUnpickled:
    "A pickle payload with a visible side effect: unpickling it runs `os.mkdir(path)`."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (os.mkdir, (self.path,))


def test_a_tampered_pickle_is_refused_without_being_unpickled(tmp_path, depth3_run):
    version_dir = tmp_path/"1"
    shutil.copytree(load_model(depth3_run.store).path, version_dir)
    marker = tmp_path/"payload-ran"
    payload = pickle.dumps(CreatesDirectoryWhenUnpickled(marker))
    (version_dir/"model.pkl").write_bytes(payload)
    with pytest.raises(ModelIntegrityError, match="does not match its manifest.*refusing to load"):
        load_model(version_dir)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it would have left the marker
    assert marker.exists()


def test_a_truncated_pickle_is_refused(tmp_path, depth3_run):
    version_dir = tmp_path/"1"
    shutil.copytree(load_model(depth3_run.store).path, version_dir)
    data = (version_dir/"model.pkl").read_bytes()
    (version_dir/"model.pkl").write_bytes(data[:len(data)//2])
    with pytest.raises(ModelIntegrityError, match="does not match its manifest"):
        load_model(version_dir)


SAVE_FOREVER = textwrap.dedent("""
    import sys
    from sklearn.tree import DecisionTreeClassifier
    from wine_api.data import load_wine_data, feature_schema
    from wine_api.store import save_model
    wine = load_wine_data()
    X, y, features = wine.X.to_numpy(), wine.y.to_numpy(), feature_schema(wine.X)
    for i in range(int(sys.argv[2])):
        tree = DecisionTreeClassifier(max_depth=1 + i % 5, random_state=i).fit(X, y)
        save_model(tree, sys.argv[1], features, wine.class_names, params={"max_depth": 1 + i % 5, "seed": i})
        print(i, flush=True)
""")


def saver(store, count, **kwargs):
    "A process that saves `count` models into `store`, one after another."
    return subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(store), str(count)], stdout=subprocess.PIPE,
                            text=True, **kwargs)


def assert_store_consistent(store):
    "Every version in `store` loads verified, and `CURRENT` names one of them."
    for version in list_versions(store):
        loaded = load_model(store/"versions"/str(version))
        assert loaded.version == version
    assert current_version(store) in list_versions(store)
    assert load_model(store).version == current_version(store)


def test_saves_killed_at_random_moments_never_break_the_store(tmp_path):
    store, rng = tmp_path/"models", random.Random(0)
    saver(store, 1).wait(timeout=60)  # a first model, so there is always one to keep
    for _ in range(12):
        proc = saver(store, 10_000)
        proc.stdout.readline()  # it is saving in a loop now
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert_store_consistent(store)
    assert len(list_versions(store)) > 12  # saves did happen between the kills


def test_concurrent_saves_take_distinct_versions(tmp_path):
    store = tmp_path/"models"
    procs = [saver(store, 15) for _ in range(3)]
    for proc in procs: assert proc.wait(timeout=120) == 0
    assert list_versions(store) == list(range(1, 46))
    assert_store_consistent(store)
    seeds = sorted(read_manifest(store/"versions"/str(v))["params"]["seed"] for v in list_versions(store))
    assert seeds == sorted(list(range(15)) * 3)  # nothing overwritten: each process's 15 saves are all there

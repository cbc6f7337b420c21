"""A store tampered with under a live server, and signed versions: every tampering is refused, the old version keeps
serving, `/ready` says why without showing any file's content, and nothing answers a 500."""
import json
import shutil
import time

import numpy as np
import pytest
import requests

from wine_api.data import TUTORIAL_ROW as ROW
from wine_api.store import (CURRENT_FILE, MANIFEST_FILE, TREE_FILE, file_digest, read_manifest, set_current,
                            tree_from_bytes, tree_to_bytes, versions_dir)
from harness import LiveServer, free_port, run_cli, store_with_two_versions

SECRET = "password=hunter2"


def set_manifest(version_dir, edit):
    manifest = read_manifest(version_dir)
    edit(manifest)
    (version_dir/MANIFEST_FILE).write_text(json.dumps(manifest))


def set_tree(version_dir, edit):
    "Edit the tree's arrays and fix up the manifest's hash, as a careful attacker would."
    arrays = tree_from_bytes((version_dir/TREE_FILE).read_bytes())
    edit(arrays)
    (version_dir/TREE_FILE).write_bytes(tree_to_bytes(arrays))
    set_manifest(version_dir, lambda m: m["files"].__setitem__(TREE_FILE, file_digest((version_dir/TREE_FILE).read_bytes())))


def rename_first_feature(m): m["features"][0]["name"] = "proline"; m["features"][-1]["name"] = "alcohol"


def garbage_tree(version_dir):
    (version_dir/TREE_FILE).write_bytes(b"\x93NUMPY garbage")
    set_manifest(version_dir, lambda m: m["files"].__setitem__(TREE_FILE, file_digest(b"\x93NUMPY garbage")))


TAMPERINGS = {
    "model_version a string": (lambda d: set_manifest(d, lambda m: m.__setitem__("model_version", "2")), "is not of type 'integer'"),
    "feature names swapped": (lambda d: set_manifest(d, rename_first_feature), "feature names it was saved with"),
    "class names edited": (lambda d: set_manifest(d, lambda m: m.__setitem__("class_names", ["red", "white", "rose"])),
                           "class names it was saved with"),
    "absurd depth": (lambda d: set_tree(d, lambda a: a.__setitem__("depth", np.int64(10**9))), "is not its real depth"),
    "object array tree": (lambda d: set_tree(d, lambda a: a.__setitem__("feature", a["feature"].astype(object))),
                          "not a readable array file"),
    "garbage tree": (garbage_tree, "not a readable array file"),
    "incomplete manifest": (lambda d: set_manifest(d, lambda m: m.pop("features")), "'features' is a required property"),
    "manifest not JSON": (lambda d: (d/MANIFEST_FILE).write_text("{" + SECRET), "is not valid JSON"),
    "damaged pickle": (lambda d: (d/"model.pkl").write_bytes((d/"model.pkl").read_bytes()[:-1] + b"\x00"),
                       "model.pkl does not match its manifest"),  # never unpickled by the server, but still verified
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_each_tampering_is_refused_under_a_live_server(tmp_path, name):
    tamper, reason = TAMPERINGS[name]
    store = store_with_two_versions(tmp_path)
    server = LiveServer("--model-dir", store, env={"WINE_API_RELOAD_INTERVAL": "0.1"})
    try:
        tamper(versions_dir(store)/"2")
        set_current(store, 2)  # bypassing promote, which refuses it, as a hand edit would
        refused = run_cli("models", "--model-dir", store, "promote", "2", cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert run_cli("models", "--model-dir", store, cwd=tmp_path).returncode == 0  # the listing says "unreadable"
        for _ in range(20):  # every worker looks, and refuses; every request still answered by version 1
            r = requests.post(server.url + "/api/", json=[ROW], timeout=5)
            assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
        ready = requests.get(server.url + "/ready", timeout=5).json()
        assert ready["model_version"] == 1 and reason in ready["reload_error"], ready
        assert SECRET not in json.dumps(ready)
        for path in ("/model", "/openapi.json", "/v2/models/wine", "/metrics"):
            assert requests.get(server.url + path, timeout=5).status_code == 200
        fresh = run_cli("serve", "--port", free_port(), "--model-dir", store, cwd=tmp_path, timeout=60)
        assert fresh.returncode == 1 and fresh.stderr.splitlines()[-1].startswith("Error: cannot serve: ") and reason in fresh.stderr
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def test_links_out_of_the_store_are_not_followed_and_never_shown(tmp_path):
    store = store_with_two_versions(tmp_path)
    server = LiveServer("--model-dir", store, env={"WINE_API_RELOAD_INTERVAL": "0.1"})
    try:
        secret = tmp_path/"secret.txt"
        secret.write_text(SECRET)
        (store/CURRENT_FILE).unlink()
        (store/CURRENT_FILE).symlink_to(secret)
        time.sleep(0.3)
        requests.post(server.url + "/api/", json=[ROW], timeout=5)
        for _ in range(10):
            assert requests.post(server.url + "/api/", json=[ROW], timeout=5).headers["X-Model-Version"] == "1"
        ready = requests.get(server.url + "/ready", timeout=5).json()
        assert "is not a regular file" in ready["reload_error"] and SECRET not in json.dumps(ready), ready
        outside = tmp_path/"outside"
        shutil.copytree(versions_dir(store)/"2", outside)
        (versions_dir(store)/"3").symlink_to(outside)
        (store/CURRENT_FILE).unlink()
        (store/CURRENT_FILE).write_text("3\n")
        time.sleep(0.3)  # past the reload interval, so that every worker looks again
        requests.post(server.url + "/api/", json=[ROW], timeout=5)
        for _ in range(10):
            assert requests.post(server.url + "/api/", json=[ROW], timeout=5).headers["X-Model-Version"] == "1"
        assert "leading out of the store" in requests.get(server.url + "/ready", timeout=5).json()["reload_error"]
    finally:
        server.stop()


def test_signed_versions_only_when_serving_with_a_key(tmp_path, depth3_run):
    keys = tmp_path/"keys"
    keys.mkdir()
    assert run_cli("keygen", keys/"ops", cwd=tmp_path).returncode == 0
    assert run_cli("keygen", keys/"other", cwd=tmp_path).returncode == 0
    store = tmp_path/"models"
    shutil.copytree(depth3_run.store, store)  # version 1: unsigned
    trained = run_cli("train", "-p", "max_depth", "2", "--model-dir", store, "--report-dir", tmp_path/"reports",
                      "--signing-key", keys/"ops.key", "--quiet", cwd=tmp_path)
    assert trained.returncode == 0 and "Saved model version 2" in trained.stdout and ", signed" in trained.stdout, trained.stderr
    other = run_cli("train", "-p", "max_depth", "4", "--model-dir", store, "--report-dir", tmp_path/"reports",
                    "--signing-key", keys/"other.key", "--no-current", "--quiet", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    verify = run_cli("models", "--model-dir", store, "--verify-key", keys/"ops.pub", "verify", cwd=tmp_path)
    lines = verify.stdout.splitlines()
    assert verify.returncode == 1 and len(lines) == 3, verify.stdout
    assert lines[0].startswith("version 1: FAILED: ") and lines[0].endswith("is not signed, and only signed versions are accepted")
    assert lines[1] == "version 2: verified, signed with the given key"
    assert lines[2].startswith("version 3: FAILED: ") and "is signed by another key" in lines[2]
    server = LiveServer("--model-dir", store, "--verify-key", keys/"ops.pub", env={"WINE_API_RELOAD_INTERVAL": "0.1"})
    try:
        assert requests.post(server.url + "/api/", json=[ROW], timeout=5).headers["X-Model-Version"] == "2"
        for version, reason in ((1, "is not signed"), (3, "is signed by another key")):
            refused = run_cli("models", "--model-dir", store, "--verify-key", keys/"ops.pub", "promote", version, cwd=tmp_path)
            assert refused.returncode == 1 and reason in refused.stderr
            set_current(store, version)  # by hand: the server itself refuses it
            time.sleep(0.3)
            requests.post(server.url + "/api/", json=[ROW], timeout=5)
            for _ in range(10):
                assert requests.post(server.url + "/api/", json=[ROW], timeout=5).headers["X-Model-Version"] == "2"
            assert reason in requests.get(server.url + "/ready", timeout=5).json()["reload_error"]
        # re-signing an edited manifest needs the private key: an edit after signing is refused
        set_manifest(versions_dir(store)/"2", lambda m: m["metrics"].__setitem__("test_accuracy", 1.0))
        fresh = run_cli("serve", "--port", free_port(), "--model-dir", versions_dir(store)/"2", "--verify-key",
                        keys/"ops.pub", cwd=tmp_path, timeout=60)
        assert fresh.returncode == 1 and "changed after signing" in fresh.stderr, fresh.stderr
    finally:
        server.stop()

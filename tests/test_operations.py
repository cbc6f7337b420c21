"Operations on real servers: hot reload under load, API keys, metrics across workers, request logs, faults, a short soak."
import collections
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import requests
import tritonclient.http as triton

from wine_api.client import ServerError, WineApiClient
from wine_api.data import TUTORIAL_ROW as ROW, load_wine_data
from wine_api.store import TREE_FILE, bundled_model_dir, list_versions, load_model, set_current, versions_dir

from harness import (REPO, Load, LiveServer, failed, kill_training_midway, pss_mib, run_cli, store_with_two_versions,
                     worker_pids)


X = load_wine_data().X.to_numpy()
BODY = json.dumps({"instances": X[::6].tolist()}).encode()  # 30 rows across all classes


def versions_seen(outcomes, start, end) -> set:
    return {o.version for o in outcomes if start <= o.started and o.ended <= end}


@pytest.fixture
def followed_store(tmp_path):
    "A two-version store, served by a real gunicorn that looks at CURRENT every 0.1 s."
    store = store_with_two_versions(tmp_path)
    server = LiveServer("--model-dir", store, env={"WINE_API_RELOAD_INTERVAL": "0.1"})
    yield store, server
    server.stop()


def test_promote_and_rollback_under_load_fail_no_request(followed_store):
    store, server = followed_store
    load = Load("127.0.0.1", server.port, "/predict", BODY, connections=8).start()
    time.sleep(1.5)
    before_promote = time.monotonic()
    assert run_cli("models", "--model-dir", store, "promote", "2", cwd=store.parent).returncode == 0
    promoted = time.monotonic()
    time.sleep(1.5)
    stump = load_model(versions_dir(store)/"2").estimator
    answer = requests.post(server.url + "/predict", data=BODY, headers={"Content-Type": "application/json"}, timeout=5)
    assert answer.headers["X-Model-Version"] == "2" and answer.json()["model_version"] == 2
    probabilities = [list(p["probabilities"].values()) for p in answer.json()["predictions"]]
    np.testing.assert_array_equal(probabilities, stump.predict_proba(X[::6].astype(np.float32)))
    before_rollback = time.monotonic()
    assert run_cli("models", "--model-dir", store, "rollback", cwd=store.parent).returncode == 0
    rolled_back = time.monotonic()
    time.sleep(1.5)
    outcomes = load.stop()
    assert len(outcomes) > 300 and not failed(outcomes), failed(outcomes)[:3]
    assert versions_seen(outcomes, 0, before_promote) == {"1"}
    assert versions_seen(outcomes, promoted + 0.5, before_rollback) == {"2"}  # every worker has swapped within 0.5 s
    assert versions_seen(outcomes, rolled_back + 0.5, time.monotonic()) == {"1"}


def test_a_version_failing_verification_is_never_swapped_in(followed_store):
    store, server = followed_store
    damaged = versions_dir(store)/"2"/TREE_FILE
    damaged.write_bytes(damaged.read_bytes()[:-1])
    set_current(store, 2)  # what a hand edit or a broken copy would do; `promote` itself refuses it
    time.sleep(0.5)
    for _ in range(6):  # every worker looks, and refuses
        r = requests.post(server.url + "/api/", json=[ROW], timeout=5)
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
        time.sleep(0.1)
    ready = requests.get(server.url + "/ready", timeout=5).json()
    assert ready["model_version"] == 1
    assert "CURRENT points at version 2, which failed to load" in ready["reload_error"] and "does not match its manifest" in ready["reload_error"]
    server.stop()
    errors = [line for line in server.log_lines() if line["level"] == "ERROR"]
    assert errors and "model reload refused" in errors[0]["message"] and "still serving version 1" in errors[0]["message"]


def test_a_training_run_killed_midway_leaves_the_current_model_serving(followed_store, tmp_path):
    store, server = followed_store
    load = Load("127.0.0.1", server.port, "/predict", BODY, connections=4).start()
    assert kill_training_midway(store, tmp_path) == -signal.SIGKILL
    time.sleep(1)
    outcomes = load.stop()
    assert outcomes and not failed(outcomes) and {o.version for o in outcomes} == {"1"}
    assert list_versions(store) == [1, 2]


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    key_file = tmp_path_factory.mktemp("keys")/"keys"
    key_file.write_text("# the ops team\nops-key-0123456789abcdef\nci-key-abcdef0123456789\n")
    server = LiveServer("--api-key-file", key_file)
    yield server
    server.stop()


def test_api_keys_on_a_live_server(keyed_server):
    url = keyed_server.url
    r = requests.post(url + "/predict", json={"instances": [ROW]}, timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized" and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.post(url + "/predict", json={"instances": [ROW]}, headers={"Authorization": "Bearer guess"}, timeout=5)
    assert r.status_code == 401 and r.json()["error"]["message"] == "the API key is not valid"
    for path in ("/model", "/openapi.json", "/metrics", "/v2/models/wine"):
        assert requests.get(url + path, timeout=5).status_code == 401, path
    for path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready"):  # health stays open
        assert requests.get(url + path, timeout=5).status_code == 200, path
    r = requests.post(url + "/predict", json={"instances": [ROW]}, headers={"Authorization": "Bearer ci-key-abcdef0123456789"}, timeout=5)
    assert r.status_code == 200 and r.json()["predictions"][0]["class"] == 2
    assert WineApiClient(url, api_key="ops-key-0123456789abcdef").predict_classes([ROW]) == [2]
    with pytest.raises(ServerError) as e: WineApiClient(url).predict([ROW])
    assert e.value.status == 401
    with triton.InferenceServerClient(url=f"127.0.0.1:{keyed_server.port}") as client:
        assert client.is_server_ready()
        tensor = triton.InferInput("input-0", [1, 13], "FP32")
        tensor.set_data_from_numpy(np.array([ROW], dtype=np.float32))
        result = client.infer("wine", [tensor], headers={"Authorization": "Bearer ops-key-0123456789abcdef"})
        assert result.as_numpy("predict").tolist() == [2]
    proc = run_cli("predict", "--url", url, "--api-key", "ci-key-abcdef0123456789", cwd=REPO, input=json.dumps([ROW]))
    assert proc.returncode == 0 and json.loads(proc.stdout)["predictions"][0]["class"] == 2
    proc = run_cli("predict", "--url", url, cwd=REPO, input=json.dumps([ROW]), env={**os.environ, "WINE_API_KEY": "guess"})
    assert proc.returncode == 1 and "the API key is not valid" in proc.stderr


def test_keys_are_never_logged(keyed_server):
    requests.post(keyed_server.url + "/api/", json=[ROW], headers={"Authorization": "Bearer ops-key-0123456789abcdef"}, timeout=5)
    requests.post(keyed_server.url + "/api/", json=[ROW], headers={"Authorization": "Bearer a-wrong-key-xyz"}, timeout=5)
    keyed_server.stop()
    text = json.dumps(keyed_server.log_lines())
    assert '"status": 401' in text and '"status": 200' in text
    assert "ops-key" not in text and "ci-key" not in text and "a-wrong-key" not in text


def predict_concurrently(server, first:int, count:int):
    "POST BODY `count` times from 8 threads, each on a new connection, with request ids `req-<first>`...; all answered 200."
    from concurrent.futures import ThreadPoolExecutor
    def one(i):
        r = requests.post(server.url + "/predict", data=BODY, timeout=5, headers={
            "Content-Type": "application/json", "Connection": "close", "X-Request-ID": f"req-{i}"})
        return r.status_code == 200 and r.headers["X-Request-ID"] == f"req-{i}"
    with ThreadPoolExecutor(8) as pool: assert all(pool.map(one, range(first, first + count)))


def test_metrics_add_up_across_workers_and_every_request_is_logged_once(tmp_path):
    server = LiveServer()
    try:
        estimator = load_model(bundled_model_dir()).estimator
        sent = 0
        while sent < 300:  # until both workers have answered (which worker accepts a connection is up to the kernel)
            predict_concurrently(server, sent, 30)
            sent += 30
            pids = {json.loads(l)["pid"] for l in server.log().splitlines() if '"path":"/predict"' in l}
            if len(pids) == 2: break
        assert len(pids) == 2, "one worker answered every request"
        for _ in range(5):
            assert requests.post(server.url + "/api/", json=[ROW[:12]], headers={"Connection": "close"}, timeout=5).status_code == 422
        expected_classes = np.bincount(estimator.predict(X[::6].astype(np.float32)), minlength=3) * sent
        for _ in range(6):  # whichever worker answers, the figures are the whole server's
            text = requests.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=5).text
            assert f'wine_api_requests_total{{method="POST",route="/predict",status="200"}} {sent}.0' in text
            assert 'wine_api_requests_total{method="POST",route="/api/",status="422"} 5.0' in text
            assert f"wine_api_rows_predicted_total {sent * 30}.0" in text
            for name, count in zip(["class_0", "class_1", "class_2"], expected_classes):
                assert f'wine_api_predictions_total{{class_name="{name}"}} {count}.0' in text
            assert 'wine_api_errors_total{code="invalid_input"} 5.0' in text
            assert "wine_api_model_version 1.0" in text
            assert f'wine_api_request_duration_seconds_count{{route="/predict"}} {sent}.0' in text
    finally:
        server.stop()
    lines = [line for line in server.log_lines() if line["logger"] == "wine_api.requests"]
    by_id = {}
    for line in lines: by_id.setdefault(line["request_id"], []).append(line)
    for i in range(sent):
        (line,) = by_id[f"req-{i}"]
        assert (line["method"], line["path"], line["status"], line["rows"], line["model_version"]) == ("POST", "/predict", 200, 30, 1)
        assert line["duration_ms"] > 0
    assert sum(line.get("error") == "invalid_input" for line in lines) == 5


def test_a_log_destination_that_goes_away_costs_the_lines_not_the_answers():
    "Standard error is a pipe whose reader quits (a log collector gone): requests are answered; the server stays up."
    server = LiveServer(stderr=subprocess.PIPE)
    try:
        server.proc.stderr.close()  # every line from now on meets a broken pipe
        for route, body, status in (("/api/", [ROW], 200), ("/predict", {"instances": [ROW] * 3}, 200),
                                    ("/api/", [ROW[:12]], 422)):
            for _ in range(20):  # new connections: both workers, the fast path and Flask's (the 422)
                answer = requests.post(server.url + route, json=body, headers={"Connection": "close"}, timeout=5)
                assert answer.status_code == status, answer.text
        assert server.proc.poll() is None
        assert requests.get(server.url + "/health", timeout=5).status_code == 200
    finally:
        server.stop()


def test_a_worker_killed_under_load_is_replaced_and_only_its_requests_fail():
    server = LiveServer()
    try:
        load = Load("127.0.0.1", server.port, "/predict", BODY, connections=8).start()
        time.sleep(1.5)
        victim = worker_pids(server)[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(3)
        outcomes = load.stop()
        lost = failed(outcomes)
        # a connection the worker held loses its request in flight; its reconnect, made within the ~20 ms the killed
        # process takes to exit, may still be queued on that worker's socket and be reset too (seen 3 runs in 10 here):
        # at most two per connection, both connection errors (never an HTTP error), both while the worker died
        per_connection = collections.Counter(o.connection for o in lost)
        assert lost and max(per_connection.values()) <= 2, lost
        assert all(o.status == 0 and killed - 1 < o.ended < killed + 0.5 for o in lost), lost
        assert not failed([o for o in outcomes if o.started > killed + 2])
        assert len([o for o in outcomes if o.started > killed + 2]) > 50
        assert victim not in worker_pids(server) and len(worker_pids(server)) == 2
    finally:
        server.stop()


def test_a_short_soak_has_no_errors_and_no_memory_growth():
    server = LiveServer()
    try:
        load = Load("127.0.0.1", server.port, "/predict", BODY, connections=16).start()
        time.sleep(5)  # the workers' first seconds under load make shared pages private (copy-on-write): a one-off rise
        samples = []
        for _ in range(12):  # once a second, all under the same load
            samples.append(pss_mib(server))
            time.sleep(1)
        outcomes = load.stop()
        assert len(outcomes) > 1000 and not failed(outcomes)
        steps = sorted(b - a for a, b in zip(samples, samples[1:]))
        # a leak grows every second: the median step stays near 0; a buffer or arena that grows once (a step of 1-3 MiB
        # seen now and then with granian's connections) is allowed once, within a bound
        assert steps[len(steps) // 2] < 0.1 and samples[-1] - samples[0] < 4, samples
    finally:
        server.stop()


def test_rows_are_counted_and_logged_on_every_prediction_route():
    "3 rows through each of /api/, /predict, V2 JSON and V2 binary: the counters and the log lines say 3 each time."
    server = LiveServer("--workers", 1)
    rows = X[[0, 70, 150]].astype(np.float32)  # one wine of each class
    try:
        def rows_predicted() -> float:
            text = requests.get(server.url + "/metrics", timeout=5).text
            return float(re.search(r"^wine_api_rows_predicted_total ([\d.]+)$", text, re.M).group(1))
        def by_class() -> dict:
            text = requests.get(server.url + "/metrics", timeout=5).text
            return {m[0]: float(m[1]) for m in re.findall(r'^wine_api_predictions_total\{class_name="(\w+)"\} ([\d.]+)$', text, re.M)}
        sends = {
            "/api/": lambda: requests.post(server.url + "/api/", json=rows.tolist(), timeout=5),
            "/predict": lambda: requests.post(server.url + "/predict", json={"instances": rows.tolist()}, timeout=5),
            "/v2 JSON": lambda: requests.post(server.url + "/v2/models/wine/infer", timeout=5, json={
                "inputs": [{"name": "input-0", "shape": [3, 13], "datatype": "FP32", "data": rows.ravel().tolist()}]}),
        }
        for name, send in sends.items():
            before, classes_before = rows_predicted(), by_class()
            assert send().status_code == 200, name
            assert rows_predicted() == before + 3, name
            after = by_class()
            assert {c: after[c] - classes_before.get(c, 0) for c in after} == {"class_0": 1, "class_1": 1, "class_2": 1}, name
        before = rows_predicted()
        with triton.InferenceServerClient(url=f"127.0.0.1:{server.port}") as client:
            tensor = triton.InferInput("input-0", [3, 13], "FP32")
            tensor.set_data_from_numpy(rows)
            assert client.infer("wine", [tensor]).as_numpy("predict").tolist() == [0, 1, 2]
        assert rows_predicted() == before + 3
    finally:
        server.stop()
    infer_lines = [line for line in server.log_lines() if line.get("path") in ("/api/", "/predict", "/v2/models/wine/infer")]
    assert [line["rows"] for line in infer_lines] == [3, 3, 3, 3], infer_lines

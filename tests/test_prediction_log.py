"""The prediction log against real databases: every test runs on SQLite (the default, a file) and on a throwaway
PostgreSQL server, each under a real gunicorn with 2 workers. Predictions on every route are logged with their ids;
feedback is stored once, durably, and conflicts are refused; a SIGKILL loses at most a worker's unwritten buffer;
the log outlives the server; and the whole loop runs: predict, label, retrain on the labels, follow one prediction back."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import requests

from harness import LiveServer, Load, PostgresServer, failed, run_cli, train_into, worker_pids
from wine_api.data import TUTORIAL_ROW, load_wine_data
from wine_api.predlog import PredictionLog, batch_time, parse_prediction_id


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path):
    "A new, empty prediction log: a SQLite file, or a database of its own on the PostgreSQL server."
    if request.param == "sqlite": return f"sqlite:///{tmp_path}/predictions.sqlite"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    "A model store made by a real training run."
    run = train_into(tmp_path_factory.mktemp("store"))
    assert run.proc.returncode == 0, run.proc.stderr
    return run.store


def read_log(url:str) -> PredictionLog:
    "The log as another process sees it: opened afresh, so only what was written counts."
    return PredictionLog(url)


def serve(store, url, *args, **env) -> LiveServer:
    return LiveServer("--model-dir", store, "--prediction-log", url, *args,
                      env={f"WINE_API_{k}": str(v) for k, v in env.items()})


def post(server, path, body, **kw):
    return requests.post(server.url + path, json=body, timeout=10, **kw)


def test_every_route_logs_its_rows_with_ids(store, log_url):
    server = serve(store, log_url)
    try:
        rows = load_wine_data().X.to_numpy()[[0, 70, 140]].tolist()
        api = post(server, "/api/", rows)
        predict = post(server, "/predict", {"instances": rows}).json()
        tensor = {"name": "input-0", "shape": [3, 13], "datatype": "FP64", "data": np.ravel(rows).tolist()}
        v2 = post(server, "/v2/models/wine/infer", {"inputs": [tensor]}).json()
    finally:
        assert server.stop() == 0  # a graceful stop writes every buffer
    ids = {"/api/": [f"{api.headers['X-Prediction-Batch']}-{i}" for i in range(3)],
           "/predict": [p["id"] for p in predict["predictions"]],
           "/v2/models/<model_name>/infer": v2["parameters"]["prediction_ids"]}
    log = read_log(log_url)
    for route, route_ids in ids.items():
        for i, pid in enumerate(route_ids):
            found = log.prediction(pid)
            assert (found["route"], found["model_version"], found["class"]) == (route, 1, api.json()[i])
            np.testing.assert_allclose(found["inputs"], rows[i], rtol=1e-6)
            assert sum(found["probabilities"]) == pytest.approx(1.0)
    assert len(log.predictions().ids) == 9


def test_feedback_is_stored_once_conflicts_are_refused(store, log_url):
    server = serve(store, log_url, PREDICTION_LOG_FLUSH_INTERVAL=1.0)
    try:
        answer = post(server, "/predict", {"instances": [TUTORIAL_ROW] * 3}).json()
        ids = [p["id"] for p in answer["predictions"]]
        started = time.monotonic()  # asked at once: the prediction is still in its worker's buffer for up to 1 s
        first = post(server, "/feedback", {"prediction_id": ids[0], "label": "class_2"})
        assert (first.status_code, first.json()["created"]) == (201, 1), first.text
        assert time.monotonic() - started < 3
        again = post(server, "/feedback", [{"prediction_id": ids[0], "label": 2}])
        assert (again.status_code, again.json()["results"][0]["status"]) == (200, "unchanged")
        other = post(server, "/feedback", {"prediction_id": ids[0], "label": "class_0"})
        assert (other.status_code, other.json()["error"]["details"][0]) == (409, {
            "item": 0, "field": "label", "message": f"prediction {ids[0]} already has label 2, not 0"})
        unknown = f"{'0' * 32}-0"
        mixed = post(server, "/feedback", {"feedback": [{"prediction_id": ids[1], "label": 1},
                                                        {"prediction_id": unknown, "label": 1}]})
        assert (mixed.status_code, mixed.json()["error"]["details"][0]["item"]) == (404, 1)
        malformed = post(server, "/feedback", [{"prediction_id": ids[1], "label": "merlot"}, {"id": 1}])
        assert malformed.status_code == 422
        assert [(d["item"], d.get("field")) for d in malformed.json()["error"]["details"]] == [(0, "label"), (1, None)]
        assert post(server, "/feedback", {"prediction_id": ids[1], "label": 1}).status_code == 201  # none of it stored
        assert requests.get(server.url + "/health", timeout=5).status_code == 200
    finally:
        server.stop()
    log = read_log(log_url)
    assert [log.prediction(pid)["label"] for pid in ids] == [2, 1, None]


def test_a_label_is_durable_before_its_201(store, log_url):
    "Feedback answered 201 is in the database even when every worker is killed the moment the answer arrives."
    server = serve(store, log_url)
    try:
        ids = [p["id"] for p in post(server, "/predict", {"instances": [TUTORIAL_ROW] * 20}).json()["predictions"]]
        time.sleep(0.5)  # the predictions are written; the labels are what is tested
        labelled = []
        for pid in ids:
            assert post(server, "/feedback", {"prediction_id": pid, "label": 1}).status_code == 201
            labelled.append(pid)
            if len(labelled) == 10:
                for pid_ in worker_pids(server): os.kill(pid_, signal.SIGKILL)
                break
    finally:
        server.stop()
    log = read_log(log_url)
    assert [log.prediction(pid)["label"] for pid in labelled] == [1] * 10


def test_a_sigkill_loses_at_most_the_unwritten_buffer(store, log_url, capsys):
    "Under load, SIGKILL both workers: every answered prediction older than the flush interval is in the log."
    interval = 0.2
    server = serve(store, log_url, PREDICTION_LOG_FLUSH_INTERVAL=interval)
    ids, stop = [], threading.Event()
    def ask():
        with requests.Session() as session:
            while not stop.is_set():
                try: r = session.post(server.url + "/api/", json=[TUTORIAL_ROW], timeout=5)
                except requests.RequestException: return
                if r.status_code == 200: ids.append((time.time(), r.headers["X-Prediction-Batch"]))
    threads = [threading.Thread(target=ask) for _ in range(8)]
    try:
        for t in threads: t.start()
        time.sleep(3)
        killed_at = time.time()
        for pid in worker_pids(server): os.kill(pid, signal.SIGKILL)
        stop.set()
        for t in threads: t.join(timeout=10)
    finally:
        server.stop()
    logged = {pid.split("-")[0] for pid in read_log(log_url).predictions().ids}
    answered = [(t, batch) for t, batch in ids if t <= killed_at]
    lost = [(t, batch) for t, batch in answered if batch not in logged]
    assert len(answered) > 500
    assert all(killed_at - batch_time(batch) < interval + 0.3 for _, batch in lost), lost[:3]
    with capsys.disabled():
        print(f"\n  SIGKILL under load ({log_url.split(':')[0]}): {len(lost)} of {len(answered)} answered predictions "
              f"lost, all made in the last {interval + 0.3:.1f} s")


def test_concurrent_writers_lose_nothing_on_a_graceful_stop(store, log_url):
    server = serve(store, log_url)
    try:
        load = Load("127.0.0.1", server.port, "/predict", json.dumps({"instances": [TUTORIAL_ROW] * 5}).encode(),
                    connections=16).start()
        time.sleep(3)
        outcomes = load.stop()
        assert not failed(outcomes) and len(outcomes) > 300
        assert len(set(worker_pids(server))) == 2
    finally:
        assert server.stop() == 0
    ids = read_log(log_url).predictions(most=10**9).ids
    assert len(ids) == len(set(ids)) == 5 * len(outcomes)


def test_the_log_outlives_the_server(store, log_url):
    first = serve(store, log_url)
    try: pid = post(first, "/predict", {"instances": [TUTORIAL_ROW]}).json()["predictions"][0]["id"]
    finally: first.stop()
    second = serve(store, log_url)
    try:
        assert post(second, "/feedback", {"prediction_id": pid, "label": "class_2"}).status_code == 201
        figures = requests.get(second.url + "/monitoring", timeout=10).json()["versions"][0]
        assert (figures["predictions"], figures["labelled"], figures["accuracy"]) == (1, 1, 1.0)
        metrics = requests.get(second.url + "/metrics", timeout=10).text
        assert 'wine_api_monitoring_labelled{model_version="1"} 1.0' in metrics
    finally:
        second.stop()


def test_out_of_range_values_are_warned_about_counted_and_monitored(store, log_url):
    from wine_api.store import read_manifest, version_dir
    features = read_manifest(version_dir(store, 1))["features"]
    low, high = np.array([f["min"] for f in features]), np.array([f["max"] for f in features])
    outside = np.nextafter(high.astype(np.float32), np.float32(np.inf)).astype(float)
    server = serve(store, log_url)
    try:
        answer = post(server, "/predict", {"instances": [low.tolist(), high.tolist(), outside.tolist()]}).json()
        assert [len(p["warnings"]) for p in answer["predictions"]] == [0, 0, 13]  # bounds are inclusive
        assert answer["predictions"][2]["warnings"][0] == {  # the value as the model sees it, a float32
            "feature": features[0]["name"], "value": float(str(np.float32(outside[0]))), "min": low[0], "max": high[0]}
        v2 = post(server, "/v2/models/wine/infer", {"inputs": [
            {"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": outside.tolist()}]}).json()
        assert [w["row"] for w in v2["parameters"]["out_of_range"]] == [0] * 13
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        assert f'wine_api_out_of_range_total{{feature="{features[0]["name"]}"}} 2.0' in metrics
        time.sleep(0.5)
        figures = requests.get(server.url + "/monitoring", timeout=10).json()["versions"][0]
        assert figures["features"][features[0]["name"]]["out_of_range_rate"] == pytest.approx(2 / 4)
    finally:
        server.stop()


def test_the_whole_loop(tmp_path, log_url):
    "Predict, label the wrong answers, retrain on the labels, promote only if not worse, follow one prediction back."
    from wine_api.store import current_version, read_manifest, version_dir
    run = train_into(tmp_path)
    assert run.proc.returncode == 0, run.proc.stderr
    wine, store = load_wine_data(), run.store
    retrain = lambda *args: run_cli("train", "--model-dir", store, "--report-dir", run.reports, "--quiet",
                                    "--feedback", log_url, "--promote-if-better", *args, cwd=tmp_path)
    server = serve(store, log_url)
    try:
        answer = post(server, "/predict", {"records": wine.X.to_dict("records")}).json()["predictions"]
        labels = [{"prediction_id": p["id"], "label": int(y)} for p, y in zip(answer, wine.y) if p["class"] != y]
        labels += [{"prediction_id": p["id"], "label": int(y)} for p, y in zip(answer, wine.y) if p["class"] == y][:20]
        csv = tmp_path/"labels.csv"  # as people send them: a CSV file, class names or indexes
        csv.write_text("prediction_id,label\n" + "".join(f"{l['prediction_id']},{wine.class_names[l['label']]}\n"
                                                          for l in labels))
        sent = run_cli("feedback", csv, "--url", server.url, cwd=tmp_path)
        assert sent.stdout.strip() == f"{len(labels)} labels stored, 0 already there", sent.stdout + sent.stderr
        assert run_cli("feedback", csv, "--url", server.url, cwd=tmp_path).stdout.strip() == \
            f"0 labels stored, {len(labels)} already there"
        time.sleep(0.5)
        table = run_cli("monitor", "--url", server.url, cwd=tmp_path).stdout.splitlines()
        assert table[2].split()[:3] == ["1", "178", str(len(labels))], table

        first = retrain()  # round one, the server still serving: the true labels
        assert first.returncode == 0, first.stderr
        v1, v2 = (read_manifest(version_dir(store, v)) for v in (1, 2))
        assert v2["lineage"]["feedback"]["rows"] == len(labels) == v2["metrics"]["feedback_rows"]
        assert v2["lineage"]["data"]["train_rows"] == 142 + len(labels)
        assert v2["lineage"]["data"]["held_out_rows"] == 36 == v2["metrics"]["test_rows"]
        assert f"feedback: {len(labels)} labelled rows" in first.stdout
        ids = sorted((l["prediction_id"] for l in labels), key=parse_prediction_id)  # by batch, then row
        assert (v2["lineage"]["feedback"]["first_id"], v2["lineage"]["feedback"]["last_id"]) == (ids[0], ids[-1])
        better = all(v2["metrics"][k] >= v1["metrics"][k] for k in ("test_accuracy", "test_f1_macro"))
        assert current_version(store) == (2 if better else 1)
        assert ("Promoted: " if better else "NOT promoted: ") in first.stdout
        current = current_version(store)

        time.sleep(1.1)
        cut = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())  # batch two is made after it, batch one before
        time.sleep(1.1)  # the server has looked at CURRENT again
        again = post(server, "/predict", {"records": wine.X.to_dict("records")}).json()["predictions"]
        flipped = [{"prediction_id": p["id"], "label": (int(y) + 1) % 3} for p, y in zip(again, wine.y)]
        assert post(server, "/feedback", flipped).status_code == 201
    finally:
        server.stop()

    bad = retrain("--feedback-since", cut)  # round two: only the flipped labels, so a worse model, refused
    assert bad.returncode == 0, bad.stderr
    v3 = read_manifest(version_dir(store, 3))
    assert (v3["lineage"]["feedback"]["rows"], v3["lineage"]["feedback"]["since"]) == (len(flipped), cut)
    assert v3["lineage"]["feedback"]["served_by_versions"] == [current]
    assert v3["lineage"]["feedback"]["agreement_with_served"] < 0.1  # the flipped labels disagree with the model
    assert "NOT promoted: the new version is worse on the held-out rows" in bad.stdout, bad.stdout
    assert current_version(store) == current

    one = labels[0]["prediction_id"]  # a wrong answer of version 1, labelled
    traced = run_cli("lineage", one, "--model-dir", store, "--prediction-log", log_url, "--json", cwd=tmp_path)
    assert traced.returncode == 0, traced.stderr
    found = json.loads(traced.stdout)
    assert (found["prediction"]["prediction_id"], found["prediction"]["label"]) == (one, labels[0]["label"])
    assert found["prediction"]["model_version"] == 1 and len(found["prediction"]["inputs"]) == 13
    assert found["model"]["lineage"]["data"]["train_sha256"] == v1["lineage"]["data"]["train_sha256"]
    assert found["model"]["params"] == v1["params"] and os.path.isfile(found["model"]["report"])
    assert "label: " in run_cli("lineage", one, "--model-dir", store, "--prediction-log", log_url, cwd=tmp_path).stdout


def test_feedback_needs_a_key_when_the_server_has_keys(store, tmp_path):
    key = "feedback-key-0123456789"
    server = LiveServer("--model-dir", store, "--prediction-log", tmp_path/"log.sqlite", env={"WINE_API_API_KEYS": key})
    try:
        auth = {"Authorization": f"Bearer {key}"}
        pid = post(server, "/predict", {"instances": [TUTORIAL_ROW]}, headers=auth).json()["predictions"][0]["id"]
        assert post(server, "/feedback", {"prediction_id": pid, "label": 2}).status_code == 401
        assert requests.get(server.url + "/monitoring", timeout=5).status_code == 401
        assert post(server, "/feedback", {"prediction_id": pid, "label": 2}, headers=auth).status_code == 201
    finally:
        server.stop()


def test_a_log_that_cannot_be_opened_stops_the_server_from_starting(store, tmp_path):
    blocked = tmp_path/"file"
    blocked.write_text("")  # a file where the log's directory should be
    for url, words in ((f"sqlite:///{blocked}/log.sqlite", "cannot open"),
                       ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the prediction log"),
                       ("sqlite://", "in-memory")):
        server = LiveServer("--model-dir", store, "--prediction-log", url, wait=False)
        assert server.proc.wait(timeout=60) != 0
        assert words in server.log() and "PREDICTION_LOG" in server.log(), server.log()[-2000:]


def test_the_database_going_away_stops_nothing_and_loses_nothing(store):
    "PostgreSQL stops under load: predictions go on, feedback says 503, and once it is back every row is written."
    database = PostgresServer()
    url = database.new_database()
    server = serve(store, url)
    try:
        answered = sum(post(server, "/api/", [TUTORIAL_ROW]).status_code == 200 for _ in range(50))
        time.sleep(0.5)
        database.pause()
        started, statuses = time.monotonic(), []
        while time.monotonic() - started < 3: statuses.append(post(server, "/api/", [TUTORIAL_ROW]).status_code)
        assert set(statuses) == {200} and len(statuses) > 100  # the buffer holds them; nobody waits for the database
        refused = post(server, "/feedback", {"prediction_id": f"{'0' * 32}-0", "label": 1})
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "prediction_log_unavailable")
        database.resume()
        time.sleep(1.5)
        answered += len(statuses) + sum(post(server, "/api/", [TUTORIAL_ROW]).status_code == 200 for _ in range(20))
    finally:
        server.stop()
    try:
        assert len(read_log(url).predictions().ids) == answered
        assert "could not be written" in server.log()
    finally:
        database.stop()

"""A challenger in the shadow, judged on the people's labels, against real servers (2 workers) and real logs (SQLite
and a throwaway PostgreSQL): a weak champion (a one-split tree) serves, the bundled tree challenges; a client sends
real wines and feeds back their true labels; no answer ever comes from the challenger; the server's policy promotes
it once the evidence allows (never before the minimum of labels), every worker follows; a worse version promoted by
hand is then rolled back by the policy. Faults: a challenger that fails verification, one deleted while served, the
database going away while shadowing: the champion's answers and `/ready` are untouched, no label is lost."""
import shutil
import time

import numpy as np
import pytest
import requests

from harness import LiveServer, PostgresServer, run_cli, store_with_two_versions
from wine_api.data import load_wine_data
from wine_api.predlog import PredictionLog
from wine_api.store import current_version, load_model, read_challenger, read_history, set_current, version_dir

WINE = load_wine_data()
MIN_LABELS = 60


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path):
    if request.param == "sqlite": return f"sqlite:///{tmp_path}/predictions.sqlite"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def weak_champion(tmp_path):
    "Version 2, a one-split tree, is current; version 1, the bundled tree, challenges it (`wine-api models challenge`)."
    store = store_with_two_versions(tmp_path)
    set_current(store, 2)
    challenged = run_cli("models", "--model-dir", store, "challenge", "1", cwd=tmp_path)
    assert challenged.returncode == 0 and "version 1 challenges version 2" in challenged.stdout, challenged.stderr
    return store


def estimators(store) -> dict:
    "Each version's fitted estimator (the test unpickles them to check answers; the server never does)."
    return {v: load_model(version_dir(store, v)).estimator for v in (1, 2)}


def predict_rows(server, rows:np.ndarray) -> tuple:
    "POST the rows to `/predict`: (the version that answered, the answers)."
    records = [dict(zip(WINE.feature_names, map(float, row))) for row in rows]
    r = requests.post(f"{server.url}/predict", json={"records": records}, timeout=10)
    assert r.status_code == 200, r.text
    return int(r.headers["X-Model-Version"]), r.json()["predictions"]


def label(server, answers:list, truth:np.ndarray):
    r = requests.post(f"{server.url}/feedback", json=[{"prediction_id": a["id"], "label": int(y)}
                                                     for a, y in zip(answers, truth)], timeout=30)
    assert r.status_code == 201, r.text


def traffic_until(server, store, fitted:dict, done, most_rounds:int=40) -> int:
    """Real wines, 9 a request, each labelled with its true class, until `done()`; every answer is checked to be the
    champion's (the version named in the header, its estimator's class); the labelled rows sent before `done`."""
    X, y, rng, labelled = WINE.X.to_numpy(np.float32), WINE.y.to_numpy(), np.random.default_rng(0), 0
    for _ in range(most_rounds):
        pick = rng.choice(len(X), 9, replace=False)
        version, answers = predict_rows(server, X[pick])
        assert [a["class"] for a in answers] == fitted[version].predict(X[pick]).tolist()  # the champion's answer
        label(server, answers, y[pick])
        labelled += len(pick)
        deadline = time.monotonic() + 1.5  # the policy runs every 0.5 s
        while time.monotonic() < deadline:
            if done(): return labelled
            time.sleep(0.1)
    raise AssertionError(f"no decision after {labelled} labels: {read_history(store)[-3:]}")


def decided(store, action:str, version:int) -> bool:
    "Whether the store's last decision is `action` on `version` and `version` is current (the pointer moves first, "
    "the decision is recorded once it has: a reader can see one without the other for a moment)."
    history = read_history(store)
    return bool(history) and (history[-1]["action"], history[-1]["version"]) == (action, version) \
        and current_version(store) == version


def all_answer(server, version:int, seconds:float=10) -> bool:
    "Whether, within `seconds`, 40 requests in a row (both workers) are answered by `version`."
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(predict_rows(server, WINE.X.to_numpy(np.float32)[:1])[0] == version for _ in range(40)): return True
        time.sleep(0.2)
    return False


def test_the_challenger_is_judged_on_labels_promoted_and_a_worse_version_rolled_back(weak_champion, log_url):
    store, fitted = weak_champion, estimators(weak_champion)
    server = LiveServer("--model-dir", store, "--prediction-log", log_url, "--decide-every", "0.5",
                        "--min-labels", MIN_LABELS)
    try:
        ready = requests.get(f"{server.url}/ready", timeout=5).json()
        assert ready["model_version"] == 2 and ready["challenger"]["version"] == 1, ready
        sent = traffic_until(server, store, fitted, lambda: decided(store, "promote", 1))
        decision = read_history(store)[-1]
        assert (decision["action"], decision["version"], decision["by"]) == ("promote", 1, "policy (server)")
        figures = decision["figures"]
        assert MIN_LABELS <= figures["labelled"] <= sent and figures["p_value"] < 0.05  # not before the minimum
        assert figures["only_challenger_right"] > figures["only_champion_right"]
        assert figures["challenger"]["accuracy"] > figures["champion"]["accuracy"]
        assert all_answer(server, 1)  # every worker follows
        assert (read_challenger(store).version, read_challenger(store).role) == (2, "watch")

        # both answers were kept under each id: the challenger's is its own estimator's
        rows = PredictionLog(log_url).labelled_rows()
        shadowed = rows.challenger_versions == 1
        assert shadowed.sum() >= figures["labelled"]
        assert (rows.challenger_served[shadowed] == fitted[1].predict(rows.inputs[shadowed])).all()
        assert (rows.served[shadowed] == fitted[2].predict(rows.inputs[shadowed])).all()
        monitoring = requests.get(f"{server.url}/monitoring", timeout=30).json()
        pair = next(c for c in monitoring["comparisons"] if (c["champion_version"], c["challenger_version"]) == (2, 1))
        assert pair["verdict"] == "better" and pair["labelled"] >= figures["labelled"]
        card = requests.get(f"{server.url}/model/card", timeout=30).text  # the card draws the same judgement
        assert 'id="live"' in card and 'data-champion="2" data-challenger="1" data-verdict="better"' in card, card[:2000]

        # the one-split tree promoted by hand: the tree it replaced watches it, and the policy rolls back to it
        by_hand = run_cli("models", "--model-dir", store, "promote", "2", cwd=store.parent)
        assert by_hand.returncode == 0 and "version 1 now answers in the shadow" in by_hand.stdout, by_hand.stderr
        assert all_answer(server, 2)
        traffic_until(server, store, fitted, lambda: decided(store, "rollback", 1))
        rollback = read_history(store)[-1]
        assert (rollback["action"], rollback["version"], rollback["previous"]) == ("rollback", 1, 2)
        assert rollback["figures"]["p_value"] < 0.05 and read_challenger(store) is None
        assert all_answer(server, 1)
        listed = run_cli("models", "--model-dir", store, cwd=store.parent).stdout
        assert "rollback  version 1    by policy (server)" in listed and "McNemar p=" in listed, listed
        traced = run_cli("lineage", rows.ids[0], "--model-dir", store, "--prediction-log", log_url, cwd=store.parent)
        assert traced.returncode == 0 and "in the shadow, version 1 answered class" in traced.stdout, traced.stderr
        assert "promote   version 1" in traced.stdout and "rollback  version 1" in traced.stdout, traced.stdout
    finally:
        server.stop()


def test_a_broken_challenger_never_touches_an_answer(tmp_path, weak_champion):
    store, fitted = weak_champion, estimators(weak_champion)
    X = WINE.X.to_numpy(np.float32)
    expected = fitted[2].predict(X[:9]).tolist()
    tree = version_dir(store, 1)/"tree.npz"
    tree.write_bytes(tree.read_bytes()[:-1])  # damaged after it was named: it fails verification when loaded
    server = LiveServer("--model-dir", store, "--prediction-log", f"sqlite:///{tmp_path}/log.sqlite")
    try:
        ready = requests.get(f"{server.url}/ready", timeout=5)
        assert ready.status_code == 200 and ready.json()["challenger"]["status"] == "refused", ready.text
        assert "does not match its manifest" in ready.json()["challenger"]["error"]
        assert requests.get(f"{server.url}/model", timeout=5).json()["challenger"]["status"] == "refused"
        version, answers = predict_rows(server, X[:9])
        assert version == 2 and [a["class"] for a in answers] == expected
        label(server, answers, WINE.y.to_numpy()[:9])
    finally:
        server.stop()
    assert (PredictionLog(f"sqlite:///{tmp_path}/log.sqlite").labelled_rows().challenger_versions == 0).all()


def test_a_challenger_deleted_while_served_and_a_database_outage_lose_nothing(weak_champion):
    store, fitted = weak_champion, estimators(weak_champion)
    X, y = WINE.X.to_numpy(np.float32), WINE.y.to_numpy()
    database = PostgresServer()
    url = database.new_database()
    server = LiveServer("--model-dir", store, "--prediction-log", url)
    answered = []
    try:
        answered.append(predict_rows(server, X[:9])[1])
        database.pause()  # the log goes away while both answer
        for start in range(9, 90, 9):
            version, answers = predict_rows(server, X[start:start + 9])
            assert version == 2 and [a["class"] for a in answers] == fitted[2].predict(X[start:start + 9]).tolist()
            answered.append(answers)
        assert requests.get(f"{server.url}/ready", timeout=5).status_code == 200
        database.resume()
        shutil.rmtree(version_dir(store, 1))  # the challenger's files go while it is served
        for start in range(90, 178, 11):
            version, answers = predict_rows(server, X[start:start + 11])
            assert version == 2 and [a["class"] for a in answers] == fitted[2].predict(X[start:start + 11]).tolist()
            answered.append(answers)
        assert requests.get(f"{server.url}/ready", timeout=5).status_code == 200
        flat = [a for answers in answered for a in answers]
        label(server, flat, y[:len(flat)])
    finally:
        server.stop()
    try:
        rows = PredictionLog(url).labelled_rows()
        assert len(rows.ids) == len(flat) == 178  # every row and every label kept
        assert (rows.challenger_versions == 1).all()  # the shadow's answers too, through the outage
        assert (rows.challenger_served == fitted[1].predict(rows.inputs)).all()
    finally:
        database.stop()


def test_training_on_feedback_as_a_challenger(tmp_path):
    "`wine-api train --challenge`: the new version answers in the shadow instead of becoming current; refused first "
    "when there is nothing to challenge."
    store = store_with_two_versions(tmp_path)
    refused = run_cli("train", "--model-dir", tmp_path/"empty", "--challenge", "--quiet", cwd=tmp_path)
    assert refused.returncode == 2 and "--challenge needs a current version" in refused.stderr, refused.stderr
    assert not (tmp_path/"empty").exists() or not any((tmp_path/"empty").iterdir())
    run = run_cli("train", "--model-dir", store, "--report-dir", tmp_path/"reports", "--challenge", "--share", "0.5",
                  "-p", "max_depth", "3", "--quiet", cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "version 3 challenges version 1 in the shadow, on 50% of requests" in run.stdout, run.stdout
    assert current_version(store) == 1 and (read_challenger(store).version, read_challenger(store).share) == (3, 0.5)
    assert (read_history(store)[-1]["action"], read_history(store)[-1]["by"]) == ("challenge", "wine-api train --challenge")

"The Python client and the `wine-api serve / predict` commands against real gunicorn servers."
import json
import signal


import pytest

from wine_api.client import ServerError, ServerUnavailable, WineApiClient
from wine_api.data import load_wine_data
from conftest import LiveServer, free_port, run_cli

TUTORIAL_ROW = [14.34, 1.68, 2.7, 25.0, 98.0, 2.8, 1.31, 0.53, 2.7, 13.0, 0.57, 1.96, 660.0]


def test_client_predicts_rows_records_and_dataframes(live_server):
    client = WineApiClient(live_server.url)
    frame = load_wine_data().X.iloc[:20]
    by_rows = client.predict(frame.to_numpy().tolist())
    assert by_rows == client.predict(frame[frame.columns[::-1]])  # matched by column name
    assert by_rows == client.predict(frame.to_dict("records"))
    assert by_rows == client.predict(frame.to_numpy())
    assert [p["class"] for p in by_rows["predictions"]] == client.predict_classes(frame.to_numpy().tolist())
    assert client.predict([TUTORIAL_ROW])["predictions"][0]["class_name"] == "class_2"


def test_client_health_ready_and_model_info(live_server):
    client = WineApiClient(live_server.url)
    assert client.health() == {"status": "ok"} and client.ready() is True
    assert client.model_info()["model_version"] == 1


def test_client_raises_the_servers_error(live_server):
    with pytest.raises(ServerError) as raised:
        WineApiClient(live_server.url).predict([TUTORIAL_ROW[:12] + ["660"]])
    e = raised.value
    assert (e.status, e.code) == (422, "invalid_input")
    assert e.message == "row 0, feature 'proline': expected a number, got the string '660'"
    assert e.details[0]["feature"] == "proline"


def test_client_retries_until_a_starting_server_is_up():
    port = free_port()
    client = WineApiClient(f"http://127.0.0.1:{port}", retries=8, backoff=0.5)
    with pytest.raises(ServerUnavailable): WineApiClient(f"http://127.0.0.1:{port}", retries=0).health()
    import threading
    holder = {}
    starter = threading.Timer(1.0, lambda: holder.setdefault("server", LiveServer("--workers", 1, port=port, wait=False)))
    starter.start()
    try: assert client.health() == {"status": "ok"}  # connection refused at first, retried until it answers
    finally:
        starter.join()
        holder["server"].stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_on_a_trained_store_and_stop_cleanly(depth3_run, stop_signal):
    server = LiveServer("--model", depth3_run.store, "--workers", 1)
    try:
        info = WineApiClient(server.url).model_info()
        assert info["params"]["max_depth"] == 3
    finally: code = server.stop(stop_signal)
    assert code == 0
    assert f"serving model version 1 ({depth3_run.store.resolve()/'versions'/'1'})" in server.log()


def test_serve_refuses_a_model_that_fails_verification(tmp_path, depth3_run):
    import shutil
    shutil.copytree(depth3_run.store, tmp_path/"models")
    (tmp_path/"models"/"versions"/"1"/"tree.npz").write_bytes(b"not the tree")
    proc = run_cli("serve", "--port", free_port(), "--model", tmp_path/"models", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    assert "cannot serve" in proc.stderr and "tree.npz does not match its manifest" in proc.stderr


def test_predict_from_csv_in_process_and_through_the_server_agree(tmp_path, live_server):
    frame = load_wine_data().X.iloc[::15]
    frame[frame.columns[::-1]].to_csv(tmp_path/"wines.csv", index=False)
    here = run_cli("predict", tmp_path/"wines.csv", cwd=tmp_path)
    there = run_cli("predict", tmp_path/"wines.csv", "--url", live_server.url, cwd=tmp_path)
    assert here.returncode == there.returncode == 0, here.stderr + there.stderr
    assert json.loads(here.stdout) == json.loads(there.stdout)
    assert len(json.loads(here.stdout)["predictions"]) == len(frame)


def test_predict_reads_json_from_stdin_and_prints_a_table(tmp_path):
    proc = run_cli("predict", "--format", "table", cwd=tmp_path, input=json.dumps([TUTORIAL_ROW, TUTORIAL_ROW]))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["row", "class", "class_name", "class_0", "class_1", "class_2"]
    assert lines[1].split()[:3] == ["0", "2", "class_2"] and len(lines) == 4


@pytest.mark.parametrize("where", ["here", "server"])
def test_predict_reports_bad_rows_by_row_and_feature(tmp_path, live_server, where):
    (tmp_path/"bad.csv").write_text(",".join(load_wine_data().feature_names) + "\n" +
                                    ",".join(map(str, TUTORIAL_ROW[:12])) + ",lots\n")
    proc = run_cli("predict", tmp_path/"bad.csv", *(["--url", live_server.url] if where == "server" else []), cwd=tmp_path)
    assert proc.returncode == 1
    assert "row 0, feature 'proline': expected a number, got the string 'lots'" in proc.stderr


def test_predict_says_when_the_server_is_unreachable(tmp_path):
    proc = run_cli("predict", "--url", f"http://127.0.0.1:{free_port()}", cwd=tmp_path, input=json.dumps([TUTORIAL_ROW]))
    assert proc.returncode == 1 and "cannot reach" in proc.stderr

"The Python client and the `wine-api serve / predict` commands against real gunicorn servers."
import json
import signal


import pytest

from wine_api.client import ServerError, ServerUnavailable, WineApiClient
from wine_api.data import TUTORIAL_ROW, load_wine_data
from harness import LiveServer, free_port, run_cli, wait_until_ready, without_ids



def test_client_predicts_rows_records_and_dataframes(live_server):
    client = WineApiClient(live_server.url)
    frame = load_wine_data().X.iloc[:20]
    by_rows = client.predict(frame.to_numpy().tolist())
    by_rows = without_ids(by_rows)
    assert by_rows == without_ids(client.predict(frame[frame.columns[::-1]]))  # matched by column name
    assert by_rows == without_ids(client.predict(frame.to_dict("records")))
    assert by_rows == without_ids(client.predict(frame.to_numpy()))
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
        assert info["params"]["hyperparameters"]["max_depth"] == 3
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
    assert json.loads(here.stdout) == without_ids(json.loads(there.stdout))  # the log is the server's: ids there only
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


def test_predict_classes_matches_a_dataframe_by_column_name(live_server):
    frame = load_wine_data().X.iloc[:10]
    client = WineApiClient(live_server.url)
    expected = client.predict_classes(frame.to_numpy().tolist())
    assert client.predict_classes(frame[frame.columns[::-1]]) == expected == client.predict_classes(frame)


@pytest.mark.parametrize("name, data, words", [
    ("an empty file", b"", "the input is empty"),
    ("a blank file", b"\n \n", "the input is empty"),
    ("an Excel workbook", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "looks like an Excel workbook: save it as CSV"),
    ("Latin-1 text", "alcohol,proline\n13.2,caf\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 24"),
    ("a header only", b"alcohol,proline\n", "data is empty"),
])
def test_predict_says_in_one_line_why_it_cannot_read_a_file(tmp_path, name, data, words):
    (tmp_path/"input").write_bytes(data)
    import subprocess
    from harness import WINE_API
    from_stdin = subprocess.run([WINE_API, "predict"], input=data, capture_output=True, cwd=tmp_path, timeout=60)
    from_stdin.stderr = from_stdin.stderr.decode()
    for proc in (run_cli("predict", tmp_path/"input", cwd=tmp_path), from_stdin):
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("Error: ") and words in proc.stderr, proc.stderr


def test_predict_reads_csv_as_excel_saves_it(tmp_path):
    frame = load_wine_data().X.iloc[::30]
    (tmp_path/"unicode.txt").write_bytes(frame.to_csv(index=False, sep="\t").encode("utf-16"))  # "Unicode text"
    (tmp_path/"semicolons.csv").write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";").encode())  # CSV UTF-8
    answers = [run_cli("predict", tmp_path/name, cwd=tmp_path) for name in ("unicode.txt", "semicolons.csv")]
    assert all(a.returncode == 0 for a in answers), [a.stderr for a in answers]
    assert json.loads(answers[0].stdout) == json.loads(answers[1].stdout)
    assert len(json.loads(answers[0].stdout)["predictions"]) == len(frame)


@pytest.mark.parametrize("url, words", [
    ("127.0.0.1:5000", "is not a server URL: write it with its scheme, e.g. http://127.0.0.1:5000"),
    ("http://127.0.0.1:5000/predict", "names a route (/predict); give the server's base URL, e.g. http://127.0.0.1:5000"),
    ("http://127.0.0.1:5000/api/", "names a route (/api)"),
])
def test_predict_explains_a_malformed_url(tmp_path, url, words):
    proc = run_cli("predict", "--url", url, cwd=tmp_path, input=json.dumps([TUTORIAL_ROW]))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and words in proc.stderr, proc.stderr


def test_serve_on_a_port_in_use_fails_at_once_and_says_why(tmp_path, live_server):
    import time
    started = time.monotonic()
    proc = run_cli("serve", "--port", live_server.port, cwd=tmp_path, timeout=60)
    assert time.monotonic() - started < 5
    assert proc.returncode == 1 and "serving" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (f"Error: cannot listen on 127.0.0.1:{live_server.port}: Address already in use; "
                                   "another server is listening there: stop it or pick another --port")


def test_serve_on_port_0_says_the_port_it_got():
    import re, requests
    server = LiveServer(port=0, wait=False)
    try:
        import time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "serving model version" not in server.log(): time.sleep(0.1)
        [line] = [json.loads(l) for l in server.log().splitlines() if "serving model version" in l]
        port = int(re.search(r"at http://127\.0\.0\.1:(\d+) ", line["message"]).group(1))
        assert port != 0
        assert wait_until_ready(f"http://127.0.0.1:{port}", server.proc)
        assert requests.post(f"http://127.0.0.1:{port}/api/", json=[TUTORIAL_ROW], timeout=5).json() == [2]
    finally:
        server.stop()


@pytest.mark.parametrize("server_name", ["granian", "gunicorn"])
def test_both_servers_answer_alike_and_log_which_one_runs(server_name):
    "`--server gunicorn` (the server shipped before) stays a working choice: same answers, headers and error forms."
    import requests
    server = LiveServer("--server", server_name)
    try:
        ok = requests.post(server.url + "/predict", json={"instances": [TUTORIAL_ROW]}, timeout=5)
        bad = requests.post(server.url + "/api/", data=b"[[1,", headers={"Content-Type": "application/json"}, timeout=5)
        big = requests.post(server.url + "/api/", data=b"[" + b" " * (9 << 20) + b"]",
                            headers={"Content-Type": "application/json"}, timeout=30)
    finally:
        server.stop()
    assert ok.status_code == 200 and ok.json()["predictions"][0]["class"] == 2
    assert ok.headers["X-Model-Version"] == "1" and len(ok.headers["X-Request-ID"]) == 32
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_json")
    assert (big.status_code, big.json()["error"]["code"]) == (413, "request_entity_too_large")
    assert f"with 2 {server_name} workers" in server.log()

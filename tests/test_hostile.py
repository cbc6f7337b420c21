"""What an attacker sends, against a real `wine-api serve`: bodies built to cost CPU, framing tricks, made-up methods,
huge fields in log lines, configuration that asks for keys and gives none. Nothing may crash, nothing may grow without
bound, and every malformed request gets a 4xx."""
import json
import re
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wine_api.data import TUTORIAL_ROW as ROW, load_wine_data
from harness import LiveServer, free_port, run_cli

FEATURES = load_wine_data().feature_names
LIMIT = 2_000_000  # the hostile server's body limit: large enough for bodies built to cost CPU


@pytest.fixture(scope="module")
def server():
    server = LiveServer("--max-body-bytes", LIMIT, env={"WINE_API_BODY_TIMEOUT": "1"})
    yield server
    server.stop()


def whole_answer(data:bytes) -> bool:
    "Whether `data` holds a whole HTTP answer: its head and as many body bytes as its Content-Length says."
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep: return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def raw(server, data:bytes, timeout:float=10) -> bytes:
    """Send `data` on a new connection; what the server answers, read until the answer is whole, the server closes, or
    `timeout`. The write side stays open: hyper, like many servers, drops a connection whose client half-closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        try: s.sendall(data)
        except OSError: pass  # the server answered and closed before it had all of it
        chunks = []
        try:
            while not whole_answer(b"".join(chunks)) and (chunk := s.recv(65536)): chunks.append(chunk)
        except (ConnectionResetError, socket.timeout): pass
    return b"".join(chunks)


def status_of(answer:bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def still_serving(server) -> bool:
    return requests.post(server.url + "/api/", json=[ROW], timeout=5).json() == [2]


def post_timed(server, path:str, body:bytes) -> tuple:
    started = time.perf_counter()
    r = requests.post(server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    return r, time.perf_counter() - started


def test_a_megabyte_of_column_names_is_refused_in_well_under_a_second(server):
    names = [f"c{i}" for i in range(150_000)] + FEATURES * 2  # ~1.3 MB: duplicates, unknowns and every feature twice
    r, seconds = post_timed(server, "/predict", json.dumps({"columns": names, "data": [ROW]}).encode())
    print(f"\n/predict, {len(names)} column names: {r.status_code} in {seconds * 1000:.0f} ms, answer {len(r.content)} bytes")
    assert r.status_code == 422 and seconds < 0.5
    assert len(r.content) < 10_000 and len(r.json()["error"]["details"]) == 20  # the answer stays small
    assert still_serving(server)


def test_a_megabyte_of_v2_feature_inputs_is_refused_in_well_under_a_second(server):
    inputs = [{"name": f"x{i}", "shape": [1], "datatype": "FP32", "data": [1]} for i in range(25_000)]
    inputs += [{"name": FEATURES[0], "shape": [1], "datatype": "FP32", "data": [1]}] * 2
    r, seconds = post_timed(server, "/v2/models/wine/infer", json.dumps({"inputs": inputs}).encode())
    print(f"\nV2, {len(inputs)} inputs: {r.status_code} in {seconds * 1000:.0f} ms, answer {len(r.content)} bytes")
    assert r.status_code == 400 and seconds < 0.5 and len(r.content) < 10_000
    assert f"'{FEATURES[0]}': input sent twice" in r.json()["error"]
    assert still_serving(server)


def test_bad_values_in_a_large_batch_get_a_small_answer(server):
    body = json.dumps({"instances": [["x" * 20] * 13] * 1500}).encode()  # ~400 KB of bad values
    r, seconds = post_timed(server, "/predict", body)
    assert r.status_code == 413 or (r.status_code == 422 and len(r.content) < 10_000), (r.status_code, len(r.content))


def test_made_up_methods_add_no_metric_series(server):
    def metrics() -> str: return requests.get(server.url + "/metrics", timeout=5).text
    for i in range(300):
        method = "FOO" + "".join(chr(ord("A") + int(d)) for d in str(i))  # FOOA, FOOB, ... FOOCJJ: letters, as a method is
        answer = raw(server, f"{method} /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        assert status_of(answer) == 405, answer[:200]  # reached the app, which answered
    text = metrics()
    assert "FOO" not in text
    assert len(text) < 30_000, len(text)
    assert 'method="OTHER"' in text
    assert still_serving(server)


def post(path:bytes, body:bytes) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (path, len(body), body))


CHUNKED = (b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n")


def chunked(*pieces:bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize("name, request_bytes, status", [
    ("chunked body over the limit", CHUNKED + chunked(*[b" " * 65536] * 40), 413),
    ("valid chunked body padded over the limit", CHUNKED + chunked(json.dumps([ROW]).encode(), *[b" " * 65536] * 40), 413),
    ("malformed chunk size", CHUNKED + b"zz\r\n[[1]]\r\n0\r\n\r\n", 400),
    # the rest of the 255-byte chunk never comes (the client keeps the connection open): the body's deadline answers
    ("chunk shorter than its size", CHUNKED + b"ff\r\n[[1]]\r\n0\r\n\r\n", 408),
    ("declared length over the limit", b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: 99999999\r\n\r\n[]", 413),
    ("unicode digits in a header", "POST /v2/models/wine/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: \u00b2\r\n"
                                   "Content-Length: 2\r\nConnection: close\r\n\r\n{}".encode("latin-1"), 400),
    ("nested 100,000 deep", b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n"
                            b"Connection: close\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000, 400),
    ("lone surrogate as a record's key", post(b"/predict", rb'{"records": [{"\ud800": 1}]}'), 400),
    ("lone surrogate as V2's id", post(b"/v2/models/wine/infer", rb'{"id": "\udfff", "inputs": []}'), 400),
    ("lone surrogate as a value", post(b"/api/", rb'[["\udc00"]]'), 400),
    ("nested 100,000 deep over V2", b"POST /v2/models/wine/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n"
                                    b"Connection: close\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000, 400),
])
def test_framing_and_structure_tricks_get_a_4xx(server, name, request_bytes, status):
    answer = raw(server, request_bytes)
    assert status_of(answer) == status, answer[:300]
    assert still_serving(server)


def test_a_body_slower_than_the_deadline_gets_a_408_then_the_server_hangs_up(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        started, chunks = time.monotonic(), [s.recv(65536)]
        assert 0.9 < time.monotonic() - started < 3
        while chunk := s.recv(65536): chunks.append(chunk)  # until the server hangs up (if it did not, a timeout raises)
    answer = b"".join(chunks)
    assert status_of(answer) == 408, answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["message"] == "the request body took longer than 1 s to arrive"


REQUEST_LINES = st.sampled_from([b"POST /api/ HTTP/1.1", b"POST /predict HTTP/1.1", b"POST /v2/models/wine/infer HTTP/1.1",
                                 b"GET /model HTTP/1.1", b"PUT /api/ HTTP/1.0"])
HEADER_VALUES = st.one_of(st.binary(max_size=12), st.sampled_from([b"-1", b"1e3", b"\xb2", b"0x10", b" 5", b"99999999999999999999"]))
HEADERS = st.lists(st.tuples(st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Content-Type", b"Content-Encoding",
                                              b"Inference-Header-Content-Length", b"Expect", b"X-Request-ID"]),
                             HEADER_VALUES), max_size=4)
SURROGATES = st.builds(lambda n, form: (form % ("\\u%04x" % n)).encode(), st.integers(0xD800, 0xDFFF),
                       st.sampled_from(['{"records": [{"%s": 1}]}', '{"columns": ["%s"], "data": [[1]]}', '[["%s"]]',
                                        '{"id": "%s", "inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP32", "data": [1]}]}']))
BODIES = st.one_of(st.binary(max_size=200), SURROGATES, st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(0, 5000)),
                   st.builds(lambda n: b"1" * n, st.integers(0, 6000)))


@given(line=REQUEST_LINES, headers=HEADERS, body=BODIES)
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)), deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_framing_never_gets_a_5xx(server, line, headers, body):
    "Request lines, headers with odd values (lengths that lie, unicode digits, encodings) and bodies, byte for byte."
    head = line + b"\r\nHost: x\r\nConnection: close\r\n" + b"".join(k + b": " + v.replace(b"\r", b"").replace(b"\n", b"")
                                                                   + b"\r\n" for k, v in headers)
    answer = raw(server, head + b"\r\n" + body, timeout=15)
    assert status_of(answer) < 500, answer[:300]


def test_the_fuzzing_left_the_server_serving(server):
    assert still_serving(server)


def test_log_lines_with_huge_fields_stay_one_record_each_under_concurrency(tmp_path):
    "4 KB paths (gunicorn's longest request line) from 16 threads on 2 workers: every line one JSON record, under PIPE_BUF."
    log_server = LiveServer()
    try:
        def hit(i):
            path = f"/{i:05d}" + "p" * 4000
            return requests.get(log_server.url + path, headers={"Connection": "close"}, timeout=10).status_code
        with ThreadPoolExecutor(16) as pool: statuses = list(pool.map(hit, range(400)))
        assert set(statuses) == {404}
    finally:
        log_server.stop()
    lines = log_server.log().splitlines()
    records = [json.loads(line) for line in lines]  # raises if two lines were cut into each other
    requests_logged = [r for r in records if r.get("logger") == "wine_api.requests" and r.get("status") == 404]
    assert len(requests_logged) == 400
    assert max(len(line.encode()) + 1 for line in lines) <= 4000
    assert all(r["path"].endswith("…") for r in requests_logged)


@pytest.mark.parametrize("how, value", [
    ("env", "0"), ("env", "false"), ("env", "null"), ("env", '""'), ("env", " , ,"), ("env", ""),
    ("env", "short"), ("file", ""), ("file", "# only a comment\n\n"), ("file", b"\xff\xfe\x00\x01"), ("fifo", None),
])
def test_asking_for_keys_and_getting_none_refuses_to_start(tmp_path, how, value):
    env, args = dict(os.environ), []
    if how == "env": env["WINE_API_API_KEYS"] = value
    else:
        key_file = tmp_path/"keys"
        if how == "fifo": os.mkfifo(key_file)
        elif isinstance(value, bytes): key_file.write_bytes(value)
        else: key_file.write_text(value)
        args = ["--api-key-file", key_file]
    proc = run_cli("serve", "--port", free_port(), *args, cwd=tmp_path, env=env, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Error: cannot serve: ") and "Traceback" not in proc.stderr, proc.stderr
    print(f"\n{how} {value!r}: {proc.stderr.strip()}")


BIG = "x" * 100_000
ROW_TENSOR = {"name": "input-0", "shape": [1, 13], "datatype": "FP32", "data": ROW}


@pytest.mark.parametrize("name, path, body", [
    ("50,000 unknown top-level keys", "/predict", {f"key{i}": 1 for i in range(50_000)}),
    ("a 100 KB top-level key", "/predict", {"instances": [ROW], BIG: 1}),
    ("a 100 KB record key", "/predict", {"records": [{BIG: 1}]}),
    ("a 100 KB string value", "/api/", [[BIG] * 13]),
    ("a 100 KB output name", "/v2/models/wine/infer", {"inputs": [ROW_TENSOR], "outputs": [{"name": BIG}]}),
    ("a 100 KB input name", "/v2/models/wine/infer", {"inputs": [{**ROW_TENSOR, "name": BIG, "datatype": "BAD"}]}),
    ("a 100 KB datatype", "/v2/models/wine/infer", {"inputs": [{**ROW_TENSOR, "datatype": BIG}]}),
    ("a 10,000-item datatype", "/v2/models/wine/infer", {"inputs": [{**ROW_TENSOR, "datatype": list(range(10_000))}]}),
    ("a huge binary_data_size", "/v2/models/wine/infer", {"inputs": [{**ROW_TENSOR, "parameters": {"binary_data_size": [1] * 10_000}}]}),
    ("a 100 KB model name", "/v2/models/" + "m" * 3000 + "/infer", {"inputs": [ROW_TENSOR]}),
])
def test_an_error_answer_stays_small_whatever_was_sent(server, name, path, body):
    r = requests.post(server.url + path, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=10)
    assert 400 <= r.status_code < 500 and len(r.content) < 2_000, (r.status_code, len(r.content), r.content[:200])


@pytest.mark.parametrize("where", ["datatype", "output name", "input name", "id", "outputs", "parameters"])
def test_lists_and_objects_where_strings_belong_get_a_400(server, where):
    odd = [[1], {"a": 1}]
    body = {"datatype": {"inputs": [{**ROW_TENSOR, "datatype": odd}]},
            "output name": {"inputs": [ROW_TENSOR], "outputs": [{"name": odd}]},
            "input name": {"inputs": [{**ROW_TENSOR, "name": odd}]},
            "id": {"id": odd, "inputs": [ROW_TENSOR]},
            "outputs": {"inputs": [ROW_TENSOR], "outputs": {"name": "predict"}},
            "parameters": {"inputs": [ROW_TENSOR], "parameters": odd}}[where]
    r = requests.post(server.url + "/v2/models/wine/infer", json=body, timeout=10)
    assert r.status_code == 400 and "error" in r.json(), (r.status_code, r.content[:200])

"The HTTP API: every route and every error case, against Flask's test client and a real gunicorn server."
import json

import numpy as np
import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from harness import without_ids
from wine_api.app import create_app
from wine_api.data import TUTORIAL_ROW, load_wine_data
from wine_api.store import bundled_model_dir, load_model

FEATURES = load_wine_data().feature_names


class FlaskClientTarget:
    "Flask's test client behind the same small interface as the live server."
    def __init__(self):
        self.client = create_app({"MAX_ROWS": 50, "MAX_CONTENT_LENGTH": 20_000}).test_client()
    def send(self, method, path, data=None, content_type="application/json"):
        r = self.client.open(path, method=method, data=data, content_type=content_type)
        return r.status_code, r.headers, r.get_data()


class LiveTarget:
    def __init__(self, server): self.url = server.url
    def send(self, method, path, data=None, content_type="application/json"):
        headers = {"Content-Type": content_type} if content_type else {}
        r = requests.request(method, self.url + path, data=data, headers=headers, timeout=10)
        return r.status_code, r.headers, r.content


@pytest.fixture(params=["test_client", "gunicorn"])
def target(request):
    return FlaskClientTarget() if request.param == "test_client" else LiveTarget(request.getfixturevalue("live_server"))


def as_json(body): return body if isinstance(body, (bytes, str)) else json.dumps(body)


def test_the_tutorial_request_gets_a_class(target):
    status, headers, body = target.send("POST", "/api/", as_json([TUTORIAL_ROW]))
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == [2]


def test_predictions_equal_the_scikit_learn_model_on_the_whole_data_set(target):
    X = load_wine_data().X.to_numpy()
    estimator = load_model(bundled_model_dir()).estimator
    rows = X[:50].tolist()
    status, _, body = target.send("POST", "/api/", as_json(rows))
    assert status == 200 and json.loads(body) == estimator.predict(X[:50].astype(np.float32)).tolist()
    status, _, body = target.send("POST", "/predict", as_json({"instances": rows}))
    answer = json.loads(body)
    assert answer["model_version"] == 1
    probabilities = [[p["probabilities"][c] for c in ("class_0", "class_1", "class_2")] for p in answer["predictions"]]
    np.testing.assert_array_equal(probabilities, estimator.predict_proba(X[:50].astype(np.float32)))
    assert [p["class_name"] for p in answer["predictions"]] == [f"class_{c}" for c in json.loads(target.send("POST", "/api/", as_json(rows))[2])]


def test_the_three_forms_match_by_name(target):
    record = dict(zip(FEATURES, TUTORIAL_ROW))
    shuffled = FEATURES[::-1]
    answers = [json.loads(target.send("POST", "/predict", as_json(body))[2]) for body in (
        {"instances": [TUTORIAL_ROW]},
        {"records": [dict(reversed(list(record.items())))]},
        {"columns": shuffled, "data": [[record[f] for f in shuffled]]})]
    assert without_ids(answers[0]) == without_ids(answers[1]) == without_ids(answers[2])
    assert answers[0]["predictions"][0]["class_name"] == "class_2"
    assert len({a["predictions"][0]["id"] for a in answers}) == 3  # each prediction its own id


def test_health_ready_and_model(target):
    assert json.loads(target.send("GET", "/health")[2]) == {"status": "ok"}
    assert json.loads(target.send("GET", "/ready")[2]) == {"status": "ready", "model_version": 1}
    info = json.loads(target.send("GET", "/model")[2])
    assert [f["name"] for f in info["features"]] == FEATURES
    assert info["class_names"] == ["class_0", "class_1", "class_2"] and info["estimator"]["hyperparameters"]["criterion"] == "gini"
    assert "files" not in info  # hashes and paths stay private


BAD_REQUESTS = [  # (name, method, path, body, content type, status, code, words in the message)
    ("invalid JSON", "POST", "/api/", "[[1, 2", "application/json", 400, "invalid_json", "not valid JSON"),
    ("wrong content type", "POST", "/api/", as_json([TUTORIAL_ROW]), "text/plain", 415, "unsupported_media_type", "'text/plain'"),
    ("no content type", "POST", "/predict", as_json({"instances": [TUTORIAL_ROW]}), None, 415, "unsupported_media_type", "no Content-Type"),
    ("empty body", "POST", "/api/", "", "application/json", 400, "empty_body", "body is empty"),
    ("empty list", "POST", "/api/", "[]", "application/json", 422, "invalid_input", "the body is empty"),
    ("empty instances", "POST", "/predict", '{"instances": []}', "application/json", 422, "invalid_input", "instances is empty"),
    ("wrong row length", "POST", "/api/", as_json([TUTORIAL_ROW, TUTORIAL_ROW[:12]]), "application/json", 422, "invalid_input", "row 1: expected 13 values"),
    ("a string", "POST", "/api/", as_json([TUTORIAL_ROW[:12] + ["660"]]), "application/json", 422, "invalid_input",
     "row 0, feature 'proline': expected a number, got the string '660'"),
    ("a boolean", "POST", "/predict", as_json({"instances": [[True] + TUTORIAL_ROW[1:]]}), "application/json", 422, "invalid_input",
     "row 0, feature 'alcohol': expected a number, got the boolean true"),
    ("null", "POST", "/api/", as_json([TUTORIAL_ROW, TUTORIAL_ROW[:5] + [None] + TUTORIAL_ROW[6:]]), "application/json", 422, "invalid_input",
     "row 1, feature 'total_phenols': expected a number, got null"),
    ("NaN", "POST", "/api/", "[[NaN" + ", 1" * 12 + "]]", "application/json", 422, "invalid_input",
     "row 0, feature 'alcohol': expected a finite number, got NaN"),
    ("Infinity", "POST", "/api/", "[[1" + ", 1" * 11 + ", -Infinity]]", "application/json", 422, "invalid_input",
     "feature 'proline': expected a finite number, got -Infinity"),
    ("nested list", "POST", "/api/", as_json([[TUTORIAL_ROW]]), "application/json", 422, "invalid_input", "row 0: expected 13 values"),
    ("nested value", "POST", "/api/", as_json([[[1.0]] + TUTORIAL_ROW[1:]]), "application/json", 422, "invalid_input",
     "feature 'alcohol': expected a number, got a list"),
    ("too large for float", "POST", "/api/", "[[1e400" + ", 1" * 12 + "]]", "application/json", 422, "invalid_input",
     "feature 'alcohol': expected a finite number, got Infinity"),
    ("too large for float32", "POST", "/api/", as_json([[1e39] + TUTORIAL_ROW[1:]]), "application/json", 422, "invalid_input",
     "feature 'alcohol': the number 1e+39 is too large"),
    ("a row that is not a list", "POST", "/api/", as_json([TUTORIAL_ROW, 5]), "application/json", 422, "invalid_input", "row 1: expected a list of 13 numbers, got 5"),
    ("not a list", "POST", "/api/", '{"rows": 1}', "application/json", 422, "invalid_input", "the body must be a list of rows"),
    ("missing feature", "POST", "/predict", as_json({"records": [dict(zip(FEATURES[:12], TUTORIAL_ROW))]}), "application/json", 422,
     "invalid_input", "row 0, feature 'proline': missing"),
    ("unknown feature", "POST", "/predict", as_json({"records": [{**dict(zip(FEATURES, TUTORIAL_ROW)), "colour": 1}]}), "application/json",
     422, "invalid_input", "row 0, feature 'colour': unknown feature"),
    ("unknown column", "POST", "/predict", as_json({"columns": FEATURES[:12] + ["x"], "data": [TUTORIAL_ROW]}), "application/json", 422,
     "invalid_input", "columns: 'proline': missing column"),
    ("no form", "POST", "/predict", as_json({"rows": [TUTORIAL_ROW]}), "application/json", 422, "invalid_input", 'exactly one of "instances"'),
    ("too many rows", "POST", "/api/", as_json([TUTORIAL_ROW] * 51), "application/json", 413, "too_many_rows", "51 rows, more than the limit of 50"),
    ("body too large", "POST", "/api/", as_json([TUTORIAL_ROW] * 400), "application/json", 413, "request_entity_too_large",
     "larger than the limit of 20000 bytes"),
    ("unknown route", "GET", "/nope", None, None, 404, "not_found", "not found"),
    ("wrong method", "GET", "/predict", None, None, 405, "method_not_allowed", "not allowed"),
]


@pytest.mark.parametrize("name, method, path, body, content_type, status, code, words", BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_clear_json_error(target, name, method, path, body, content_type, status, code, words):
    got_status, headers, got = target.send(method, path, body, content_type)
    assert got_status == status, got
    assert headers["Content-Type"] == "application/json"
    error = json.loads(got)["error"]
    assert error["code"] == code and words.lower() in error["message"].lower(), error
    assert isinstance(error["details"], list) and "Traceback" not in got.decode()
    if status == 405: assert "POST" in headers["Allow"]


def test_errors_list_every_problem_with_row_and_feature(target):
    rows = [TUTORIAL_ROW, TUTORIAL_ROW[:3] + ["x"] + TUTORIAL_ROW[4:], TUTORIAL_ROW[:12] + [None]]
    error = json.loads(target.send("POST", "/api/", as_json(rows))[2])["error"]
    assert error["details"] == [
        {"row": 1, "feature": "alcalinity_of_ash", "message": "expected a number, got the string 'x'"},
        {"row": 2, "feature": "proline", "message": "expected a number, got null"}]
    assert "(and 1 more problem, see details)" in error["message"]


def test_the_server_keeps_serving_after_every_bad_request(live_server):
    target = LiveTarget(live_server)
    for _, method, path, body, content_type, *_ in BAD_REQUESTS * 3: target.send(method, path, body, content_type)
    assert target.send("POST", "/api/", as_json([TUTORIAL_ROW]))[:1] == (200,)
    assert live_server.proc.poll() is None


def test_the_live_server_conforms_to_its_openapi_document(live_server):
    spec = requests.get(live_server.url + "/openapi.json", timeout=5).json()
    validator = OpenAPI.from_dict(spec)
    calls = [("GET", "/health", None), ("GET", "/ready", None), ("GET", "/model", None),
             ("POST", "/api/", [TUTORIAL_ROW]), ("POST", "/predict", {"instances": [TUTORIAL_ROW] * 3}),
             ("POST", "/predict", {"records": [dict(zip(FEATURES, TUTORIAL_ROW))]}),
             ("POST", "/predict", {"instances": [[1, "x"]]}), ("POST", "/api/", [TUTORIAL_ROW] * 60)]
    for method, path, body in calls:
        response = requests.request(method, live_server.url + path, json=body, timeout=5)
        validator.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    assert spec["paths"]["/api/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Rows"
    assert spec["components"]["schemas"]["Rows"]["maxItems"] == 50  # the server's real limit


def test_a_server_without_a_model_is_alive_but_not_ready(tmp_path):
    app = create_app({"MODEL_PATH": str(tmp_path)})
    client = app.test_client()
    assert client.get("/health").status_code == 200
    r = client.get("/ready")
    assert r.status_code == 503 and r.json["error"]["code"] == "model_unavailable"
    assert f"no model in {tmp_path}" in r.json["error"]["message"]


def test_environment_variables_configure_the_app(monkeypatch):
    monkeypatch.setenv("WINE_API_MAX_ROWS", "2")
    client = create_app().test_client()
    assert client.post("/api/", json=[TUTORIAL_ROW] * 3).status_code == 413
    assert client.post("/api/", json=[TUTORIAL_ROW] * 2).status_code == 200


def test_an_unexpected_exception_is_a_500_that_reveals_nothing():
    app = create_app()
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    r = app.test_client().get("/boom")
    assert r.status_code == 500 and r.json["error"]["code"] == "internal_error"
    assert "ZeroDivision" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)

"The Open Inference Protocol (V2) routes: a real third-party client, tritonclient[http], against a real gunicorn server."
import gzip
import json

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from tritonclient.utils import InferenceServerException

import wine_api
from wine_api.app import create_app
from wine_api.data import TUTORIAL_ROW as ROW, load_wine_data
from wine_api.store import bundled_model_dir, load_model

from harness import LiveServer

FEATURES = load_wine_data().feature_names
HEADER_LENGTH = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def v2_server():
    "The bundled model under `wine-api serve` with its default limits (10,000 rows per request)."
    server = LiveServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(v2_server):
    "tritonclient's HTTP client, pointed at our server as it would be at Triton."
    with triton.InferenceServerClient(url=f"127.0.0.1:{v2_server.port}", network_timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def estimator():
    return load_model(bundled_model_dir()).estimator


def wine_rows(n:int) -> np.ndarray:
    "`n` rows drawn from the wine data, each value moved a little so that rows differ."
    X = load_wine_data().X.to_numpy()
    rng = np.random.default_rng(n)
    return X[rng.integers(0, len(X), n)] * rng.uniform(0.9, 1.1, (n, X.shape[1]))


def matrix_input(X:np.ndarray, datatype:str, binary:bool):
    tensor = triton.InferInput("input-0", list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    return [tensor]


def assert_same_as_the_model(result, X, estimator):
    "The answer's outputs equal scikit-learn's predict and predict_proba on the same rows (the server computes in float32)."
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(X32))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), estimator.predict_proba(X32))
    assert result.as_numpy("predict").dtype == np.int64 and result.as_numpy("predict_proba").dtype == np.float64


def test_liveness_readiness_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("wine") and client.is_model_ready("wine", "1")
    assert not client.is_model_ready("iris") and not client.is_model_ready("wine", "2")
    assert client.get_server_metadata() == {"name": "wine_api", "version": wine_api.__version__,
                                            "extensions": ["binary_tensor_data"]}


def test_model_metadata(client):
    for meta in (client.get_model_metadata("wine"), client.get_model_metadata("wine", "1")):
        assert (meta["name"], meta["versions"], meta["platform"]) == ("wine", ["1"], "sklearn")
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("input-0", "FP32", [-1, 13])]
        assert meta["inputs"][0]["parameters"]["accepted_datatypes"] == ["FP32", "FP64", "INT32", "INT64"]
        assert meta["inputs"][0]["parameters"]["features"] == FEATURES
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
            ("predict", "INT64", [-1]), ("predict_proba", "FP64", [-1, 3])]
    with pytest.raises(InferenceServerException) as e: client.get_model_metadata("iris")
    assert e.value.status() == "404" and "unknown model 'iris'" in e.value.message()


@pytest.mark.parametrize("rows", [1, 1000])
@pytest.mark.parametrize("datatype, dtype", [("FP32", np.float32), ("FP64", np.float64)])
def test_inference_with_the_clients_defaults_binary_both_ways(client, estimator, rows, datatype, dtype):
    X = wine_rows(rows).astype(dtype)
    result = client.infer("wine", matrix_input(X, datatype, binary=True))  # no outputs named: all, in binary
    assert_same_as_the_model(result, X, estimator)
    response = result.get_response()
    assert (response["model_name"], response["model_version"]) == ("wine", "1")
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])


@pytest.mark.parametrize("rows", [1, 1000])
@pytest.mark.parametrize("datatype, dtype", [("FP32", np.float32), ("FP64", np.float64)])
def test_inference_in_json_with_binary_data_false(client, estimator, rows, datatype, dtype):
    X = wine_rows(rows).astype(dtype)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("predict", "predict_proba")]
    result = client.infer("wine", matrix_input(X, datatype, binary=False), outputs=outputs, request_id="req-7")
    assert_same_as_the_model(result, X, estimator)
    response = result.get_response()
    assert response["id"] == "req-7" and all("data" in o for o in response["outputs"])


@pytest.mark.parametrize("datatype, dtype", [("INT32", np.int32), ("INT64", np.int64)])
@pytest.mark.parametrize("binary", [True, False])
def test_integer_inputs(client, estimator, datatype, dtype, binary):
    X = np.rint(wine_rows(50)).astype(dtype)
    assert_same_as_the_model(client.infer("wine", matrix_input(X, datatype, binary)), X, estimator)


@pytest.mark.parametrize("binary", [True, False])
def test_one_input_per_feature(client, estimator, binary):
    X = wine_rows(200)
    inputs = []
    for j, name in reversed(list(enumerate(FEATURES))):  # any order: matched by name
        tensor = triton.InferInput(name, [len(X)], "FP64")
        tensor.set_data_from_numpy(np.ascontiguousarray(X[:, j]), binary_data=binary)
        inputs.append(tensor)
    assert_same_as_the_model(client.infer("wine", inputs), X, estimator)


def test_choosing_outputs_and_versions(client, estimator):
    X = wine_rows(20).astype(np.float32)
    result = client.infer("wine", matrix_input(X, "FP32", True), model_version="1",
                          outputs=[triton.InferRequestedOutput("predict_proba", binary_data=False)])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predict_proba"]
    assert result.as_numpy("predict") is None
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), estimator.predict_proba(X.astype(np.float32)))


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compressed_requests(client, estimator, compression):
    X = wine_rows(300).astype(np.float32)
    result = client.infer("wine", matrix_input(X, "FP32", True), request_compression_algorithm=compression)
    assert_same_as_the_model(result, X, estimator)


def triton_error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as e: call()
    return e.value


def test_bad_requests_through_the_client_are_4xx_with_the_reason(client):
    X = wine_rows(3).astype(np.float32)
    e = triton_error(lambda: client.infer("wine", matrix_input(X[:, :12].copy(), "FP32", True)))
    assert e.status() == "400" and "input 'input-0' has shape [3, 12]; send one input of shape [n, 13]" in e.message()
    e = triton_error(lambda: client.infer("wine", matrix_input(X.astype(np.float16), "FP16", True)))
    assert e.status() == "400" and "datatype 'FP16' is not accepted" in e.message()
    e = triton_error(lambda: client.infer("wine", matrix_input(X, "FP32", False), outputs=[triton.InferRequestedOutput("label")]))
    assert e.status() == "400" and "unknown output 'label'; the model's outputs are: predict, predict_proba" in e.message()
    e = triton_error(lambda: client.infer("iris", matrix_input(X, "FP32", True)))
    assert e.status() == "404" and "unknown model 'iris'" in e.message()
    e = triton_error(lambda: client.infer("wine", matrix_input(X, "FP32", True), model_version="3"))
    assert e.status() == "404" and "has no version '3'" in e.message()
    X[1, 4] = np.nan
    e = triton_error(lambda: client.infer("wine", matrix_input(X, "FP32", True)))
    assert e.status() == "400" and e.message() == "input 'input-0': row 1, feature 'magnesium': expected a finite number, got NaN"


def infer_body(inputs, outputs=None, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **({"outputs": outputs} if outputs else {}), **extra}).encode()


TENSOR = {"name": "input-0", "shape": [2, 13], "datatype": "FP32", "data": ROW * 2}
INFER = "/v2/models/wine/infer"
BAD_V2_REQUESTS = [  # (name, method, path, body, headers, status, words in the error)
    ("wrong shape", "POST", INFER, infer_body([{**TENSOR, "shape": [2, 12]}]), {}, 400, "has shape [2, 12]; send one input of shape [n, 13]"),
    ("wrong datatype", "POST", INFER, infer_body([{**TENSOR, "datatype": "FP16"}]), {}, 400, "datatype 'FP16' is not accepted"),
    ("data shorter than shape", "POST", INFER, infer_body([{**TENSOR, "data": ROW * 2 + [1]}]), {}, 400, "data has 27 values; shape [2, 13] needs 26"),
    ("nested rows fewer than shape", "POST", INFER, infer_body([{**TENSOR, "data": [ROW]}]), {}, 400, "data has 1 rows; shape [2, 13] says 2"),
    ("a string value", "POST", INFER, infer_body([{**TENSOR, "data": ROW + ROW[:12] + ["660"]}]), {}, 400,
     "input 'input-0': row 1, feature 'proline': expected a number, got the string '660'"),
    ("a float in an INT64 tensor", "POST", INFER, infer_body([{**TENSOR, "datatype": "INT64", "data": [1] * 25 + [1.5]}]), {}, 400,
     "row 1, feature 'proline': expected an integer, got 1.5"),
    ("one row as a vector", "POST", INFER, infer_body([{**TENSOR, "shape": [13], "data": ROW}]), {}, 400,
     "input 'input-0' has shape [13]; send one input of shape [n, 13]"),
    ("a boolean value", "POST", INFER, infer_body([{**TENSOR, "data": [True] + ROW[1:] + ROW}], [{"name": "predict", "parameters": {"binary_data": False}}]),
     {}, 400, "row 0, feature 'alcohol': expected a number, got the boolean true"),
    ("unknown output", "POST", INFER, infer_body([TENSOR], [{"name": "label"}]), {}, 400, "unknown output 'label'"),
    ("missing feature input", "POST", INFER, infer_body([{"name": f, "shape": [1], "datatype": "FP64", "data": [v]}
                                                         for f, v in list(zip(FEATURES, ROW))[1:]]), {}, 400, "'alcohol': missing input"),
    ("no inputs", "POST", INFER, infer_body([]), {}, 400, "\"inputs\" must be a non-empty list"),
    ("invalid JSON", "POST", INFER, b'{"inputs": [', {}, 400, "not valid JSON"),
    ("empty body", "POST", INFER, b"", {}, 400, "body is empty"),
    ("binary size beyond the body", "POST", INFER, infer_body([{**TENSOR, "data": None, "parameters": {"binary_data_size": 104}}]) + b"\0" * 100,
     "header", 400, "does not fit the 100 bytes"),
    ("header length beyond the body", "POST", INFER, infer_body([TENSOR]), {HEADER_LENGTH: "100000"}, 400, HEADER_LENGTH),
    ("unknown encoding", "POST", INFER, infer_body([TENSOR]), {"Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
    ("corrupt gzip", "POST", INFER, b"\x1f\x8b" + b"\0" * 30, {"Content-Encoding": "gzip"}, 400, "not valid gzip data"),
    ("gzip bomb", "POST", INFER, gzip.compress(b" " * 5_000_000), {"Content-Encoding": "gzip"}, 413, "larger than the limit"),
    ("too many rows", "POST", INFER, infer_body([{**TENSOR, "shape": [51, 13], "data": ROW * 51}]), {}, 413, "51 rows, more than the limit of 50"),
    ("unknown model", "POST", "/v2/models/iris/infer", infer_body([TENSOR]), {}, 404, "unknown model 'iris'"),
    ("unknown version", "GET", "/v2/models/wine/versions/7", None, {}, 404, "has no version '7'"),
    ("unknown V2 route", "GET", "/v2/models", None, {}, 404, "not found"),
    ("wrong method", "GET", INFER, None, {}, 405, "not allowed"),
]


class FlaskTarget:
    def __init__(self): self.client = create_app({"MAX_ROWS": 50, "MAX_CONTENT_LENGTH": 20_000}).test_client()
    def send(self, method, path, body, headers):
        r = self.client.open(path, method=method, data=body, headers=headers)
        return r.status_code, r.headers, r.get_data()


class LiveTarget:
    def __init__(self, server): self.url = server.url
    def send(self, method, path, body, headers):
        r = requests.request(method, self.url + path, data=body, headers=headers, timeout=10)
        return r.status_code, r.headers, r.content


@pytest.fixture(params=["test_client", "gunicorn"])
def target(request):
    return FlaskTarget() if request.param == "test_client" else LiveTarget(request.getfixturevalue("live_server"))


def header_length_of(body:bytes) -> dict:
    "The Inference-Header-Content-Length of a body whose JSON header is followed by binary data."
    return {HEADER_LENGTH: str(json.JSONDecoder().raw_decode(body.decode("latin-1"))[1])}


@pytest.mark.parametrize("name, method, path, body, headers, status, words", BAD_V2_REQUESTS, ids=[c[0] for c in BAD_V2_REQUESTS])
def test_bad_v2_requests_get_the_protocols_error_form(target, name, method, path, body, headers, status, words):
    if headers == "header": headers = header_length_of(body)
    got_status, got_headers, got = target.send(method, path, body, headers)
    assert got_status == status, got
    assert got_headers["Content-Type"] == "application/json"
    error = json.loads(got)
    assert list(error) == ["error"] and isinstance(error["error"], str), error
    assert words.lower() in error["error"].lower(), error
    assert "Traceback" not in error["error"]


def test_the_server_keeps_serving_after_every_bad_v2_request(live_server):
    target = LiveTarget(live_server)
    for _, method, path, body, headers, *_ in BAD_V2_REQUESTS * 2:
        target.send(method, path, body, header_length_of(body) if headers == "header" else headers)
    status, _, body = target.send("POST", INFER, infer_body([TENSOR]), {})
    assert status == 200 and json.loads(body)["outputs"][0]["data"] == [2, 2]
    assert live_server.proc.poll() is None


def test_an_unexpected_exception_under_v2_is_a_500_in_the_protocols_form():
    app = create_app()
    app.add_url_rule("/v2/boom", "boom", lambda: 1 / 0)
    r = app.test_client().get("/v2/boom")
    assert r.status_code == 500 and list(r.json) == ["error"] and "ZeroDivision" not in r.json["error"]


def test_the_v2_routes_conform_to_the_openapi_document(live_server):
    spec = requests.get(live_server.url + "/openapi.json", timeout=5).json()
    validator = OpenAPI.from_dict(spec)
    assert {p for p in spec["paths"] if p.startswith("/v2")} == {
        "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}", "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready", "/v2/models/{model_name}/versions/{model_version}/infer"}
    calls = [("GET", "/v2", None), ("GET", "/v2/health/live", None), ("GET", "/v2/health/ready", None),
             ("GET", "/v2/models/wine", None), ("GET", "/v2/models/wine/versions/1", None),
             ("GET", "/v2/models/wine/ready", None), ("GET", "/v2/models/iris/ready", None),
             ("POST", INFER, {"id": "1", "inputs": [TENSOR]}), ("POST", "/v2/models/wine/versions/1/infer", {"inputs": [TENSOR]}),
             ("POST", INFER, {"inputs": [{**TENSOR, "shape": [3, 13]}]}), ("POST", INFER, {"inputs": [TENSOR] * 60})]
    for method, path, body in calls:
        response = requests.request(method, live_server.url + path, json=body, timeout=5)
        validator.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))


def test_v2_and_predict_give_the_same_answers(target):
    X = wine_rows(40)
    status, _, body = target.send("POST", "/predict", json.dumps({"instances": X.tolist()}), {"Content-Type": "application/json"})
    predictions = json.loads(body)["predictions"]
    status_v2, _, body_v2 = target.send("POST", INFER, infer_body([{"name": "x", "shape": list(X.shape), "datatype": "FP64",
                                                                    "data": X.tolist()}]), {})
    assert status == status_v2 == 200
    outputs = {o["name"]: o["data"] for o in json.loads(body_v2)["outputs"]}
    assert outputs["predict"] == [p["class"] for p in predictions]
    assert np.reshape(outputs["predict_proba"], (40, 3)).tolist() == [list(p["probabilities"].values()) for p in predictions]


def test_serve_names_the_model_with_model_name():
    server = LiveServer("--model-name", "vino")
    try:
        with triton.InferenceServerClient(url=f"127.0.0.1:{server.port}") as c:
            assert c.is_model_ready("vino") and not c.is_model_ready("wine")
            assert c.get_model_metadata("vino")["name"] == "vino"
            X = wine_rows(5).astype(np.float32)
            assert c.infer("vino", matrix_input(X, "FP32", True)).get_response()["model_name"] == "vino"
    finally:
        server.stop()
    assert "POST /predict or /v2/models/vino/infer" in server.log()

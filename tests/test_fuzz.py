"""Fuzzing: schemathesis against the live server's own /openapi.json, hypothesis against the validation layer.

The example counts are bounded so CI stays fast; `FUZZ_EXAMPLES` raises them for a longer run.
"""
import json
import os

import numpy as np
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from hypothesis import strategies as st

from wine_api.app import create_app
from wine_api.errors import WineApiError
from wine_api.predict import Body, decode_json, predict_input, tutorial_input
from wine_api.data import load_wine_data
from wine_api.tensors import infer_request
from wine_api.v2 import V2_ERRORS
from wine_api.web import REST_ERRORS

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 25))
FEATURES = load_wine_data().feature_names
CASES_RUN = []


# The document the live server (`live_server`: --max-rows 50 --max-body-bytes 20000) publishes, built at import time
# so schemathesis can make one test per operation; the first test checks it is the very document the server serves.
SPEC = create_app({"MAX_ROWS": 50, "MAX_CONTENT_LENGTH": 20_000}).test_client().get("/openapi.json").json
# Both of schemathesis's conformance checks run on every operation. A request the document calls invalid must be
# refused; a batch over the row limit is refused with 413 (Content Too Large, listed for those routes), which
# schemathesis counts as a refusal only when told, and so is a valid body over this server's 20,000 bytes. A request
# the document calls valid must be accepted, except where the answer depends on what no schema can know, and the
# document lists that answer: a V2 tensor whose data disagrees with its shape (400), a model name or version this
# server does not serve (404), a prediction id the log never issued (404) or one already labelled otherwise (409), a
# monitoring window whose start is after its end (422).
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 406, 413, 415, 422]},
               "positive_data_acceptance": {"expected-statuses": [200, 201, 413]}},
    "operations": [
        {"include-path-regex": "/infer$",
         "checks": {"positive_data_acceptance": {"expected-statuses": [200, 400, 404, 413]}}},
        {"include-path-regex": "^/v2/models/.*[^r]$",  # a model's metadata and readiness, not its /infer
         "checks": {"positive_data_acceptance": {"expected-statuses": [200, 404]}}},
        {"include-path-regex": "/feedback$",
         "checks": {"positive_data_acceptance": {"expected-statuses": [200, 201, 404, 409, 413]}}},
        {"include-path-regex": "/monitoring$",
         "checks": {"positive_data_acceptance": {"expected-statuses": [200, 422]}}}]})
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)


def test_the_fuzzed_document_is_the_one_the_server_serves(live_server):
    assert requests.get(live_server.url + "/openapi.json", timeout=5).json() == SPEC


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_answers_as_its_description_says(case, live_server):
    "Generated requests, valid and not: never a 5xx, and every answer matches the document (status, type, schema)."
    response = case.call_and_validate(base_url=live_server.url)
    CASES_RUN.append(response.status_code)
    assert response.status_code < 500


def test_the_fuzzing_ran(live_server):
    assert len(CASES_RUN) >= 15, CASES_RUN  # at least one case per operation (there are 17)
    print(f"\nschemathesis: {len(CASES_RUN)} cases, statuses {sorted(set(CASES_RUN))}")
    assert requests_still_served(live_server)


def requests_still_served(server) -> bool:
    return requests.post(server.url + "/api/", json=[[1.0] * 13], timeout=5).status_code == 200


# Any JSON value at all, numbers included in every awkward form, nested a few levels.
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=15) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                           max_leaves=60)
rows = st.lists(st.lists(json_scalars | st.floats(-1e3, 1e3), min_size=11, max_size=14), min_size=1, max_size=5)
record_keys = st.sampled_from(FEATURES + ["colour", ""])
records = st.lists(st.dictionaries(record_keys, json_scalars | st.floats(-1e3, 1e3), min_size=10, max_size=14), min_size=1, max_size=4)
bodies = json_values | rows | st.fixed_dictionaries({"instances": rows}) | st.fixed_dictionaries({"records": records}) | \
    st.fixed_dictionaries({"columns": st.lists(record_keys, max_size=14), "data": rows})


def as_body(value) -> Body:
    "The value as the server would decode it from JSON text (NaN and Infinity included, as the stdlib writes them)."
    return decode_json(json.dumps(value).encode())


def accepted_or_refused(parse, value):
    "Parsing `value` gives a finite float32 array of 13 columns, or a `WineApiError` with a 4xx status and a message."
    try: X = parse(as_body(value))
    except WineApiError as e:
        assert 400 <= REST_ERRORS.status(e) < 500 and e.message
        return None
    assert X.dtype == np.float32 and X.ndim == 2 and X.shape[1] == 13 and np.isfinite(X).all() and X.flags.c_contiguous
    return X


@settings(max_examples=EXAMPLES * 20, deadline=None)
@given(bodies)
def test_any_json_gets_a_prediction_or_a_4xx_on_predict(value):
    accepted_or_refused(lambda body: predict_input(body, FEATURES, 10), value)


@settings(max_examples=EXAMPLES * 20, deadline=None)
@given(json_values | rows)
def test_any_json_gets_a_prediction_or_a_4xx_on_the_tutorial_route(value):
    X = accepted_or_refused(lambda body: tutorial_input(body, FEATURES, 10), value)
    if X is not None: assert X.shape[0] == len(value)


# every field either plausible or any JSON value at all: a list where a name belongs must be a 4xx too
tensors = st.fixed_dictionaries({"name": st.sampled_from(["input-0", "x"] + FEATURES[:2]) | json_values,
                                 "shape": st.lists(st.integers(-1, 14), max_size=3) | st.just([1, 13]) | st.just([2, 13]) | json_values,
                                 "datatype": st.sampled_from(["FP32", "FP64", "INT32", "INT64", "BYTES", "FP16"]) | json_values,
                                 "data": json_values | st.lists(st.floats(-1e3, 1e3) | st.integers(-5, 5), min_size=13, max_size=26)},
                                optional={"parameters": json_values | st.fixed_dictionaries({"binary_data_size": json_values})})
outputs = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba"]) | json_values},
                                         optional={"parameters": json_values}), max_size=3)
v2_requests = json_values | st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3)},
                                                  optional={"id": json_values, "outputs": outputs | json_values,
                                                            "parameters": json_values})


@settings(max_examples=EXAMPLES * 20, deadline=None)
@given(v2_requests, st.binary(max_size=64))
def test_any_v2_request_gets_an_answer_or_a_4xx(value, binary):
    try: request = infer_request(as_body(value), binary, FEATURES, 10)
    except WineApiError as e:
        assert 400 <= V2_ERRORS.status(e) < 500 and e.message and len(e.message) < 3000
        return
    assert request.X.dtype == np.float32 and request.X.shape[1] == 13 and np.isfinite(request.X).all()


@settings(max_examples=EXAMPLES * 20, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_get_a_4xx(data):
    try: decode_json(data)
    except WineApiError as e: assert REST_ERRORS.status(e) == 400 and e.message

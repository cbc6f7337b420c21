"The two apps our server is measured against, written as their authors would."
import json
import pickle

import numpy as np
from flask import Flask, request

from wine_api.store import MODEL_FILE, bundled_model_dir, current_version, versions_dir


def hello_app():
    "The stack's ceiling: Flask answering a constant, reading nothing."
    app = Flask("hello")

    @app.post("/api/")
    def constant(): return "[0]"

    return app


def tutorial_app():
    "The tutorial's way: unpickle at start, then json.loads + np.array + model.predict + json.dumps per request."
    store = bundled_model_dir()
    with open(versions_dir(store)/str(current_version(store))/MODEL_FILE, "rb") as f: model = pickle.load(f)
    app = Flask("tutorial")

    @app.post("/api/")
    def predict():
        data = json.loads(request.get_data())
        prediction = model.predict(np.array(data))
        return json.dumps(prediction.tolist())

    return app


class ConstantWsgi:
    "No framework at all: a WSGI callable answering a constant, with what our front reads of a Flask app."
    config = {}

    @staticmethod
    def wsgi_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "3")])
        return [b"[0]"]


def constant_app():
    "The server's ceiling through our RSGI front: what any app on it can reach at most."
    return ConstantWsgi()


class ConstantRsgi:
    "granian's own ceiling: an RSGI app that reads the body and answers a constant, with no front of ours."
    async def __rsgi__(self, scope, protocol):
        await protocol()
        protocol.response_bytes(200, [("content-type", "application/json")], b"[0]")

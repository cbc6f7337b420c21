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

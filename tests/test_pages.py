"""The pages for people, in a real browser (Debian's chromium through Playwright) against real gunicorn servers: the
model card is the served version's, the playground predicts what `/predict` answers, the docs list every route; the
same under a sub-path and with a key. Screenshots go to `build/screenshots/` (`harness.SCREENSHOTS`)."""
import json
import time
import re
from urllib.parse import urlparse

import pytest
import requests

from harness import SCREENSHOTS, LiveServer, store_with_two_versions
from wine_api.data import TUTORIAL_ROW
from wine_api.store import set_current

KEY = "page-test-key-0123456789abcdef"
PREFIX = "/wine-api"


def shot(page, name:str):
    "Keep what the page looks like now."
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS/f"{name}.png", full_page=True)


def own_requests(page) -> list:
    "Start recording every URL the page asks for; the list fills as it loads."
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    return seen


def foreign(urls:list, origin:str, prefix:str="") -> list:
    "The URLs that went anywhere but this server (under its prefix): must be none."
    return [u for u in urls if not u.startswith(("data:", "blob:")) and
            not (u.startswith(origin) and urlparse(u).path.startswith(prefix + "/"))]


def field(name:str) -> str:
    "The selector of a feature's number field (a feature's name may hold a '/')."
    return f'[id="f-{name}"]'


def fill_row(page, names:list, row:list):
    "Type a row into the playground's number fields."
    for name, value in zip(names, row):
        page.fill(field(name), str(value))


def shown_prediction(page) -> dict:
    "The class and probabilities the playground shows, once it shows them."
    page.wait_for_selector("#result-class")
    rows = page.eval_on_selector_all("#result-probabilities tbody tr",
                                     "rows => rows.map(r => [r.dataset.class, Number(r.dataset.probability)])")
    return {"class_name": page.inner_text("#result-class"), "probabilities": dict(rows)}


def predicted(url:str, names:list, row:list, headers=None) -> dict:
    "What `/predict` answers for the same row."
    answer = requests.post(f"{url}/predict", json={"records": [dict(zip(names, row))]}, headers=headers, timeout=10)
    answer.raise_for_status()
    return answer.json()["predictions"][0]


def card_figures(page) -> dict:
    "The version, the metrics' exact values, and the plots' decoded sizes, as the card shows them."
    return {"version": int(page.get_attribute("#model-card", "data-version")),
            "metrics": dict(page.eval_on_selector_all(
                "[data-metric]", "rows => rows.map(r => [r.dataset.metric, Number(r.dataset.value)])")),
            "plots": page.eval_on_selector_all("figure.plot img", "imgs => imgs.map(i => i.naturalWidth)")}


def paint_metrics(page) -> dict:
    "First contentful paint (ms) and the bytes the page and its assets took, as the browser measured them."
    return page.evaluate("""() => {
        const nav = performance.getEntriesByType("navigation")[0];
        const fcp = performance.getEntriesByName("first-contentful-paint")[0];
        const assets = performance.getEntriesByType("resource").reduce((sum, r) => sum + r.encodedBodySize, 0);
        return {first_contentful_paint_ms: fcp ? fcp.startTime : null, html_bytes: nav.encodedBodySize,
                asset_bytes: assets, total_kb: (nav.encodedBodySize + assets) / 1024};
    }""")


@pytest.fixture(scope="module")
def server():
    "The bundled model on a real gunicorn, no key."
    live = LiveServer()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def keyed_server():
    "The bundled model behind a key, mounted under a sub-path as a reverse proxy would (`SCRIPT_NAME`)."
    live = LiveServer(env={"WINE_API_API_KEYS": KEY, "SCRIPT_NAME": PREFIX},
                      wait=False)
    yield live
    live.stop()


def test_the_card_is_the_served_version_and_the_form_predicts_what_predict_answers(server, page):
    model = requests.get(f"{server.url}/model", timeout=10).json()
    names = [f["name"] for f in model["features"]]
    asked = own_requests(page)
    page.goto(f"{server.url}/")
    page.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS/"page-metrics.json").write_text(json.dumps(paint_metrics(page), indent=1))
    shot(page, "card")
    card = card_figures(page)
    assert card["version"] == model["model_version"]
    assert card["metrics"] and all(card["metrics"][k] == model["metrics"][k] for k in card["metrics"]), card
    assert {"test_accuracy", "cv_accuracy_mean", "tree_leaves"} <= set(card["metrics"])
    assert len(card["plots"]) == 2 and all(width > 100 for width in card["plots"])  # decoded images, not broken ones
    assert "Intended use and limits" in page.inner_text("#intended-use")
    assert page.input_value("#f-alcohol") != ""  # pre-filled with the report's example

    fill_row(page, names, TUTORIAL_ROW)
    page.click("#predict-button")
    shown, expected = shown_prediction(page), predicted(server.url, names, TUTORIAL_ROW)
    assert shown == {"class_name": expected["class_name"], "probabilities": expected["probabilities"]}
    shot(page, "card-predicted")

    row = list(TUTORIAL_ROW)
    row[names.index("proline")] = 1900.0  # the training rows stop at 1515
    fill_row(page, names, row)
    proline = page.locator('.feature[data-feature="proline"]')
    assert "out-of-range" in proline.get_attribute("class")
    assert page.get_attribute("#f-proline", "aria-invalid") == "true"
    assert page.get_attribute("#f-alcohol", "aria-invalid") == "false"
    page.click("#predict-button")
    page.wait_for_selector("#result-warnings li")
    assert "proline" in page.inner_text("#result-warnings")
    assert shown_prediction(page)["class_name"] == predicted(server.url, names, row)["class_name"]
    shot(page, "card-out-of-range")
    assert page.problems == [] and foreign(asked, server.url) == []


def test_the_form_works_with_the_keyboard_alone(server, page):
    model = requests.get(f"{server.url}/model", timeout=10).json()
    names = [f["name"] for f in model["features"]]
    page.goto(f"{server.url}/")
    for _ in range(40):  # Tab from the top of the page to the first field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "f-alcohol": break
    assert page.evaluate("document.activeElement.id") == "f-alcohol"
    page.keyboard.press("Control+A")
    page.keyboard.type("12.0")
    page.keyboard.press("Enter")  # submits the form, as in any HTML form
    expected = predicted(server.url, names, [12.0] + [float(page.input_value(field(n))) for n in names[1:]])
    assert shown_prediction(page)["class_name"] == expected["class_name"]
    labels = page.eval_on_selector_all('.feature input[type="number"]',
                                       "inputs => inputs.map(i => i.labels.length && i.labels[0].textContent)")
    assert labels == names  # every field has its label, for screen readers
    assert page.get_attribute("#result", "aria-live") == "polite"
    assert page.problems == []


def test_the_report_is_the_executed_training_notebook(server, page):
    page.goto(f"{server.url}/")
    page.click("#report-link")
    page.wait_for_selector("#report-version")
    assert page.inner_text("#report-version") == "1"
    text = page.inner_text("#report")
    assert "Intended use and limits" in text and "plot_feature_importances" in text
    assert page.eval_on_selector_all("#report img", "imgs => imgs.filter(i => i.naturalWidth > 100).length") >= 2
    shot(page, "report")
    assert page.problems == []


def test_the_docs_list_every_route_of_the_openapi_document(server, page):
    spec = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    routes = {(method.upper(), path) for path, operations in spec["paths"].items() for method in operations}
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary")
    page.wait_for_load_state("networkidle")
    shown = set(map(tuple, page.eval_on_selector_all(".opblock-summary", """blocks => blocks.map(b => [
        b.querySelector('.opblock-summary-method').textContent.trim(), b.querySelector('[data-path]').dataset.path])""")))
    assert shown == routes
    shot(page, "docs")
    assert page.problems == []


def test_the_json_api_is_unchanged_beside_the_pages(server):
    assert requests.get(f"{server.url}/nowhere", timeout=10).json()["error"]["code"] == "not_found"
    assert requests.post(f"{server.url}/api/", json=[TUTORIAL_ROW], timeout=10).json() == [2]
    assert requests.post(f"{server.url}/", json=[TUTORIAL_ROW], timeout=10).json()["error"]["code"] == \
        "method_not_allowed"
    page = requests.get(f"{server.url}/", timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert page.headers["Content-Type"].startswith("text/html") and "default-src 'none'" in policy
    assert "script-src 'none'" in requests.get(f"{server.url}/model/report", timeout=10).headers[
        "Content-Security-Policy"]


def test_under_a_sub_path_with_a_key_the_page_asks_for_it_and_keeps_it_in_the_tab(keyed_server, page):
    from harness import wait_until_ready
    assert wait_until_ready(f"{keyed_server.url}{PREFIX}", keyed_server.proc), keyed_server.log()
    base = f"{keyed_server.url}{PREFIX}"
    asked = own_requests(page)
    page.goto(f"{base}/")
    assert page.locator("#model-card").count() == 0  # nothing of the model without the key
    assert "API key" in page.inner_text("#card-notice")
    page.fill("#api-key", "wrong-key-0123456789")
    page.click("#key-form button[type=submit]")
    page.wait_for_function("document.querySelector('#card-notice').textContent.includes('not valid')")
    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#model-card")
    assert page.evaluate("sessionStorage.getItem('wine_api.key')") == KEY
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    headers = {"Authorization": f"Bearer {KEY}"}
    model = requests.get(f"{base}/model", headers=headers, timeout=10).json()
    assert card_figures(page)["version"] == model["model_version"]
    names = [f["name"] for f in model["features"]]
    fill_row(page, names, TUTORIAL_ROW)
    page.keyboard.press("Enter")
    expected = predicted(base, names, TUTORIAL_ROW, headers)
    assert shown_prediction(page) == {"class_name": expected["class_name"], "probabilities": expected["probabilities"]}
    shot(page, "sub-path-with-key")

    page.click("#report-link")  # fetched with the key, opened from a blob: URL
    page.wait_for_selector("#report-version")
    assert page.inner_text("#report-version") == str(model["model_version"])
    page.go_back()
    page.wait_for_selector("#api-key")
    page.click("nav >> text=API docs")  # same tab: the key is still there
    page.wait_for_selector(".opblock-summary")
    spec = requests.get(f"{base}/openapi.json", headers=headers, timeout=10).json()
    assert spec["servers"] == [{"url": PREFIX}]
    assert page.locator(".opblock-summary").count() == sum(len(ops) for ops in spec["paths"].values())
    shot(page, "sub-path-docs")

    assert page.problems == [] or all("401" in p for p in page.problems), page.problems  # the wrong key's answer
    assert foreign(asked, keyed_server.url, PREFIX) == []
    assert not any(KEY in url for url in asked)
    assert KEY not in keyed_server.log()


def test_the_card_follows_the_version_the_store_serves(tmp_path, page):
    store = store_with_two_versions(tmp_path)
    live = LiveServer("--model-dir", store)
    try:
        page.goto(f"{live.url}/")
        assert card_figures(page)["version"] == 1
        set_current(store, 2)  # a version without a training report, as older ones were saved
        for _ in range(50):
            if requests.get(f"{live.url}/ready", timeout=10).json().get("model_version") == 2: break
            time.sleep(0.1)
        page.reload()
        assert card_figures(page)["version"] == 2 and card_figures(page)["plots"] == []
        assert "no training report" in page.inner_text("#report-problem")
        assert "middle of each training range" in page.inner_text("#example-source")  # no deciles in its manifest
        assert page.locator("#report-link").count() == 0 and page.locator("#no-metrics").count() == 1
        shot(page, "card-version-2-without-report")
        assert requests.get(f"{live.url}/model/report", timeout=10).json()["error"]["code"] == "report_unavailable"
        assert page.problems == []
    finally:
        live.stop()


def hostile_report(report:dict) -> dict:
    "The report with script in its card prose, its HTML outputs and its plots, as a tampered file could hold."
    for cell in report["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "model-card" in tags:
            cell["source"] = "## Intended use\n\n<script>alert('prose')</script><img src=x onerror=\"alert('img')\">\n"
        if "figure-feature-importances" in tags:
            cell["outputs"][0]["data"]["image/png"] = "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="  # base64 of a <script>
        if "card-example" in tags:
            cell["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
                "text/html": "<script>alert('output')</script><a href=\"javascript:alert('link')\">x</a>",
                "application/json": {"features": {"alcohol": "<b>13</b>"}}}}]
    return report


def test_a_tampered_report_runs_no_script_anywhere(tmp_path, page):
    import shutil
    from wine_api.store import bundled_model_dir
    store = tmp_path/"models"
    shutil.copytree(bundled_model_dir(), store)
    report = store/"versions"/"1"/"report.ipynb"
    report.write_text(json.dumps(hostile_report(json.loads(report.read_text()))))
    live = LiveServer("--model-dir", store)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(f"{live.url}/")
        assert card_figures(page)["version"] == 1
        assert len(card_figures(page)["plots"]) == 1  # the "plot" that was a script is left out
        assert "training medians" in page.inner_text("#example-source")  # an example that is no row is ignored
        assert "<script>" in page.inner_text("#intended-use")  # shown as text, not run
        page.goto(f"{live.url}/model/report")
        page.wait_for_selector("#report-version")
        assert page.locator("#report script").count() == 0 and page.locator("#report [onerror]").count() == 0
        assert page.locator('#report a[href^="javascript:"]').count() == 0
        page.wait_for_timeout(300)
        assert dialogs == []
    finally:
        live.stop()

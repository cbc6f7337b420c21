"""What the pages for people cost a browser: page weight (bytes of the document and every asset it loads, as sent) and
time to first contentful paint, for the model card (`/`), the API docs (`/docs`) and the training report
(`/model/report`), each loaded `--loads` times in a fresh browser context (cold cache) from a real server on loopback.
Debian's chromium through Playwright. Run: `python bench/pages.py`; it prints a table (medians, and the spread)."""
import argparse
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from bench import Server  # noqa: E402

PAGES = {"model card": "/", "API docs": "/docs", "training report": "/model/report"}
MEASURE = """() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    const assets = performance.getEntriesByType("resource");
    return {fcp_ms: fcp ? fcp.startTime : null, load_ms: nav.loadEventEnd, requests: 1 + assets.length,
            kb: (nav.encodedBodySize + assets.reduce((sum, r) => sum + r.encodedBodySize, 0)) / 1024};
}"""


def measure(browser, url:str) -> dict:
    "One cold load of `url`: its paint, load and weight."
    context = browser.new_context()
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    figures = page.evaluate(MEASURE)
    context.close()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", type=int, default=5, help="cold loads per page")
    args = parser.parse_args()
    server = Server("wine_api_nolog")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).parent).stdout.strip()
            print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, chromium {browser.version}, "
                  f"{os.cpu_count()} cores, loopback")
            for _ in range(4): measure(browser, server.url("/model/report"))  # rendered once per worker: not timed
            print(f"{'page':<16} {'weight KB':>9} {'requests':>8} {'first paint ms':>15} {'load ms':>8}  (medians of "
                  f"{args.loads} cold loads; first paint min-max)")
            for name, path in PAGES.items():
                runs = [measure(browser, server.url(path)) for _ in range(args.loads)]
                fcp = [r["fcp_ms"] for r in runs]
                print(f"{name:<16} {statistics.median(r['kb'] for r in runs):>9.1f} {runs[0]['requests']:>8} "
                      f"{statistics.median(fcp):>15.0f} {statistics.median(r['load_ms'] for r in runs):>8.0f}"
                      f"  ({min(fcp):.0f}-{max(fcp):.0f})")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

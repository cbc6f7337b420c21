"""Run a comparison app (hello, tutorial) on a server: `python bench/serve.py APP PORT [shipped|gthread]`.

shipped: the server and settings `wine-api serve` uses (granian with our RSGI front, 2 workers, app made before fork);
rsgi: the same granian settings serving `apps.ConstantRsgi` directly, with no front of ours (granian's own ceiling);
gthread: gunicorn's gthread worker, 2 workers x 4 threads (the settings we served with before, issue 3's reference)."""
import sys

import apps  # beside this script, so on the path already

name, port, server = sys.argv[1], int(sys.argv[2]), (sys.argv[3] if len(sys.argv) > 3 else "shipped")
app = apps.ConstantRsgi() if server == "rsgi" else getattr(apps, f"{name}_app")()
if server == "gthread":
    from wine_api.cli import run_gunicorn
    run_gunicorn(app, {"bind": f"127.0.0.1:{port}", "workers": 2, "worker_class": "gthread", "threads": 4,
                       "preload_app": True, "keepalive": 5, "accesslog": None})
else:
    from wine_api.server import RsgiFront, granian_options, run_granian
    run_granian(app if server == "rsgi" else RsgiFront(app), granian_options(port=port, workers=2))

"Run a comparison app (hello, tutorial) under the gunicorn settings `wine-api serve` uses: `python bench/serve.py APP PORT`."
import sys

import apps  # beside this script, so on the path already
from wine_api.cli import gunicorn_options, run_gunicorn

name, port = sys.argv[1], int(sys.argv[2])
run_gunicorn(getattr(apps, f"{name}_app")(), gunicorn_options(port=port, workers=2))

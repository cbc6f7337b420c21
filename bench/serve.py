"Run one of the benchmarked apps under the gunicorn settings `wine-api serve` uses: `python bench/serve.py APP PORT`."
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from wine_api.cli import gunicorn_options, run_gunicorn, use_multiprocess_metrics

name, port = sys.argv[1], int(sys.argv[2])
if name == "wine_api":  # as `wine-api serve` runs it: metrics across workers, a JSON log line per request
    use_multiprocess_metrics()
    from wine_api.ops import configure_logging
    configure_logging()
    from wine_api.api import create_app as factory
else:
    import apps
    factory = getattr(apps, f"{name}_app")
run_gunicorn(factory(), gunicorn_options(port=port, workers=2))

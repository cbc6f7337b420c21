#!/usr/bin/env bash
# For notebook users: the virtualenv with the package and JupyterLab (`pip install -e ".[notebook]"`), then JupyterLab
# on the book (nbs/). Notebooks are cleaned as nbdev_clean does before they are saved, and the chapters are saved
# without outputs (scripts/jupyter/jupyter_server_config.py), so what you commit is what CI checks. Arguments go to
# `jupyter lab` (e.g. --no-browser --port 8888).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install -q -e ".[notebook]"
export JUPYTER_CONFIG_PATH="$PWD/scripts/jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
cd nbs  # the book's folder is JupyterLab's root
exec ../.venv/bin/jupyter lab "$@"

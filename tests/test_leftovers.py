"Notebook test runs and interactive training runs leave nothing behind in the temporary directory."
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO


@pytest.mark.parametrize("notebook", ["02_store", "04_train", "06_serving", "11_v2", "13_page", "14_app", "16_server", "17_cli"])
def test_a_notebook_test_run_leaves_no_temporary_files(tmp_path, notebook):
    scratch = tmp_path/"tmp"
    scratch.mkdir()
    assert (REPO/"nbs"/f"{notebook}.ipynb").is_file()  # nbdev_test passes on a path that matches nothing
    proc = subprocess.run([Path(sys.executable).parent/"nbdev_test", "--path", REPO/"nbs"/f"{notebook}.ipynb"],
                          cwd=REPO, env={**os.environ, "TMPDIR": str(scratch)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in scratch.iterdir()) == []  # 04_train is also the interactive training run

"Notebook test runs and interactive training runs leave nothing behind in the temporary directory."
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO


@pytest.mark.parametrize("notebook", ["02_store", "03_train", "05_serving", "10_v2", "12_app", "14_cli"])
def test_a_notebook_test_run_leaves_no_temporary_files(tmp_path, notebook):
    scratch = tmp_path/"tmp"
    scratch.mkdir()
    proc = subprocess.run([Path(sys.executable).parent/"nbdev_test", "--path", REPO/"nbs"/f"{notebook}.ipynb"],
                          cwd=REPO, env={**os.environ, "TMPDIR": str(scratch)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in scratch.iterdir()) == []  # 03_train is also the interactive training run

"The notebooks' own test runs (and the interactive training run, which is one of them) leave nothing behind."
import os
import subprocess
import sys
from pathlib import Path

from harness import REPO


def test_the_whole_book_test_run_leaves_no_temporary_files(tmp_path):
    "Every chapter, found by nbdev_test itself as scripts/test.sh runs it, with a fresh and empty temporary directory."
    scratch = tmp_path/"tmp"
    scratch.mkdir()
    proc = subprocess.run([Path(sys.executable).parent/"nbdev_test"], cwd=REPO, env={**os.environ, "TMPDIR": str(scratch)},
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
    assert left == [], left

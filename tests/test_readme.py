"README.md is generated from nbs/index.ipynb and must not drift from it."
import subprocess
import sys
from pathlib import Path

from harness import REPO


def test_readme_is_generated_from_the_index_notebook():
    jupyter = Path(sys.executable).parent/"jupyter"
    generated = subprocess.run([jupyter, "nbconvert", "--to", "markdown", "--stdout", REPO/"nbs"/"index.ipynb"],
                               check=True, capture_output=True, text=True).stdout
    assert generated == (REPO/"README.md").read_text(), \
        "README.md is stale: run `jupyter nbconvert --to markdown --stdout nbs/index.ipynb > README.md`"

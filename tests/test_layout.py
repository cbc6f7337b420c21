"The house's rules, checked on the generated package: each module imports only the floors below it, the data plane never imports Flask."
import ast
import json
import re
import subprocess
import sys

import pytest

from harness import REPO
from wine_api.data import TUTORIAL_ROW

PACKAGE = REPO/"wine_api"
NO_WEB = ["errors", "data", "store", "engine", "predlog", "judge", "train", "predict", "serving", "tensors", "batch",
          "spark"]  # the data plane: no Flask, no werkzeug


def chapter(module:str) -> tuple:
    "The number of the notebook a module is exported from, and its letter (`03b` comes after `03`): its floor."
    source = (PACKAGE/f"{module}.py").read_text()
    number, letter = re.search(r"File to edit: \.\./nbs/(\d+)([a-z]?)_\w+\.ipynb", source).groups()
    return int(number), letter


def imported_modules(module:str) -> set:
    "The `wine_api` modules that `module` imports, at the top or inside functions."
    found = set()
    for node in ast.walk(ast.parse((PACKAGE/f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wine_api."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "wine_api":
            found |= {alias.name for alias in node.names if (PACKAGE/f"{alias.name}.py").exists()}
        elif isinstance(node, ast.ImportFrom) and node.level == 1:  # nbdev writes `from .x import y`, `from . import x`
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):  # `import wine_api.batch as batching`
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("wine_api.")}
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_chapters_before_its_own(module):
    below = {m for m in imported_modules(module) if chapter(m) < chapter(module)}
    assert imported_modules(module) == below, f"{module} imports {imported_modules(module) - below} from above"


def test_the_layout_has_every_floor():
    assert set(NO_WEB) | {"web", "openapi", "api", "v2", "ops", "page", "app", "server", "client", "cli"} == set(MODULES)


@pytest.mark.parametrize("module", NO_WEB)
def test_the_data_plane_does_not_import_flask(module):
    script = (f"import sys, wine_api.{module}; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_base_install_never_imports_pyspark():
    "Spark is an optional extra: only `wine_api.spark` imports it, and only when it is called."
    script = ("import sys, wine_api.cli, wine_api.app, wine_api.batch, wine_api.spark; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_server_front_imports_neither_flask_nor_the_data_plane():
    "What the shipped server adds to any app it serves (the hello-world app of the benchmark included) stays small."
    script = ("import sys, wine_api.server; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'numpy', 'sqlalchemy') "
              "or m.startswith('wine_api.') and m != 'wine_api.errors' and m != 'wine_api.server'))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_predicting_from_the_command_line_does_not_import_flask():
    script = ("import json, sys\nfrom click.testing import CliRunner\nfrom wine_api.cli import cli\n"
              f"result = CliRunner().invoke(cli, ['predict', '-'], input=json.dumps([{TUTORIAL_ROW}]))\n"
              "print(json.dumps({'exit': result.exit_code, 'output': result.output, "
              "'flask': sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug'))}))")
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert out["exit"] == 0 and json.loads(out["output"])["predictions"][0]["class_name"] == "class_2", out
    assert out["flask"] == []


def test_errors_carry_no_http_status():
    import wine_api.errors as errors
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.WineApiError)]
    assert len(classes) > 10 and not any(hasattr(c, "status") for c in classes)


def test_no_code_line_in_a_notebook_is_over_120_characters():
    long = [(notebook.name, line[:60]) for notebook in sorted((REPO/"nbs").glob("*.ipynb"))
            for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > 120]
    assert long == []


def test_the_chapters_are_committed_without_outputs():
    "What JupyterLab's pre-save clean (scripts/jupyter) guarantees; only index.ipynb keeps outputs, for README.md."
    executed = [(notebook.name, i) for notebook in sorted((REPO/"nbs").glob("*.ipynb")) if notebook.name != "index.ipynb"
                for i, cell in enumerate(json.loads(notebook.read_text())["cells"])
                if cell.get("outputs") or cell.get("execution_count") is not None]
    assert executed == []


def test_the_page_assets_ship_in_the_package():
    "Every file the templates and scripts name is in the package data, and nothing is fetched from elsewhere."
    assets = {p.name for p in (PACKAGE/"static").iterdir()}
    named = set()
    for template in (PACKAGE/"templates").glob("*.html"):
        text = template.read_text()
        named |= set(re.findall(r"filename='([^']+)'", text))
        assert not re.search(r"(src|href)=\"(https?:)?//", text), template.name
    assert named and named <= assets, named - assets
    assert "templates/*.html static/*" in (REPO/"settings.ini").read_text()

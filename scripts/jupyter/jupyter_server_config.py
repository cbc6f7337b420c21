# JupyterLab settings for this repository; scripts/lab.sh puts this directory on JUPYTER_CONFIG_PATH, so nothing in
# your own ~/.jupyter changes. Every notebook is cleaned before JupyterLab writes it, as `nbdev_clean` cleans it
# (nbdev's own pre-save hook: settings.ini has `jupyter_hooks = True`), and a chapter is written without its outputs:
# the book's source holds code and prose, the executed copies live in the model store (report.ipynb) and in test runs.
# Only nbs/index.ipynb keeps its outputs, because README.md is made from them.
from pathlib import Path

c = get_config()  # noqa: F821 (given by Jupyter when it reads this file)


def clean_before_save(model, path, contents_manager, **kwargs):
    "nbdev's clean, then no outputs in a chapter."
    if model.get("type") != "notebook": return
    from nbdev.clean import clean_jupyter
    file = Path(contents_manager.root_dir)/path
    clean_jupyter(path=file, model=model)
    if file.name == "index.ipynb": return
    for cell in model["content"]["cells"]:
        if cell.get("cell_type") == "code": cell["outputs"], cell["execution_count"] = [], None


c.ContentsManager.pre_save_hook = clean_before_save

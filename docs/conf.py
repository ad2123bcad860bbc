"""Sphinx configuration of the invrec documentation (``sphinx-build -W -b html docs docs/_build/html``)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, not another installed copy
os.environ.setdefault("OMP_NUM_THREADS", "1")

import invrec  # noqa: E402

project = "invrec"
author = "The invrec developers"
copyright = "2026, The invrec developers"  # noqa: A001 - Sphinx's name
release = invrec.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "generated_examples/*.ipynb", "architecture.md", "eior_plan.md",
                    "generated_examples/*.py", "generated_examples/*.zip"]
templates_path = []

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# No network in CI: cross-references to other projects stay plain text.
intersphinx_mapping = {}

html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "multimedia recommenders robust to shift and missing modalities"}


def _reset_torch(gallery_conf, fname):
    """Each example starts from one torch thread and a fixed global seed."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "generated_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": True,
    "reset_modules": ("matplotlib", _reset_torch),
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "show_memory": False,
    "plot_gallery": "True",
}

suppress_warnings = ["config.cache"]  # sphinx_gallery_conf holds a function: rebuilt every time

# ----------------------------------------------------------------------------- docstring fixes
import re  # noqa: E402

#: A numpydoc attribute line listing several fitted names (``user_ids_, item_ids_, ...``): the
#: trailing underscores would read as RST references.
_NAME_LIST = re.compile(r"^(\s*)(\w+_(?:,\s*\w+_)+)\s*$")


def _escape_fitted_name_lists(app, what, name, obj, options, lines):
    """Escape the trailing underscores of fitted-attribute name lists, before numpydoc runs."""
    for i, line in enumerate(lines):
        match = _NAME_LIST.match(line)
        if match:
            names = [n.strip() for n in match.group(2).split(",")]
            lines[i] = match.group(1) + ", ".join(n[:-1] + r"\_" for n in names)
        elif "of shape (" in line:
            lines[i] = re.sub(r"\((\w+)_([,)])", r"(\1\\_\2", line)


def _close_nested_lists(app, what, name, obj, options, lines):
    """Blank line before a less indented line that follows an indented one inside Returns.

    ``make_multimodal_interactions`` documents the Bunch's keys as a nested definition list whose
    last entries have no body; docutils needs a blank line where the indentation drops.
    """
    if not name.endswith("make_multimodal_interactions"):
        return
    out = []
    for line in lines:
        if out and out[-1].strip() and line.strip():
            prev_indent = len(out[-1]) - len(out[-1].lstrip())
            indent = len(line) - len(line.lstrip())
            if 0 < indent < prev_indent:
                out.append("")
        out.append(line)
    lines[:] = out


def _skip_sklearn_request_methods(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` metadata-routing methods."""
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _escape_fitted_name_lists, priority=100)
    app.connect("autodoc-process-docstring", _close_nested_lists, priority=100)
    app.connect("autodoc-skip-member", _skip_sklearn_request_methods)

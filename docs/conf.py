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

# ----------------------------------------------------------------------------- API pages
import re  # noqa: E402


def _skip_sklearn_request_methods(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` metadata-routing methods."""
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_request_methods)

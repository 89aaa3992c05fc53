"""Sphinx configuration of the sktopo documentation.

Build (warnings are errors, as in CI):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Needs the ``docs`` extra: ``pip install -e ".[docs]"``.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # document the checkout, not an installed copy
sys.path.insert(0, str(HERE / "_ext"))

# Docstring examples and autodoc never download anything.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import sktopo  # noqa: E402

project = "sktopo"
author = "The sktopo developers"
copyright = "2025, The sktopo developers"
version = release = sktopo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "examples_list",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# No network when building: no intersphinx. Unresolved cross-references to
# numpy, torch or scikit-learn objects stay plain text (nitpicky is off).
nitpicky = False

# autodoc / numpydoc
# Inherited members from sktopo's own bases (fit/transform of the feature estimators) are
# shown; scikit-learn's and torch's plumbing (get_params, set_output, ...) is not.
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "inherited-members": ("BaseEstimator, TransformerMixin, ReprHTMLMixin, _HTMLDocumentationLinkMixin, "
                          "_MetadataRequester, _SetOutputMixin, Module, object"),
}
autodoc_typehints = "none"  # numpydoc sections already give the types
autosummary_generate = False  # the API pages are written out, no stub files
numpydoc_show_class_members = False  # autodoc lists the methods itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# MyST (Markdown pages)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# HTML
html_theme = "sphinx_rtd_theme"
html_title = f"sktopo {release}"
html_static_path = []

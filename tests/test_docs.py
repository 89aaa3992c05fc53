"""The documentation: it covers the public API, quotes the infinite-bar policy verbatim, and
builds with warnings as errors (the build runs only where the docs extra is installed)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sktopo
import sktopo.diagram

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _normalise(text):
    return " ".join(text.split())


def test_api_page_documents_every_public_name():
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:class|function):: (\w+)\s*$", api, re.M))
    missing = sorted(set(sktopo._PUBLIC) - documented)
    assert not missing, f"docs/api.rst lacks autoclass/autofunction for {missing}"


def test_api_page_documents_every_plotting_function():
    import sktopo.plotting

    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    missing = [name for name in sktopo.plotting.__all__ if f".. autofunction:: {name}\n" not in api]
    assert not missing, f"docs/api.rst lacks {missing}"


def test_infinite_bar_policy_is_quoted_verbatim():
    policy = sktopo.diagram.__doc__.split("-----------------------------\n", 1)[1]
    page = (DOCS / "guide" / "infinite_bars.md").read_text(encoding="utf-8")
    block = page.split("```{eval-rst}", 1)[1].split("```", 1)[0]
    block = block.replace(".. currentmodule:: sktopo", "")
    assert _normalise(block) == _normalise(policy), (
        "docs/guide/infinite_bars.md no longer quotes the policy of sktopo/diagram.py; "
        "copy the module docstring's policy into the eval-rst block again."
    )


def _have(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.slow
@pytest.mark.skipif(not _have("sphinx", "numpydoc", "myst_parser", "sphinx_rtd_theme"),
                    reason="needs the docs extra: pip install -e '.[docs]'")
def test_docs_build_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-10000:]
    assert (tmp_path / "html" / "api.html").exists()

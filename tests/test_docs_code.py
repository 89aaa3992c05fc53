"""Every Python code block of the documentation runs (issue 23, item 3).

The collector reads ``README.md`` and ``docs/**/*.md`` and takes every fenced block whose
language is Python: ```` ```python ````, ```` ```{code-block} python ```` (or ``{code}``,
``{code-cell}``), and ``.. code-block:: python`` inside an ```` ```{eval-rst} ```` block.
The blocks of one page run in order in one namespace, with matplotlib's Agg backend and a
temporary folder as the working directory; one test per page. A block written as a doctest
(lines starting with ``>>>``) is run as a doctest, so its quoted output is checked too.

Markers, written as HTML comments (invisible in the built docs, visible in the source) on the
line(s) right before a block:

``<!-- skip: reason -->``
    The block is not run (it needs a GPU, the network, a user's file, ...). The reason is
    reported: ``test_skipped_blocks_are_reported`` yields one skipped case per such block, so
    ``pytest -rs`` lists them. Keep them rare.
``<!-- requires: module[, module...] -->``
    The block runs only where the modules import (an optional extra such as giotto-ph or
    ray); elsewhere it is skipped and reported like a ``skip``.

A page whose blocks take more than a few seconds is listed in ``SLOW_PAGES`` and marked
``slow``. The docstring Examples that the API pages render run as doctests, one test per
module (``test_docstring_examples_run``). Any ``ConvergenceWarning``, ``FitFailedWarning`` or ``FutureWarning`` emitted by a
block is an error (issue 23, item 4: a pipeline in the docs must not teach an unscaled,
unconverged fit).
"""

import doctest
import importlib.util
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Languages of fenced blocks that are not Python and therefore not run. Any other language is
# an error, so that a Python block spelled differently (``py``, ``Python``, ``ipython``) cannot
# slip past the collector unrun.
NOT_PYTHON = {"", "bash", "sh", "console", "shell", "text", "none", "toml", "yaml", "json",
              "{toctree}", "{command-help}", "{math}", "{note}", "{warning}", "{seealso}"}
PYTHON = {"python", "python3", "py", "pycon", "ipython"}
CODE_DIRECTIVES = {"{code-block}", "{code}", "{code-cell}", "{sourcecode}"}

# pages that take more than a few seconds (measured on the shared 2-core machine)
SLOW_PAGES = {
    "README.md": "trains the digits MLP (10 s)",
    "docs/quickstart.md": "trains the digits MLP (10 s)",
    "docs/guide/collections.md": "a 3-fold grid search over MiniLM token clouds (45 s)",
    "docs/guide/scaling.md": "a local Dask cluster and a MiniLM grid search (35 s)",
    "docs/guide/rtd.md": "trains the digits MLP, 17 RTD pairs (20 s)",
    "docs/guide/plotting.md": "H1 of three layers, two PH dimension tables, ReLU ranks (12 s)",
    "docs/guide/similarity.md": "a 5 x 5 table of four measures, RTD included (10-20 s)",
}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>skip|requires)\s*:\s*(?P<value>.*?)\s*-->\s*$")
_RST_CODE = re.compile(r"^(?P<indent>\s*)\.\.\s+(?:code-block|code|sourcecode)::\s*(?P<lang>\S*)")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    code: str
    skip: str = ""  # why the block is not run here, or ""
    requires: list = field(default_factory=list)

    @property
    def where(self):
        return f"{self.page}:{self.line}"


def _pages():
    pages = [ROOT / "README.md"] + sorted(DOCS.rglob("*.md"))
    return [p for p in pages if "_build" not in p.parts]


def _language(info):
    """The language of a fence's info string: ``python``, ``{code-block} python`` -> python."""
    words = info.strip().split()
    if not words:
        return ""
    if words[0] in CODE_DIRECTIVES:
        return words[1].lower() if len(words) > 1 else ""
    return words[0] if words[0].startswith("{") else words[0].lower()


def _rst_code_blocks(lines, first_line):
    """``.. code-block:: python`` blocks inside an eval-rst block: (line, language, code)."""
    found = []
    i = 0
    while i < len(lines):
        match = _RST_CODE.match(lines[i])
        if not match:
            i += 1
            continue
        start, indent = i, len(match["indent"])
        i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        body = [b for b in body if not b.strip().startswith(":")]  # directive options
        code = "\n".join(body)
        found.append((first_line + start, match["lang"].lower(), textwrap.dedent(code).strip("\n")))
    return found


def collect(path, root=ROOT):
    """The Python blocks of one Markdown page, in order, with their markers."""
    page = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, markers, unknown = [], [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            markers.append((i + 1, marker["kind"], marker["value"]))
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                if markers:
                    raise ValueError(f"{page}:{markers[0][0]}: a marker must stand right "
                                     "before a code block")
            i += 1
            continue
        opening, info = fence["fence"], fence["info"]
        j = i + 1
        body = []
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if (close and close["fence"][0] == opening[0] and len(close["fence"]) >= len(opening)
                    and not close["info"].strip()):
                break
            body.append(lines[j])
            j += 1
        language = _language(info)
        found = []
        if language in PYTHON:
            code = "\n".join(b for b in body if not re.match(r"^:\w[\w-]*:", b))  # options
            found.append((i + 1, code))
        elif language == "{eval-rst}":
            for line_no, lang, code in _rst_code_blocks(body, i + 2):
                if lang in PYTHON:
                    found.append((line_no, code))
                elif lang not in NOT_PYTHON:
                    unknown.append(f"{page}:{line_no}: rst code-block language {lang!r}")
        elif language not in NOT_PYTHON:
            unknown.append(f"{page}:{i + 1}: fence language {language!r}")
        if markers and not found:
            raise ValueError(f"{page}:{markers[0][0]}: a marker stands before a block that is "
                             "not Python")
        for line_no, code in found:
            block = Block(page, line_no, code)
            for _, kind, value in markers:
                if kind == "skip":
                    if not value:
                        raise ValueError(f"{block.where}: a skip marker needs a reason")
                    block.skip = value
                else:
                    block.requires += [m.strip() for m in value.split(",") if m.strip()]
            blocks.append(block)
        markers = []
        i = j + 1
    if markers:
        raise ValueError(f"{page}:{markers[0][0]}: a marker stands before no code block")
    if unknown:
        raise ValueError("unknown code block languages (add them to PYTHON or NOT_PYTHON): "
                         + "; ".join(unknown))
    return blocks


def _why_not_run(block):
    if block.skip:
        return block.skip
    missing = [m for m in block.requires if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)} (not installed)"
    return ""


PAGES = {p.relative_to(ROOT).as_posix(): p for p in _pages()}
BLOCKS = {page: collect(path) for page, path in PAGES.items()}
RUN_PAGES = [page for page, blocks in BLOCKS.items() if blocks]


def _run_block(block, namespace):
    code = block.code
    if re.search(r"^\s*>>> ", code, re.M):
        parser = doctest.DocTestParser()
        test = parser.get_doctest(code, namespace, block.where, block.page, block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, clear_globs=False)
        failed = runner.summarize(verbose=False).failed
        assert not failed, f"{block.where}: {failed} doctest example(s) failed (output above)"
        return
    # the page line of every statement in tracebacks: pad with the lines before the block
    compiled = compile("\n" * block.line + code, block.where, "exec")
    exec(compiled, namespace)


def _forbidden_warnings():
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning

    # FitFailedWarning: GridSearchCV turns a failed fit into a warning and a NaN score
    return (ConvergenceWarning, FitFailedWarning, FutureWarning)


def run_blocks(blocks):
    """Run the blocks of one page in order in one namespace; return how many ran.

    A block that raises, or that emits a ConvergenceWarning, FitFailedWarning or
    FutureWarning (recorded, so that one raised inside GridSearchCV's error handling counts
    too), fails with the block's page and line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forbidden = _forbidden_warnings()
    namespace = {"__name__": "__docs__"}
    ran = 0
    try:
        for block in blocks:
            if _why_not_run(block):
                continue
            with warnings.catch_warnings(record=True) as caught:
                for category in forbidden:
                    warnings.simplefilter("always", category)
                try:
                    _run_block(block, namespace)
                except Exception as exc:  # name the block: one test runs a whole page
                    raise AssertionError(f"the code block at {block.where} failed: "
                                         f"{type(exc).__name__}: {exc}") from exc
            bad = [w for w in caught if issubclass(w.category, forbidden)]
            assert not bad, (f"the code block at {block.where} warns: "
                             + "; ".join(f"{w.category.__name__}: {w.message}" for w in bad))
            for w in caught:  # the others are shown as usual
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            ran += 1
    finally:
        plt.close("all")
    return ran


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=[pytest.mark.slow] if p in SLOW_PAGES else []) for p in RUN_PAGES],
)
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # a block's "~/..." writes here
    if not run_blocks(BLOCKS[page]):
        pytest.skip(f"every block of {page} is marked skip or lacks an optional module")


# The API pages render every docstring's Examples section: those are docs code blocks too, run
# here as doctests (their quoted output is checked), one test per module that has any.
SLOW_MODULES = {"sktopo.nn.quotient": "persistence relative to ReLU low-rank regions (8 s)"}


def _modules_with_examples():
    names = []
    for path in sorted((ROOT / "sktopo").rglob("*.py")):
        if path.name == "__main__.py" or ">>> " not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


@pytest.mark.parametrize(
    "module",
    [pytest.param(m, marks=[pytest.mark.slow] if m in SLOW_MODULES else []) for m in MODULES],
)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        for test in finder.find(mod, module):
            if test.examples and (test.filename or "").endswith(".py"):
                runner.run(test)
    finally:
        plt.close("all")
    result = runner.summarize(verbose=False)
    assert result.attempted, f"{module} has '>>> ' in its source but no docstring example ran"
    assert not result.failed, f"{result.failed} docstring example(s) of {module} failed (above)"


SKIPPED = [b for blocks in BLOCKS.values() for b in blocks if b.skip or b.requires]


@pytest.mark.parametrize("block", SKIPPED, ids=[b.where for b in SKIPPED])
def test_skipped_blocks_are_reported(block):
    """One case per marked block: skipped (with the marker's reason) where it is not run."""
    why = _why_not_run(block)
    if why:
        pytest.skip(f"{block.where} not run: {why}")


def test_collector_finds_the_blocks():
    """The collector sees the pages' Python blocks, markers and fence kinds as written."""
    assert "README.md" in RUN_PAGES and "docs/guide/plotting.md" in RUN_PAGES
    assert len(BLOCKS["docs/quickstart.md"]) == 3  # the two bash blocks are not Python


def test_collector_reads_markers_rst_and_doctests(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "```python\nx = 1\n```\n\n"
        "<!-- skip: needs a GPU -->\n\n"
        "```{code-block} python\n:caption: no\nraise RuntimeError\n```\n\n"
        "<!-- requires: no_such_module_xyz -->\n"
        "```python\nimport no_such_module_xyz\n```\n\n"
        "```{eval-rst}\nText.\n\n.. code-block:: python\n\n   y = x + 1\n\nMore text.\n```\n\n"
        "```pycon\n>>> y * 2\n4\n```\n\n"
        "```bash\nexit 1\n```\n",
        encoding="utf-8",
    )
    blocks = collect(page, root=tmp_path)
    assert [b.line for b in blocks] == [3, 9, 15, 22, 29]
    assert blocks[1].skip == "needs a GPU" and blocks[1].code == "raise RuntimeError"
    assert _why_not_run(blocks[2]) == "needs no_such_module_xyz (not installed)"
    assert blocks[3].code == "y = x + 1"
    assert run_blocks(blocks) == 3  # x = 1; y = x + 1; y * 2 == 4 checked as a doctest
    wrong = tmp_path / "wrong.md"
    wrong.write_text("```python\nx = 1\n```\n\n```pycon\n>>> x + 1\n3\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="wrong.md:5: 1 doctest example"):
        run_blocks(collect(wrong, root=tmp_path))


def test_collector_fails_a_block_that_does_not_converge(tmp_path):
    """Item 4's check: an unscaled, unconverged fit in a docs block fails the page, also when
    GridSearchCV catches the failure and only warns."""
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport warnings\nfrom sklearn.exceptions import ConvergenceWarning\n"
        "warnings.warn('lbfgs failed to converge', ConvergenceWarning)\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(AssertionError, match="page.md:1 warns: ConvergenceWarning: lbfgs"):
        run_blocks(collect(page, root=tmp_path))
    page.write_text(
        "```python\nimport numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import GridSearchCV\n"
        "X = np.random.default_rng(0).normal(size=(40, 3)) * [1, 1e6, 1e-6]\n"
        "y = (X[:, 0] > 0).astype(int)\n"
        "GridSearchCV(LogisticRegression(max_iter=2), {'C': [1.0]}, cv=2).fit(X, y)\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(AssertionError, match="warns: ConvergenceWarning"):
        run_blocks(collect(page, root=tmp_path))
    bad = tmp_path / "bad.md"
    bad.write_text(">>> not a block\n\n```py3\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown code block languages"):
        collect(bad, root=tmp_path)
    bad.write_text("<!-- skip: why -->\nsome text\n```python\nx\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="right before a code block"):
        collect(bad, root=tmp_path)
    bad.write_text("<!-- skip: -->\n```python\nx\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs a reason"):
        collect(bad, root=tmp_path)

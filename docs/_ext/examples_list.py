"""A tiny Sphinx extension: the ``examples-list`` and ``command-help`` directives.

It renders every ``examples/*.py`` script of the repository as a section: the
first line of the script's module docstring is the title, the rest of the
docstring (reStructuredText) the description, then the figures saved for it
(``<script name>*.png`` in the ``:figures:`` folders), the command that runs it
and its full source. New scripts appear in the docs without editing them.

Usage, in a reStructuredText page::

    .. examples-list::
       :path: ../examples

``command-help`` prints the ``--help`` text of the ``sktopo`` command (or of a
subcommand) as a literal block, so the docs never drift from the parser::

    .. command-help:: profile
"""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _describe(path: Path) -> tuple[str, list[str]]:
    """Title and description lines from a script's module docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    lines = inspect.cleandoc(doc).splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return path.stem.replace("_", " "), []
    title = lines[0].strip().rstrip(".")
    body = lines[1:]
    # a docstring may underline its first line as a title: skip the underline
    if body and body[0].strip() and set(body[0].strip()) <= set("=-~^*#"):
        body = body[1:]
    return title, body


class ExamplesList(SphinxDirective):
    has_content = False
    option_spec = {"path": directives.unchanged, "figures": directives.unchanged}

    def run(self):
        source_dir = Path(self.env.srcdir)
        folder = (source_dir / self.options.get("path", "../examples")).resolve()
        doc_dir = (source_dir / self.env.docname).parent
        # folders searched for "<script name>*.png", first match of a file name wins:
        # committed figures, then those a local run wrote (examples/output is git-ignored)
        figure_dirs = [(source_dir / folder).resolve() for folder in
                       self.options.get("figures", "../examples/figures").split()]
        scripts = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
        if not scripts:
            para = nodes.paragraph(text=f"No example scripts found in {folder.name}/ yet.")
            return [para]
        rst = []
        for script in scripts:
            self.env.note_dependency(str(script))
            title, body = _describe(script)
            rel = Path(os.path.relpath(script, doc_dir))  # literalinclude: relative to the page
            rst += [title, "-" * max(len(title), 3), ""]
            rst += body + [""]
            images = {}
            for folder in figure_dirs:
                for image in sorted(folder.glob(f"{script.stem}*.png")):
                    images.setdefault(image.name, image)
            for image in images.values():
                self.env.note_dependency(str(image))
                rst += [f".. image:: {Path(os.path.relpath(image, doc_dir)).as_posix()}",
                        f"   :alt: {image.name}", "   :width: 100%", ""]
            rst += ["Run it from the repository root::", "",
                    f"   python examples/{script.name}", ""]
            rst += [f".. literalinclude:: {rel.as_posix()}",
                    "   :language: python",
                    f"   :caption: examples/{script.name}", ""]
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(rst, source=str(folder)), container)
        return container.children


class CommandHelp(SphinxDirective):
    """The ``--help`` text of ``sktopo [subcommand]``, as printed by the real parser."""

    optional_arguments = 1
    has_content = False

    def run(self):
        import contextlib
        import io

        from sktopo.cli import main

        argv = [*self.arguments, "--help"]
        out = io.StringIO()
        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"  # argparse wraps to this width
        try:
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit:
                    pass
        finally:
            if old is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old
        text = out.getvalue().rstrip()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_directive("examples-list", ExamplesList)
    app.add_directive("command-help", CommandHelp)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx configuration of darknetpy's documentation.

Build: ``pip install -e '.[docs]' && sphinx-build -W --keep-going -b html docs docs/_build/html``.
The pages are Markdown (MyST-Parser); the command-line reference (cli.md) is rendered from
``darknetpy.cli.build_parser()`` by sphinx-argparse at build time, so nothing generated is committed.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's darknetpy, also when it is not installed
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))  # cliparser: build_parser() for cli.md

import darknetpy  # noqa: E402

project = "darknetpy"
author = "darknetpy contributors"
copyright = "darknetpy contributors, MIT licence"
release = darknetpy.__version__
version = release

extensions = [
    "myst_parser",  # Markdown pages
    "sphinxarg.ext",  # the argparse directive: the CLI reference from build_parser()
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3  # [text](page.md#a-heading) links
myst_enable_extensions = ["colon_fence"]

smartquotes = False  # keep ' and -- as typed: help texts name options (--device) and quote command lines
highlight_language = "text"  # unlabelled blocks are command lines and Darknet printouts
pygments_style = "sphinx"

# Theme: furo, a well-kept (frequent releases, Sphinx 7+) theme that needs no configuration and
# keeps wide tables and long command lines readable (they scroll instead of being cut).
html_theme = "furo"
html_title = f"darknetpy {release}"
html_static_path: list[str] = []

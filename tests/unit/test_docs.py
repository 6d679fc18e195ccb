"""Generated documentation stays generated: the sections table of docs/sections.md is the tool's output."""
from __future__ import annotations

import importlib.util

from darknetpy.registry import registered_sections

from ..conftest import ROOT, ZOO


def _tool():
    spec = importlib.util.spec_from_file_location("sections_table", ROOT / "tools" / "sections_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sections_table_of_the_docs_is_what_the_tool_writes():
    tool = _tool()
    table = tool.sections_table(ZOO)
    page = (ROOT / "docs" / "sections.md").read_text()
    families = set(registered_sections().values())
    assert table.count("\n") == 2 + len(families)  # header, rule, one row per section family
    assert table in page, "the table is out of date: run python tools/sections_table.py --write"
    assert tool.replace_table(page, table) == page

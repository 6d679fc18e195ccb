#!/usr/bin/env python3
"""The table of supported sections and the keys read in each, per fork (docs/sections.md).

The keys listed are those the zoo cfgs set and darknetpy reads; every registered section is listed,
with the forks that know it. The zoo is the shared folder's (../shared/darknet-cfg, or
$DARKNETPY_SHARED/darknet-cfg), else the copy in tests/fixtures/darknet-cfg (the same files).

    python tools/sections_table.py            # print the table
    python tools/sections_table.py --write    # replace the table in docs/sections.md
"""
from __future__ import annotations

import collections
import json
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darknetpy import DarknetError, read_cfg  # noqa: E402
from darknetpy.flavor import ALEXEYAB, PJREDDIE  # noqa: E402
from darknetpy.registry import registered_sections  # noqa: E402
from darknetpy.summary import shape_model  # noqa: E402

PAGE = ROOT / "docs" / "sections.md"
HEADER = "| section (aliases) | pjreddie | AlexeyAB | keys set in the zoo cfgs and read here |"


def default_zoo() -> Path:
    shared = Path(os.environ.get("DARKNETPY_SHARED", ROOT.parent / "shared")) / "darknet-cfg"
    return shared if shared.is_dir() else ROOT / "tests" / "fixtures" / "darknet-cfg"


def sections_table(zoo: Path) -> str:
    """The Markdown table, from the zoo cfgs Darknet accepts (expected.json)."""
    expected = json.loads((zoo / "expected.json").read_text())
    keys: dict[str, set[str]] = collections.defaultdict(set)
    seen: set[str] = set()
    for name in expected:
        flavor = "pjreddie" if name.startswith("pjreddie/") else "alexeyab"
        cfg = read_cfg(zoo / name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = shape_model(cfg, flavor)
        except DarknetError:
            continue
        for layer, sec in zip(model.layers, model.cfg.layers):
            keys[layer.section_type] |= {o.key for o in sec.options if o.used}
            seen.add(layer.section_type)
    by_class = collections.defaultdict(list)
    for alias, cls in registered_sections().items():
        by_class[cls].append(alias)
    lines = [HEADER, "| --- | :-: | :-: | --- |"]
    for cls, aliases in sorted(by_class.items(), key=lambda kv: kv[0].section_type.lower()):
        name = cls.section_type
        pj = "yes" if PJREDDIE.knows_section(name) else "—"
        ab = "yes" if ALEXEYAB.knows_section(name) else "—"
        alias = f" ({', '.join(a for a in aliases if a != name)})" if len(aliases) > 1 else ""
        used = ", ".join(f"`{k}`" for k in sorted(keys.get(name, ()))) or ("(no keys)" if name in seen else "(not in the zoo)")
        lines.append(f"| `[{name}]`{alias} | {pj} | {ab} | {used} |")
    return "\n".join(lines) + "\n"


def replace_table(page: str, table: str) -> str:
    """``page`` with its table (from the header line to the first line that is not a table row) replaced."""
    lines = page.splitlines(keepends=True)
    start = lines.index(HEADER + "\n")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join(lines[:start]) + table + "".join(lines[end:])


def main(argv: list[str]) -> int:
    table = sections_table(default_zoo())
    if "--write" in argv:
        PAGE.write_text(replace_table(PAGE.read_text(), table))
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

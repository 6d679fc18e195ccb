#!/usr/bin/env python3
"""Print the README's table of supported sections and the keys read in each, per fork.

The keys listed are those the zoo cfgs (shared/darknet-cfg) set and darknetpy reads; every
registered section is listed, with the forks that know it.
"""
from __future__ import annotations

import collections
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darknetpy import DarknetError, read_cfg  # noqa: E402
from darknetpy.flavor import ALEXEYAB, PJREDDIE  # noqa: E402
from darknetpy.registry import registered_sections  # noqa: E402
from darknetpy.summary import shape_model  # noqa: E402


def main() -> int:
    zoo = ROOT.parent / "shared" / "darknet-cfg"
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
    print("| section (aliases) | pjreddie | AlexeyAB | keys set in the zoo cfgs and read here |")
    print("| --- | :-: | :-: | --- |")
    for cls, aliases in sorted(by_class.items(), key=lambda kv: kv[0].section_type.lower()):
        name = cls.section_type
        pj = "yes" if PJREDDIE.knows_section(name) else "—"
        ab = "yes" if ALEXEYAB.knows_section(name) else "—"
        alias = f" ({', '.join(a for a in aliases if a != name)})" if len(aliases) > 1 else ""
        used = ", ".join(f"`{k}`" for k in sorted(keys.get(name, ()))) or ("(no keys)" if name in seen else "(not in the zoo)")
        print(f"| `[{name}]`{alias} | {pj} | {ab} | {used} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared paths and markers for the test suite.

The reference material lives in the project's shared folder (``../shared``, or ``$DARKNETPY_SHARED``).
``tests/fixtures`` carries a subset of it (two golden cases and the cfg zoo, see its README), so that a
clone with no shared folder beside it still runs: ``GOLDEN`` and ``ZOO`` are the shared folders where
present, else the fixtures. A test that reads anything else of the shared folder says so with
:func:`needs_shared` and is skipped, with the reason, where it is missing.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from darknetpy import Darknet
from darknetpy.verify import Case, same_bytes

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DARKNETPY_SHARED", ROOT.parent / "shared")).resolve()
FIXTURES = ROOT / "tests" / "fixtures"


def _shared_or_fixture(name: str) -> Path:
    return SHARED / name if (SHARED / name).is_dir() else FIXTURES / name


GOLDEN = _shared_or_fixture("golden")
ZOO = _shared_or_fixture("darknet-cfg")
GOLDEN_CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "case.json").exists()) if GOLDEN.exists() else []
GOLDEN_IS_SHARED = GOLDEN == SHARED / "golden"

torch.set_num_threads(min(2, torch.get_num_threads()))


def shared_missing(*paths: str) -> str | None:
    """The skip reason naming the first of ``paths`` (relative to the shared folder) that it lacks, or None.

    The shared folder itself, not the fixtures: a test of a golden case the fixtures carry needs nothing.
    """
    shown = os.environ.get("DARKNETPY_SHARED") or "../shared"
    for path in paths:
        if not (SHARED / path).exists():
            return f"needs {shown.rstrip('/')}/{path} (set DARKNETPY_SHARED to a shared folder)"
    return None


def needs_shared(*paths: str) -> pytest.MarkDecorator:
    """Mark a test (a module through ``pytestmark``, a case through ``pytest.param(marks=...)``) that reads
    ``paths`` under the shared folder: it is skipped, naming the missing one, where they are not all here."""
    reason = shared_missing(*paths)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def golden_params(*cases: str) -> list:
    """Named golden cases as parameters: those ``GOLDEN`` lacks (the fixtures carry two) need the shared folder."""
    return [pytest.param(c, marks=() if (GOLDEN / c / "case.json").exists() else needs_shared(f"golden/{c}")) for c in cases]


def golden_file(case: str, name: str, tmp_path: Path) -> Path:
    """``GOLDEN/case/name``, or, where the fixtures replaced a partial weights file ``model.conv.N`` by its
    digest, the same bytes written by ``save_weights(cutoff=N)`` into ``tmp_path`` and checked against it."""
    folder = GOLDEN / case
    if (folder / name).exists() or not (folder / f"{name}.sha256").exists():
        return folder / name
    out = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(folder / "model.cfg", folder / "model.weights", flavor=Case.open(folder).flavor)
    model.save_weights(out, cutoff=int(name.rsplit(".", 1)[1]))
    assert same_bytes(out.read_bytes(), folder / f"{name}.sha256"), f"{out} is not Darknet's {name}"
    return out


def zoo_expected() -> dict:
    return json.loads((ZOO / "expected.json").read_text())


def zoo_flavor(name: str) -> str:
    """The fork whose rules a zoo cfg is checked under (its folder)."""
    return "pjreddie" if name.startswith("pjreddie/") else "alexeyab"

"""Shared paths and markers for the test suite."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DARKNETPY_SHARED", ROOT.parent / "shared")).resolve()
GOLDEN = SHARED / "golden"
ZOO = SHARED / "darknet-cfg"
GOLDEN_CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "case.json").exists()) if GOLDEN.exists() else []

torch.set_num_threads(min(2, torch.get_num_threads()))


def zoo_expected() -> dict:
    return json.loads((ZOO / "expected.json").read_text())


def zoo_flavor(name: str) -> str:
    """The fork whose rules a zoo cfg is checked under (its folder)."""
    return "pjreddie" if name.startswith("pjreddie/") else "alexeyab"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared is not present")
    return SHARED

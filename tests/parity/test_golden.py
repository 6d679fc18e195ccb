"""The Darknet dumps in shared/golden: every check of `darknetpy verify` on every case.

Tolerances live in darknetpy.verify.TOLERANCES (taken from shared/golden/README.md).
"""
from __future__ import annotations

import pytest

from darknetpy.verify import TOLERANCES, verify_case

from ..conftest import GOLDEN, GOLDEN_CASES

pytestmark = pytest.mark.parity

IMPLEMENTED = ("fwd", "train", "weights", "detect", "grad", "loss")  # every check of darknetpy verify


@pytest.mark.parametrize("case", GOLDEN_CASES)
@pytest.mark.parametrize("check", IMPLEMENTED)
def test_golden_case_passes(case, check):
    (result,) = verify_case(GOLDEN / case, [check])
    if check == "detect" and not (GOLDEN / case / "detections.txt").exists():
        assert result.status == "n/a"
        return
    assert result.status == "passed", f"{case} {check}: {result.detail} (max err {result.max_error})"
    if result.tolerance:
        assert result.max_error <= TOLERANCES[check]


def test_all_four_cases_are_present():
    assert len(GOLDEN_CASES) == 4

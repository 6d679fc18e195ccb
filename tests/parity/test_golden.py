"""The Darknet dumps in shared/golden (or the two cases of tests/fixtures/golden): every check of
`darknetpy verify` on every case.

Tolerances live in darknetpy.verify.TOLERANCES (taken from shared/golden/README.md).
"""
from __future__ import annotations

import hashlib
import os

import pytest

from darknetpy.verify import TOLERANCES, verify_case

from ..conftest import GOLDEN, GOLDEN_CASES, GOLDEN_IS_SHARED

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


def test_every_expected_case_is_present():
    """The four cases of the shared folder, or the two tests/fixtures carries."""
    expected = 4 if GOLDEN_IS_SHARED else 2
    assert len(GOLDEN_CASES) == expected, GOLDEN_CASES


def _case_with_digest(src, dst, text: str | None = None):
    """A copy of the tiny pjreddie case whose model.conv.15 is replaced by a digest (``text``, else the right one)."""
    dst.mkdir()
    for name in ("case.json", "model.cfg", "model.weights", "expected.npz"):
        os.symlink(src / name, dst / name)
    if text is None:
        digest = (src / "model.conv.15.sha256")
        text = digest.read_text() if digest.exists() else None
        if text is None:
            data = (src / "model.conv.15").read_bytes()
            text = f"sha256 {hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    (dst / "model.conv.15.sha256").write_text(text)
    return dst


def test_the_weights_check_takes_a_digest_for_a_partial_file(tmp_path):
    case = _case_with_digest(GOLDEN / "pjreddie-yolov3-tiny-slim", tmp_path / "case")
    (result,) = verify_case(case, ["weights"])
    assert result.status == "passed" and result.detail == "round trip, model.conv.15 (sha256) identical"


@pytest.mark.parametrize("text, detail", [
    ("sha256 " + "0" * 64 + "\nsize 1944580\n", "save with cutoff 15 differs from model.conv.15.sha256"),
    ("sha256 57625fc152f90399744e9471d4b19c61556c939abbcaeb16dd8cbe3a5030eb97\nsize 1944581\n",
     "save with cutoff 15 differs from model.conv.15.sha256"),
    ("57625fc152f90399744e9471d4b19c61556c939abbcaeb16dd8cbe3a5030eb97\n", "not a digest file"),
], ids=["sha256", "size", "format"])
def test_the_weights_check_fails_on_a_wrong_digest(tmp_path, text, detail):
    case = _case_with_digest(GOLDEN / "pjreddie-yolov3-tiny-slim", tmp_path / "case", text)
    (result,) = verify_case(case, ["weights"])
    assert result.status == "failed" and detail in result.detail and "\n" not in result.detail

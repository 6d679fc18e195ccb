"""flavor.py: the pjreddie/AlexeyAB differences, each as darknet-reference.md states it."""
from __future__ import annotations

import pytest

from darknetpy import DarknetError, get_flavor
from darknetpy.flavor import ALEXEYAB, PJREDDIE, flavor_from_header

pytestmark = pytest.mark.unit


def test_batch_norm_epsilon_and_momentum():
    assert (PJREDDIE.bn_eps, PJREDDIE.bn_eps_inside_sqrt, PJREDDIE.bn_momentum) == (1e-6, False, 0.01)
    assert (ALEXEYAB.bn_eps, ALEXEYAB.bn_eps_inside_sqrt, ALEXEYAB.bn_momentum) == (1e-5, True, 0.1)


def test_headers_and_detection():
    assert PJREDDIE.header_version == (0, 2, 0) and ALEXEYAB.header_version == (0, 2, 5)
    assert flavor_from_header(0, 2, 5) is ALEXEYAB
    assert flavor_from_header(0, 2, 0) is PJREDDIE and flavor_from_header(0, 1, 0) is PJREDDIE


def test_section_tables_are_disjoint_where_they_should_be():
    assert "sam" in ALEXEYAB.sections and "sam" not in PJREDDIE.sections
    assert "deconvolutional" in PJREDDIE.sections and "deconvolutional" not in ALEXEYAB.sections
    assert ALEXEYAB.reads("yolo", "scale_x_y") and not PJREDDIE.reads("yolo", "scale_x_y")
    assert PJREDDIE.other_knows("yolo", "scale_x_y") and ALEXEYAB.other_knows("shortcut", "alpha")


@pytest.mark.parametrize("name,flavor", [("ab", ALEXEYAB), ("AlexeyAB", ALEXEYAB), ("pj", PJREDDIE), (PJREDDIE, PJREDDIE)])
def test_get_flavor(name, flavor):
    assert get_flavor(name) is flavor


def test_unknown_flavor():
    with pytest.raises(DarknetError, match="unknown flavor"):
        get_flavor("hank")

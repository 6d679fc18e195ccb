"""The section registry: every family has its tests, every alias resolves, the forks' tables agree."""
from __future__ import annotations

import pytest

from darknetpy.flavor import ALEXEYAB, PJREDDIE
from darknetpy.registry import lookup, register_section, registered_sections

from ..conftest import ROOT

pytestmark = pytest.mark.unit


# families whose tests share one file
SHARED_TEST_FILES = {"rnn": "recurrent", "gru": "recurrent", "lstm": "recurrent", "crnn": "recurrent"}


def test_every_registered_family_has_a_test_file():
    modules = {cls.__module__.rsplit(".", 1)[-1] for cls in registered_sections().values()}
    files = {m: SHARED_TEST_FILES.get(m, m) for m in modules}
    missing = [m for m, f in sorted(files.items()) if not (ROOT / "tests" / "unit" / "layers" / f"test_{f}.py").exists()]
    assert not missing


@pytest.mark.parametrize("alias,name", [("conv", "convolutional"), ("max", "maxpool"), ("avg", "avgpool"), ("conn", "connected"), ("network", None)])
def test_aliases_resolve_to_the_family(alias, name):
    cls = lookup(alias)
    assert (cls.section_type if cls else None) == name


def test_every_section_a_fork_knows_is_registered():
    registered = set(registered_sections())
    for flavor in (ALEXEYAB, PJREDDIE):
        assert flavor.sections - {"net", "network"} <= registered, flavor.sections - registered


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match=r"\[convolutional\] registered twice"):
        register_section("convolutional")(type("Again", (), {}))

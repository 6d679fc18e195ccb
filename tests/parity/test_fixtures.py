"""tests/fixtures against their sources in the shared folder, so that they cannot drift.

Every file of a fixture case stands for the shared file of that name: as a copy (identical bytes),
a relative symlink into the repository (resolving to identical bytes) or, for ``model.conv.N``,
``model.conv.N.sha256`` (its sha256 and size). The cfg zoo is a plain copy. tools/make_fixtures.py
rebuilds them.
"""
from __future__ import annotations

import hashlib
import os

import pytest

from ..conftest import FIXTURES, ROOT, SHARED, needs_shared

pytestmark = [pytest.mark.parity, needs_shared("golden", "darknet-cfg")]

CASES = sorted(p.name for p in (FIXTURES / "golden").iterdir() if p.is_dir())


def files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def test_the_fixtures_hold_two_golden_cases():
    assert CASES == ["alexeyab-yolo-fastest-1.1", "pjreddie-yolov3-tiny-slim"]


def test_the_golden_readme_is_the_shared_one():
    assert (FIXTURES / "golden" / "README.md").read_bytes() == (SHARED / "golden" / "README.md").read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_a_fixture_case_stands_for_every_file_of_the_shared_case(case):
    src, dst = SHARED / "golden" / case, FIXTURES / "golden" / case
    stands_for = {name.removesuffix(".sha256"): name for name in files(dst)}
    assert sorted(stands_for) == files(src)
    for name, fixture in stands_for.items():
        data, path = (src / name).read_bytes(), dst / fixture
        if fixture.endswith(".sha256"):
            assert name.startswith("model.conv.") and not path.is_symlink()
            assert path.read_text() == f"sha256 {hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n", fixture
            continue
        if path.is_symlink():
            target = os.readlink(path)
            assert not os.path.isabs(target), f"{fixture} -> {target} is not relative"
            assert path.resolve().is_relative_to(ROOT), f"{fixture} -> {target} leaves the repository"
        assert path.read_bytes() == data, fixture


@pytest.mark.parametrize("case", CASES)
def test_fixture_links_replace_the_bytes_the_repository_has(case):
    links = sorted(p.name for p in (FIXTURES / "golden" / case).iterdir() if p.is_symlink())
    assert "image.jpg" in links and ("model.weights" in links) == (case == "alexeyab-yolo-fastest-1.1")


def test_the_cfg_zoo_is_a_plain_copy():
    src, dst = SHARED / "darknet-cfg", FIXTURES / "darknet-cfg"
    assert files(dst) == files(src)
    assert not [p for p in dst.rglob("*") if p.is_symlink()]
    assert [n for n in files(src) if (src / n).read_bytes() != (dst / n).read_bytes()] == []

"""`check_dataset`: each planted bad label found at its file and line; BCCD's real zero-size box."""
from __future__ import annotations

import pytest

from darknetpy import DataError, check_dataset, voc_to_darknet
from darknetpy.data.check import KINDS

from . import PLANTED, write_image, write_planted
from .test_voc import BCCD, BCCD_NAMES, needs_bccd

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = write_planted(tmp_path_factory.mktemp("planted") / "obj")
    return folder, check_dataset(folder, classes=3)


@pytest.mark.parametrize("image", sorted(PLANTED))
def test_each_planted_problem_is_found_where_it_is(planted, image):
    folder, report = planted
    expected = PLANTED[image][1]
    found = [f for f in report.findings if f.path in (str(folder / image), str((folder / image).with_suffix(".txt")))]
    if expected is None:
        assert found == []
    else:
        assert [(f.kind, f.line) for f in found] == [expected]


def test_severities_counts_and_the_summary_table(planted):
    _, report = planted
    assert {f.kind for f in report.errors} == {"class out of range", "zero-size box", "centre outside image", "box larger than image",
                                               "missing label", "bad line", "non-finite value", "unreadable image", "extra values"}
    assert {f.kind for f in report.warnings} == {"box past edge", "duplicate box", "empty label", "box under 1 px"}
    assert (report.images, report.label_files) == (len(PLANTED), len(PLANTED) - 1)
    table = report.table().splitlines()
    assert table[0].split() == ["problem", "severity", "count", "files"]
    assert "zero-size box  error" in report.table() or any(r.split()[:3] == ["zero-size", "box", "error"] for r in table)
    assert table[-1] == "9 errors, 4 warnings"
    assert all(kind in KINDS for kind in {f.kind for f in report.findings})


def test_finding_text_is_path_line_message(planted):
    folder, report = planted
    (zero,) = [f for f in report.findings if f.kind == "zero-size box"]
    assert str(zero) == f"error: {folder / 'zero.txt'}:1: box of zero size (w = 0.0, h = 0.0)"
    assert "... 1 more 'zero-size box'" in report.format(limit=0)
    assert str(zero) in report.format(limit=None) and "more" not in report.format(limit=None)


def test_a_clean_data_set_has_no_findings(tmp_path):
    folder = write_planted(tmp_path / "obj", only=["good.jpg", "near_edge.jpg"])
    report = check_dataset(folder, classes=3)
    assert report.findings == [] and report.boxes == {0: 2, 2: 1}


def test_lists_data_files_duplicates_and_overlap(tmp_path):
    folder = write_planted(tmp_path / "obj", only=["good.jpg", "dup.jpg", "zero.jpg"])
    (tmp_path / "train.txt").write_text(f"{folder / 'good.jpg'}\n{folder / 'good.jpg'}\n{folder / 'dup.jpg'}\n")
    (tmp_path / "valid.txt").write_text(f"{folder / 'dup.jpg'}\n{tmp_path / 'gone.jpg'}\n")
    (tmp_path / "x.names").write_text("a\nb\n")
    (tmp_path / "x.data").write_text("classes=2\ntrain=train.txt\nvalid=valid.txt\nnames=x.names\n")
    report = check_dataset(tmp_path / "x.data")  # relative list paths: beside the .data file
    kinds = sorted((f.kind, f.path.rsplit("/", 1)[-1]) for f in report.findings)
    assert kinds == [("class out of range", "good.txt"), ("duplicate box", "dup.txt"), ("duplicate image", "good.jpg"),
                     ("in train and valid", "dup.jpg"), ("missing image", "gone.jpg")]
    assert report.lists == {"train": 3, "valid": 2} and report.names == ["a", "b"]


def test_pjreddie_looks_in_labels(tmp_path):
    write_image(tmp_path / "images" / "a.jpg")
    (tmp_path / "images" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert [f.kind for f in check_dataset(tmp_path / "images" / "a.jpg").findings] == []
    assert [f.kind for f in check_dataset(tmp_path / "images" / "a.jpg", flavor="pjreddie").findings] == ["missing label"]
    with pytest.raises(DataError, match="unknown flavor"):
        check_dataset(tmp_path, flavor="darknet")
    with pytest.raises(DataError, match="not found"):
        check_dataset(tmp_path / "nothing.data")


def test_decode_finds_a_truncated_jpeg(tmp_path):
    image = write_image(tmp_path / "obj" / "cut.jpg", 200, 200)
    image.write_bytes(image.read_bytes()[:-200])
    image.with_suffix(".txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert check_dataset(image).errors == []  # the header is intact
    assert [f.kind for f in check_dataset(image, decode=True).errors] == ["unreadable image"]


@needs_bccd
def test_bccd_zero_size_box_of_the_reference_run(tmp_path):
    """Darknet's calc_anchors on the reference run's train list: `Wrong label: BloodImage_00343.txt - j = 3`."""
    result = voc_to_darknet(BCCD, tmp_path, names=BCCD_NAMES, train=["train"], valid=["test"], offset=False, link_images=True)
    report = check_dataset(result.data_file)
    assert [(f.kind, f.path.rsplit("/", 1)[-1], f.line) for f in report.findings] == [("zero-size box", "BloodImage_00343.txt", 4)]
    assert report.lists == {"train": 205, "valid": 72} and report.names == BCCD_NAMES
    everything = check_dataset([tmp_path / "BCCD_trainval.txt", tmp_path / "BCCD_test.txt"], classes=3, decode=True)
    assert sorted((f.kind, f.path.rsplit("/", 1)[-1], f.line) for f in everything.findings) == [
        ("zero-size box", "BloodImage_00338.txt", 13), ("zero-size box", "BloodImage_00343.txt", 4)]
    assert sum(everything.boxes.values()) == 4888 - 2

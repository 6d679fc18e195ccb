"""`voc_to_darknet`: BCCD boxes read by hand from the XML (both centre conventions), lists, .data, difficult boxes."""
from __future__ import annotations

import os
from collections import Counter

import pytest

from darknetpy import VOC_CLASSES, DataError, read_voc_xml, voc_to_darknet
from darknetpy.data import DataConfig, label_path, read_image_list

from ...conftest import SHARED, needs_shared
from . import write_voc

pytestmark = pytest.mark.unit

BCCD = SHARED / "datasets" / "bccd" / "BCCD"
BCCD_NAMES = ["RBC", "WBC", "Platelets"]  # the reference run's class numbers (runs/bccd-darknet/reference.json)
needs_bccd = needs_shared("datasets/bccd")


def _lines(path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def bccd_plain(tmp_path_factory):
    out = tmp_path_factory.mktemp("bccd-plain")
    return out, voc_to_darknet(BCCD, out, names=BCCD_NAMES, train=["train"], valid=["test"], offset=False, link_images=True)


@pytest.fixture(scope="module")
def bccd_offset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bccd-offset")
    return out, voc_to_darknet(BCCD, out, names=BCCD_NAMES, link_images=True)


# (image, line, class, xmin, ymin, xmax, ymax) read from BCCD/Annotations/*.xml
HAND_READ = [
    ("BloodImage_00343", 1, 0, 484, 195, 613, 303),
    ("BloodImage_00343", 4, 0, 181, 329, 181, 329),  # the zero-size box
    ("BloodImage_00343", 10, 2, 1, 361, 48, 410),
    ("BloodImage_00343", 12, 1, 183, 1, 425, 153),
    ("BloodImage_00000", 1, 1, 260, 177, 491, 376),
]


@needs_bccd
@pytest.mark.parametrize("image, line, cls, xmin, ymin, xmax, ymax", HAND_READ)
def test_bccd_boxes_with_the_plain_centre(bccd_plain, image, line, cls, xmin, ymin, xmax, ymax):
    out, _ = bccd_plain
    got = _lines(out / "BCCD" / "labels" / f"{image}.txt")[line - 1]
    want = [cls, (xmin + xmax) / 2 / 640, (ymin + ymax) / 2 / 480, (xmax - xmin) / 640, (ymax - ymin) / 480]
    assert got == pytest.approx(want, rel=0, abs=1e-12)


@needs_bccd
@pytest.mark.parametrize("image, line, cls, xmin, ymin, xmax, ymax", HAND_READ)
def test_bccd_boxes_with_voc_labels_offset(bccd_offset, image, line, cls, xmin, ymin, xmax, ymax):
    out, _ = bccd_offset
    got = _lines(out / "BCCD" / "labels" / f"{image}.txt")[line - 1]
    want = [cls, ((xmin + xmax) / 2 - 1) / 640, ((ymin + ymax) / 2 - 1) / 480, (xmax - xmin) / 640, (ymax - ymin) / 480]
    assert got == pytest.approx(want, rel=0, abs=1e-12)


@needs_bccd
@needs_shared("runs/bccd-darknet")
def test_bccd_plain_centre_is_the_reference_runs_label(bccd_plain):
    """Darknet's calc_anchors printed `Wrong label: BloodImage_00343.txt - j = 3, x = 0.282813, y = 0.685417`."""
    out, _ = bccd_plain
    _, x, y, w, h = _lines(out / "BCCD" / "labels" / "BloodImage_00343.txt")[3]
    assert (f"{x:.6f}", f"{y:.6f}", f"{w:.6f}", f"{h:.6f}") == ("0.282813", "0.685417", "0.000000", "0.000000")
    reference = SHARED / "runs" / "bccd-darknet" / "calc_anchors-k6-320.txt"
    assert "j = 3, x = 0.282813, y = 0.685417, width = 0.000000, height = 0.000000" in reference.read_text()


@needs_bccd
def test_bccd_lists_names_and_data(bccd_plain):
    out, result = bccd_plain
    config = DataConfig.read(out / "bccd.data")
    assert config.classes == 3 and config.names() == BCCD_NAMES
    train, valid = read_image_list(config.path_of("train")), read_image_list(config.path_of("valid"))
    assert (len(train), len(valid)) == (205, 72)  # ImageSets/Main/train.txt and test.txt, as the reference run
    assert config.get("difficult") is None  # BCCD marks no box difficult
    assert os.path.isdir(config.get("backup"))
    assert train[0] == out / "BCCD" / "JPEGImages" / "BloodImage_00001.jpg"
    assert train[0].is_symlink() and train[0].resolve() == (BCCD / "JPEGImages" / "BloodImage_00001.jpg").resolve()
    assert len(read_image_list(out / "BCCD_trainval.txt")) == 292
    assert (result.images, result.boxes, result.difficult) == (364, [4155, 372, 361], 0)
    assert len(list((out / "BCCD" / "labels").glob("*.txt"))) == 364


@needs_bccd
def test_bccd_train_boxes_per_class_match_darknets_counters(bccd_plain):
    """calc_anchors on the reference run's train list: counters_per_class = 2382, 214, 209."""
    out, _ = bccd_plain
    counts = Counter()
    for image in read_image_list(out / "train.txt"):
        counts.update(int(row[0]) for row in _lines(label_path(image)))
    assert [counts[c] for c in range(3)] == [2382, 214, 209]


def test_difficult_boxes_stay_out_of_training_and_go_to_the_difficult_list(tmp_path):
    voc = write_voc(tmp_path / "VOC2007", {
        "a": [("dog", 10, 10, 30, 40, 0), ("cat", 50, 5, 90, 45, 1), ("unicorn", 1, 1, 5, 5, 0)],
        "b": [("dog", 20, 20, 40, 40, 0)],
        "c": [("cat", 1, 1, 100, 50, 0)],
    }, {"train": ["c"], "val": [], "test": ["a", "b"]})
    result = voc_to_darknet(voc, tmp_path / "out", names=list(VOC_CLASSES))
    assert result.unknown == {"unicorn": 1} and result.difficult == 1
    labels = voc / "labels"
    assert _lines(labels / "a.txt") == [pytest.approx([11, 19 / 100, 24 / 50, 20 / 100, 30 / 50])]  # voc_label.py: centre - 1
    assert _lines(labels / "difficult_a.txt") == [pytest.approx([7, 69 / 100, 24 / 50, 40 / 100, 40 / 50])]
    assert (labels / "difficult_b.txt").read_text() == ""
    config = DataConfig.read(result.data_file)
    valid = read_image_list(config.path_of("valid"))
    difficult = read_image_list(config.path_of("difficult"))
    assert [p.name for p in valid] == ["a.jpg", "b.jpg"]
    # AlexeyAB's detector map: the i-th difficult line's label file holds the i-th valid image's difficult boxes
    assert [label_path(p) for p in difficult] == [labels / "difficult_a.txt", labels / "difficult_b.txt"]
    assert [p.name for p in read_image_list(config.path_of("train"))] == ["c.jpg"]  # train + val


def test_lists_follow_voc_label_for_a_vocdevkit(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    write_voc(devkit / "VOC2007", {"a": [("dog", 1, 1, 9, 9, 0)], "b": [("person", 1, 1, 9, 9, 0)], "t": []},
              {"train": ["a"], "val": ["b"], "test": ["t"]})
    write_voc(devkit / "VOC2012", {"c": [("dog", 1, 1, 9, 9, 0)], "d": []}, {"train": ["c"], "val": ["d"]})
    result = voc_to_darknet(devkit, tmp_path)
    assert result.names == list(VOC_CLASSES)  # every name found is a VOC class: voc_label.py's list
    assert set(result.lists) == {"2007_train", "2007_val", "2007_test", "2012_train", "2012_val"}
    assert (tmp_path / "2007_test.txt").read_text() == f"{devkit / 'VOC2007' / 'JPEGImages' / 't.jpg'}\n"
    assert [p.name for p in read_image_list(tmp_path / "train.txt")] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert [p.name for p in read_image_list(tmp_path / "valid.txt")] == ["t.jpg"]
    assert result.data_file == tmp_path / "voc.data" and (devkit / "VOC2012" / "labels" / "c.txt").exists()
    for image in read_image_list(tmp_path / "train.txt"):  # both forks find the labels
        assert label_path(image, "alexeyab") == label_path(image, "pjreddie") and label_path(image).exists()


def test_labels_beside_linked_images_go_to_obj(tmp_path):
    voc = write_voc(tmp_path / "mine", {"a": [("bird", 1, 1, 9, 9, 0)]}, {"train": ["a"]})
    result = voc_to_darknet(voc, tmp_path / "out", names=["bird"], labels_beside=True, link_images=True, offset=False)
    image = tmp_path / "out" / "mine" / "obj" / "a.jpg"
    assert image.is_symlink() and (tmp_path / "out" / "mine" / "obj" / "a.txt").read_text() == "0 0.05 0.1 0.08 0.16\n"
    assert label_path(image) == image.with_suffix(".txt") and not result.notes
    assert result.valid_file is None and "valid=" not in result.data_file.read_text()
    assert not (voc / "labels").exists()


def test_names_found_are_sorted_unless_all_are_vocs(tmp_path):
    voc = write_voc(tmp_path / "v", {"a": [("WBC", 1, 1, 9, 9, 0), ("RBC", 1, 1, 9, 9, 0), ("dog", 1, 1, 9, 9, 0)]}, {"train": ["a"]})
    result = voc_to_darknet(voc, tmp_path)
    assert result.names == ["RBC", "WBC", "dog"] and result.names_file.read_text() == "RBC\nWBC\ndog\n"
    assert result.data_file == tmp_path / "v.data"


def test_labels_beside_images_in_jpegimages_are_noted(tmp_path):
    voc = write_voc(tmp_path / "mine", {"a": [("bird", 1, 1, 9, 9, 0)]}, {"train": ["a"]})
    result = voc_to_darknet(voc, tmp_path, names=["bird"], labels_beside=True)
    assert (voc / "JPEGImages" / "a.txt").exists()
    assert "not where AlexeyAB's Darknet looks" in result.notes[0]


def test_size_mismatch_and_missing_size(tmp_path):
    voc = write_voc(tmp_path / "v", {"a": [("bird", 1, 1, 9, 9, 0)], "b": [("bird", 11, 1, 31, 21, 0)]}, {"train": ["a", "b"]})
    xml = voc / "Annotations" / "b.xml"
    xml.write_text(xml.read_text().replace("<width>100</width><height>50</height>", "<width>0</width><height>0</height>"))
    xml = voc / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<width>100</width>", "<width>200</width>"))
    result = voc_to_darknet(voc, tmp_path, names=["bird"], offset=False)
    assert _lines(voc / "labels" / "b.txt") == [pytest.approx([0, 21 / 100, 11 / 50, 20 / 100, 20 / 50])]  # size from the image
    assert _lines(voc / "labels" / "a.txt") == [pytest.approx([0, 5 / 200, 5 / 50, 8 / 200, 8 / 50])]  # the XML's size, noted
    assert any("<size> 200x50, but a.jpg is 100x50" in n for n in result.notes)


def test_read_voc_xml(tmp_path):
    voc = write_voc(tmp_path / "v", {"a": [("cat", 1, 2, 3, 4, 1), ("dog", 5.5, 6, 7, 8, 0)]}, {"train": ["a"]})
    ann = read_voc_xml(voc / "Annotations" / "a.xml")
    assert (ann.width, ann.height) == (100, 50)
    assert [(o.name, o.xmin, o.ymax, o.difficult) for o in ann.objects] == [("cat", 1, 4, True), ("dog", 5.5, 8, False)]


def test_bad_input_is_a_located_data_error(tmp_path):
    with pytest.raises(DataError, match="not a VOC folder"):
        voc_to_darknet(tmp_path, tmp_path)
    voc = write_voc(tmp_path / "v", {"a": [("cat", 1, 2, 3, 4, 0)]}, {"train": ["a"]})
    with pytest.raises(DataError, match=r"test\.txt: image set not found"):
        voc_to_darknet(voc, tmp_path, sets=["train", "test"])
    with pytest.raises(DataError, match="no object is of the classes RBC"):
        voc_to_darknet(voc, tmp_path, names=["RBC"])
    with pytest.raises(DataError, match="image set 'val' was not converted"):
        voc_to_darknet(voc, tmp_path, valid=["val"])
    (voc / "Annotations" / "a.xml").write_text("<annotation><object><name>cat</name><bndbox><xmin>x</xmin>")
    with pytest.raises(DataError, match=r"a\.xml: not a VOC annotation"):
        voc_to_darknet(voc, tmp_path)
    (voc / "Annotations" / "a.xml").write_text("<annotation><object><name>cat</name><bndbox><xmin>x</xmin></bndbox></object></annotation>")
    with pytest.raises(DataError, match=r"a\.xml: object 0: <xmin> is 'x', not a number"):
        read_voc_xml(voc / "Annotations" / "a.xml")


def test_a_read_only_data_set_asks_for_link_images(tmp_path, monkeypatch):
    voc = write_voc(tmp_path / "v", {"a": [("cat", 1, 2, 3, 4, 0)]}, {"train": ["a"]})
    write_text = type(voc).write_text

    def read_only(self, *args, **kwargs):  # the data set's folder refuses writes (as shared/ does)
        if voc in self.parents:
            raise PermissionError(13, "Read-only file system", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(type(voc), "write_text", read_only)
    with pytest.raises(DataError, match=r"labels/a\.txt: cannot write here .*--link-images"):
        voc_to_darknet(voc, tmp_path / "out")
    assert voc_to_darknet(voc, tmp_path / "out", link_images=True).images == 1

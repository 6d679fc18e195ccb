"""`coco_to_darknet` on a small synthetic instances file: the 80-class mapping, crowd regions, empty images."""
from __future__ import annotations

import json

import pytest

from darknetpy import COCO_IDS, COCO_NAMES, DataError, coco_to_darknet
from darknetpy.data import label_path, read_image_list, read_names

from ...conftest import ROOT
from . import write_image

pytestmark = pytest.mark.unit

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 90, "name": "toothbrush"},
              {"id": 4, "name": "motorcycle"}]  # a subset, in COCO's spelling


def _coco(root, categories=CATEGORIES, annotations=None):
    images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 200},
              {"id": 2, "file_name": "b.jpg", "width": 64, "height": 32},
              {"id": 3, "file_name": "c.jpg", "width": 10, "height": 10}]
    for im in images:
        write_image(root / "images" / "val2017" / im["file_name"], im["width"], im["height"])
    annotations = annotations if annotations is not None else [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "iscrowd": 0},
        {"id": 11, "image_id": 2, "category_id": 18, "bbox": [0, 0, 64, 16], "iscrowd": 0},
        {"id": 12, "image_id": 2, "category_id": 90, "bbox": [16, 8, 8, 8], "iscrowd": 0},
        {"id": 13, "image_id": 2, "category_id": 1, "bbox": [0, 0, 32, 32], "iscrowd": 1},
        {"id": 14, "image_id": 1, "category_id": 4, "bbox": [50, 100, 50, 100], "iscrowd": 0},
    ]
    path = root / "annotations" / "instances_val2017.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _rows(path):
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_coco_ids_map_to_darknets_80_classes(tmp_path):
    result = coco_to_darknet(_coco(tmp_path))
    labels = tmp_path / "labels" / "val2017"
    assert result.mapping == "coco80" and result.names == list(COCO_NAMES)
    assert _rows(labels / "a.txt") == [[0, 25 / 100, 40 / 200, 30 / 100, 40 / 200], [3, 75 / 100, 150 / 200, 50 / 100, 100 / 200]]
    assert _rows(labels / "b.txt") == [[16, 0.5, 0.25, 1.0, 0.5], [79, 20 / 64, 12 / 32, 8 / 64, 8 / 32]]  # dog 18 -> 16, toothbrush 90 -> 79
    assert (labels / "c.txt").read_text() == ""  # no boxes: an empty file, so Darknet does not report it missing
    assert (result.images, result.boxes, result.crowd, result.empty) == (3, 4, 1, 1)
    listed = read_image_list(tmp_path / "val2017.txt")
    assert [p.name for p in listed] == ["a.jpg", "b.jpg", "c.jpg"]
    assert all(label_path(p, flavor).parent == labels for p in listed for flavor in ("alexeyab", "pjreddie"))
    assert read_names(tmp_path / "coco.names") == read_names(ROOT / "cfg" / "coco.names")


def test_coco_tables_are_darknets():
    assert len(COCO_IDS) == len(COCO_NAMES) == 80 and COCO_IDS[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
    assert COCO_IDS[-1] == 90 and len(set(COCO_IDS)) == 80
    assert list(COCO_NAMES) == read_names(ROOT / "cfg" / "coco.names")


def test_crowd_regions_on_request_and_output_elsewhere(tmp_path):
    result = coco_to_darknet(_coco(tmp_path / "coco"), out=tmp_path / "lists", include_crowd=True)
    assert (result.boxes, result.crowd) == (5, 0)
    assert _rows(tmp_path / "coco" / "labels" / "val2017" / "b.txt")[-1] == [0, 0.25, 0.5, 0.5, 1.0]
    assert (tmp_path / "lists" / "val2017.txt").exists() and (tmp_path / "lists" / "coco.names").exists()


def test_other_categories_are_numbered_in_id_order(tmp_path):
    categories = [{"id": 9, "name": "virus"}, {"id": 5, "name": "cell"}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [0, 0, 10, 10]},
                   {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 0, 10, 10]}]
    result = coco_to_darknet(_coco(tmp_path, categories, annotations))
    assert result.mapping == "sorted" and result.names == ["cell", "virus"]
    assert [int(r[0]) for r in _rows(tmp_path / "labels" / "val2017" / "a.txt")] == [1, 0]
    assert read_names(tmp_path / "val2017.names") == ["cell", "virus"]


def test_a_category_outside_the_mapping_is_an_error(tmp_path):
    categories = [{"id": 12, "name": "street sign"}]  # one of COCO's 11 ids without boxes
    with pytest.raises(DataError, match="category_id 12, not in the coco80 mapping") as err:
        coco_to_darknet(_coco(tmp_path, categories, [{"id": 7, "image_id": 1, "category_id": 12, "bbox": [0, 0, 1, 1]}]),
                        mapping="coco80")
    assert "instances_val2017.json: annotation 7" in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="instances file not found"):
        coco_to_darknet(tmp_path / "nothing.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(DataError, match="not JSON"):
        coco_to_darknet(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("[]")
    with pytest.raises(DataError, match="not a COCO instances file"):
        coco_to_darknet(tmp_path / "y.json")

"""`dataset_stats` and `draw_size_histogram`: boxes per class, sizes in pixels, the PNG."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from darknetpy import dataset_stats, draw_size_histogram, voc_to_darknet

from . import write_image, write_planted
from .test_voc import BCCD, BCCD_NAMES, needs_bccd

pytestmark = pytest.mark.unit


def test_counts_and_sizes_in_pixels(tmp_path):
    folder = write_planted(tmp_path / "obj", only=["good.jpg", "dup.jpg", "empty.jpg", "missing.jpg", "zero.jpg"])
    stats = dataset_stats(folder, classes=3, names=["a", "b", "c"])
    assert (stats.images, stats.empty, stats.missing, stats.refused) == (5, 2, 1, 1)  # zero.txt: its one box refused
    assert stats.boxes == {0: 3, 1: 1, 2: 1} and stats.images_with == {0: 2, 1: 1, 2: 1}
    assert sorted(stats.sizes[2]) == [pytest.approx((10.0, 20.0))]  # 0.1 x 0.4 of 100 x 50
    table = stats.table().splitlines()
    assert table[0].split()[:3] == ["class", "boxes", "images"]
    assert table[1].split()[:4] == ["0", "a", "3", "2"] and table[1].split()[4:7] == ["20", "x", "10"]
    assert table[-1].startswith("5 images (2 without boxes, 1 without a label file), 5 boxes, 1 label lines refused")


def test_histogram_png(tmp_path):
    folder = tmp_path / "obj"
    for i in range(6):
        write_image(folder / f"{i}.jpg", 200, 100)
        (folder / f"{i}.txt").write_text(f"0 0.5 0.5 {0.05 * (i + 1)} 0.2\n1 0.3 0.3 0.5 0.5\n")
    stats = dataset_stats(folder)
    path = draw_size_histogram(stats, tmp_path / "plots" / "sizes.png", width=640, height=400)
    image = cv2.imread(str(path))
    assert image.shape == (400, 640, 3)
    orange, blue = np.array([14, 127, 255]), np.array([180, 119, 31])  # class 1 and 0 bars (BGR)
    assert (image == orange).all(axis=2).sum() > 100 and (image == blue).all(axis=2).sum() > 100


def test_histogram_of_nothing_is_still_a_picture(tmp_path):
    write_image(tmp_path / "obj" / "a.jpg")
    (tmp_path / "obj" / "a.txt").write_text("")
    path = draw_size_histogram(dataset_stats(tmp_path / "obj"), tmp_path / "empty.png")
    assert cv2.imread(str(path)).shape == (520, 900, 3)


@needs_bccd
def test_bccd_train_list(tmp_path):
    result = voc_to_darknet(BCCD, tmp_path, names=BCCD_NAMES, train=["train"], valid=["test"], offset=False, link_images=True)
    stats = dataset_stats(tmp_path / "train.txt", classes=3, names=BCCD_NAMES)
    assert [stats.boxes[c] for c in range(3)] == [2381, 214, 209] and stats.refused == 1  # 00343's zero-size box
    assert stats.images == 205 and result.names == stats.names
    assert draw_size_histogram(stats, tmp_path / "bccd.png").stat().st_size > 1000

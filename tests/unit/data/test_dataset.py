"""DetectionDataset: samples as pure functions of (seed, k), bad files reported once, multi-scale sizes."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from darknetpy import Darknet
from darknetpy.data import DataConfig, DetectionDataset, collate, label_path, train_size
from darknetpy.image import prepare

from ...conftest import SHARED, needs_shared

pytestmark = pytest.mark.unit

BCCD = SHARED / "datasets" / "bccd" / "BCCD"
needs_bccd = needs_shared("datasets/bccd")
BCCD_NAMES = ["RBC", "WBC", "Platelets"]


def _image(path: Path, seed: int, size=(160, 120)) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture()
def small_set(tmp_path) -> list[Path]:
    """Six images with labels beside them (AlexeyAB's custom-data layout)."""
    images = []
    for i in range(6):
        img = _image(tmp_path / f"img{i}.jpg", i)
        img.with_suffix(".txt").write_text(f"{i % 3} 0.5 0.5 0.3 0.4\n1 0.25 0.3 0.1 0.2\n")
        images.append(img)
    return images


def _dataset(images, **kw) -> DetectionDataset:
    args = {"width": 96, "height": 64, "classes": 3, "jitter": 0.2, "hue": 0.1, "saturation": 1.5, "exposure": 1.5, "seed": 3, "log": lambda s: None}
    args.update(kw)
    return DetectionDataset(images, **args)


# ---- reproducibility -------------------------------------------------------------------------------
@pytest.mark.parametrize("augment", ["alexeyab", "builtin", "pjreddie", None])
def test_sample_k_is_a_function_of_seed_and_k(small_set, augment):
    ds = _dataset(small_set, augment=augment, length=12, mixup=augment != "pjreddie")
    first = [ds[k] for k in range(12)]
    again = _dataset(small_set, augment=augment, length=12, mixup=augment != "pjreddie")
    for k in (7, 3, 11, 0):  # another object, another order
        img, truth = again[k]
        assert img.shape == (3, 64, 96) and img.dtype == torch.float32
        assert 0 <= float(img.min()) and float(img.max()) <= 1
        assert truth.dtype == torch.float32 and truth.shape[1] == 5
        assert torch.equal(img, first[k][0]) and torch.equal(truth, first[k][1])
    other = _dataset(small_set, augment=augment, length=12, seed=4, mixup=augment != "pjreddie")
    if augment is not None:
        assert any(not torch.equal(other[k][0], first[k][0]) for k in range(12))
    assert torch.equal(ds[-1][0], first[-1][0])
    with pytest.raises(IndexError):
        ds[12]


def test_dataloader_workers_give_the_same_batches(small_set):
    ds = _dataset(small_set, augment="alexeyab", length=16, batch=4, mosaic=True,
                  size_for=lambda b: (96, 64) if b % 2 == 0 else (64, 64))
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers, collate_fn=collate)
        batches.append(list(loader))
    assert len(batches[0]) == len(batches[1]) == 4
    for (xa, ya), (xb, yb) in zip(*batches):
        assert torch.equal(xa, xb)
        assert all(torch.equal(a, b) for a, b in zip(ya, yb))
    assert [tuple(x.shape) for x, _ in batches[0]] == [(4, 3, 64, 96), (4, 3, 64, 64)] * 2


def test_size_for_sets_the_size_of_each_iteration(small_set):
    ds = _dataset(small_set, length=9, batch=3, size_for=lambda b: (32 * (b + 1), 32))
    assert [tuple(ds[k][0].shape[1:]) for k in range(9)] == [(32, 32)] * 3 + [(32, 64)] * 3 + [(32, 96)] * 3
    assert ds.size_of(4) == (64, 32)


def test_len_and_images_with_replacement(small_set):
    ds = _dataset(small_set)
    assert len(ds) == 6 and ds.num_images == 6
    ds = _dataset(small_set, length=40, jitter=0.0, hue=0.0, saturation=1.0, exposure=1.0, flip=False, augment="builtin")
    plain = {tuple(_dataset(small_set, augment=None)[i][0][:, 0, :4].flatten().tolist()) for i in range(6)}
    drawn = [tuple(ds[k][0][:, 0, :4].flatten().tolist()) for k in range(40)]
    assert set(drawn) <= plain and len(set(drawn)) > 3 and len(set(drawn)) < 40  # some drawn twice


def test_collate_refuses_mixed_sizes():
    a = (torch.zeros(3, 32, 32), torch.zeros(0, 5))
    b = (torch.zeros(3, 64, 32), torch.zeros(1, 5))
    x, y = collate([a, a])
    assert x.shape == (2, 3, 32, 32) and len(y) == 2
    with pytest.raises(Exception, match="mixes image sizes"):
        collate([a, b])


# ---- bad input -------------------------------------------------------------------------------------
def _planted(folder: Path, flavor: str) -> list[Path]:
    files = {
        "good": "0 0.5 0.5 0.2 0.2\n2 0.25 0.5 0.1 0.4\n",
        "class7": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n",
        "nan": "1 nan 0.5 0.1 0.1\n0 0.3 0.3 0.2 0.2\n",
        "outside": "0 1.5 0.5 0.2 0.2\n1 0.6 0.6 0.2 0.2\n",
        "missing": None,
        "broken": "0 0.5 0.5 0.2 0.2\n",
    }
    images = []
    for i, (name, text) in enumerate(files.items()):
        img = folder / f"{name}.jpg"
        folder.mkdir(parents=True, exist_ok=True)
        if name == "broken":
            img.write_bytes(b"\xff\xd8 not really a JPEG")
        else:
            _image(img, i)
        if text is not None:
            label = label_path(img, flavor)  # where the fork looks (pjreddie: 'images' -> 'labels' anywhere)
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
        images.append(img)
    return images


@pytest.mark.parametrize("augment", ["alexeyab", "builtin", "pjreddie", None])
def test_bad_labels_and_files_reported_once_and_skipped(tmp_path, augment):
    flavor = "pjreddie" if augment == "pjreddie" else "alexeyab"
    images = _planted(tmp_path / "images", flavor)
    lines: list[str] = []
    ds = _dataset(images, augment=augment, flavor=flavor, length=60, log=lines.append)
    label_lines = list(lines)
    assert any("class7.txt:2:" in s and "class 7" in s for s in label_lines)
    assert any("nan.txt:1:" in s and "non-finite" in s for s in label_lines)
    assert any("outside.txt:1:" in s and "outside" in s for s in label_lines)
    assert any("missing.txt" in s and "no boxes" in s for s in label_lines)
    assert len(label_lines) == 4
    # the good lines of the bad files stay
    assert [len(b) for b in ds.labels] == [2, 1, 1, 1, 0, 1]
    seen = [ds[k] for k in range(60)]  # the broken image is drawn (6 images, 60 draws) and replaced
    broken = [s for s in lines if "broken.jpg" in s]
    assert len(broken) == 1 and "not a readable image" in broken[0]
    assert all(x.shape == (3, 64, 96) for x, _ in seen)
    for _, truth in seen:
        assert truth.numel() == 0 or int(truth[:, 0].max()) < 3
    if augment is None:  # image k % 6; the broken one (k = 5) is replaced by the next readable one
        assert torch.equal(ds[5][0], ds[0][0])


def test_no_readable_image_is_an_error(tmp_path):
    img = tmp_path / "a.jpg"
    img.write_bytes(b"nothing")
    ds = DetectionDataset([img], width=32, height=32, classes=1, log=lambda s: None)
    with pytest.raises(Exception, match="could be read"):
        ds[0]


def _bccd_labels(root: Path, ids: list[str]) -> list[Path]:
    """VOC XML → Darknet labels (x = (xmin+xmax)/2/w, no −1 offset), images linked under JPEGImages/."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "labels").mkdir()
    images = []
    for i in ids:
        xml = ET.parse(BCCD / "Annotations" / f"{i}.xml").getroot()
        w, h = float(xml.find("size/width").text), float(xml.find("size/height").text)
        lines = []
        for obj in xml.iter("object"):
            b = obj.find("bndbox")
            x0, y0, x1, y1 = (float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            lines.append(f"{BCCD_NAMES.index(obj.find('name').text)} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                         f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
        image = root / "JPEGImages" / f"{i}.jpg"
        os.symlink(BCCD / "JPEGImages" / f"{i}.jpg", image)
        (root / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
        images.append(image)
    return images


@needs_bccd
def test_bccd_zero_size_box_is_reported_and_skipped(tmp_path):
    images = _bccd_labels(tmp_path, ["BloodImage_00000", "BloodImage_00343", "BloodImage_00001"])
    lines: list[str] = []
    ds = DetectionDataset(images, width=320, height=320, classes=3, jitter=0.15, hue=0.1, saturation=1.5,
                          exposure=1.5, length=6, log=lines.append)
    assert len(lines) == 1
    assert "BloodImage_00343.txt:4:" in lines[0] and "zero size" in lines[0]
    assert len(ds.labels[1]) == 11  # 12 objects, the zero-size one skipped
    for augment in ("alexeyab", "builtin", None):
        ds.mode = augment
        for k in range(6):
            x, t = ds[k]
            assert x.shape == (3, 320, 320) and len(t) > 0
            assert bool((t[:, 3] > 0).all() and (t[:, 4] > 0).all())


# ---- truth rules through the data set -------------------------------------------------------------
def test_max_boxes_truncation(tmp_path):
    img = _image(tmp_path / "many.jpg", 0, size=(200, 200))
    rng = np.random.default_rng(0)
    img.with_suffix(".txt").write_text("".join(
        f"{i % 2} {0.1 + 0.8 * rng.random():.4f} {0.1 + 0.8 * rng.random():.4f} 0.1 0.1\n" for i in range(40)))
    for augment, flavor in (("alexeyab", "alexeyab"), ("builtin", "alexeyab"), ("pjreddie", "pjreddie"), (None, "alexeyab")):
        ds = DetectionDataset([img], width=64, height=64, classes=2, flavor=flavor, augment=augment, max_boxes=7,
                              jitter=0.1, length=5, log=lambda s: None)
        counts = [len(ds[k][1]) for k in range(5)]
        assert max(counts) <= 7 and max(counts) >= 5
    ds = DetectionDataset([img], width=64, height=64, classes=2, flavor="pjreddie", augment=None, log=lambda s: None)
    assert ds.options.max_boxes == 90
    assert DetectionDataset([img], width=64, height=64, classes=2, log=lambda s: None).options.max_boxes == 200


def test_none_mode_is_detects_input(small_set):
    for letter_box in (False, True):
        ds = _dataset(small_set, augment=None, letter_box=letter_box)
        for k in range(3):
            x, t = ds[k]
            rgb = cv2.cvtColor(cv2.imread(str(small_set[k])), cv2.COLOR_BGR2RGB)  # OpenCV's decoder, as the data set
            ref, _ = prepare(rgb, 96, 64, letterbox=letter_box)
            assert torch.allclose(x, ref, atol=1e-6)
            if not letter_box:  # boxes unchanged, in file order
                assert torch.allclose(t, torch.tensor([[k % 3, 0.5, 0.5, 0.3, 0.4], [1, 0.25, 0.3, 0.1, 0.2]]), atol=1e-6)


def test_unknown_augmentation(small_set):
    with pytest.raises(Exception, match="unknown augmentation"):
        _dataset(small_set, augment="albumentations")


# ---- multi-scale -----------------------------------------------------------------------------------
def test_train_size_alexeyab():
    kw = {"net_w": 320, "net_h": 320, "random": 1, "resize_step": 32, "max_batches": 400, "flavor": "alexeyab", "seed": 5}
    sizes = [train_size(i, **kw) for i in range(400)]
    assert all(sizes[i] == sizes[i - i % 10] for i in range(400))  # changes every 10 iterations
    assert sizes[0] == (480, 480)  # the first: the largest, round(1.4·320/32 + 1)·32
    assert all(s == (480, 480) for s in sizes[310:])  # the last 100 iterations
    assert all(s[0] % 32 == 0 and 224 <= s[0] <= 480 and s[0] == s[1] for s in sizes)
    assert len(set(sizes)) >= 5
    assert sizes == [train_size(i, **kw) for i in range(400)]  # a pure function
    assert sizes != [train_size(i, **{**kw, "seed": 6}) for i in range(400)]
    assert train_size(123, **{**kw, "random": 0}) == (320, 320)
    # a non-square network and another coefficient: random=1.2 -> largest round(1.2·w/step + 1)·step
    kw2 = {"net_w": 416, "net_h": 256, "random": 1.2, "resize_step": 64, "max_batches": 1000, "flavor": "alexeyab", "seed": 0}
    assert train_size(0, **kw2) == (round(1.2 * 416 / 64 + 1) * 64, round(1.2 * 256 / 64 + 1) * 64)
    for i in range(0, 900, 10):
        w, h = train_size(i, **kw2)
        if (w, h) != (416, 256):  # r < 1 with a larger result falls back to the initial size
            assert w % 64 == 0 and h % 64 == 0 and 64 <= w <= 576 and 64 <= h <= 384


def test_train_size_pjreddie():
    kw = {"net_w": 416, "net_h": 416, "random": 1, "resize_step": 32, "max_batches": 1000, "flavor": "pjreddie", "seed": 1}
    sizes = [train_size(i, **kw) for i in range(0, 1000, 10)]
    assert all(s[0] == s[1] and s[0] in range(320, 609, 32) for s in sizes)
    assert all(s == (608, 608) for s in sizes[81:])  # iteration + 200 > max_batches
    assert len(set(sizes[:80])) >= 5


# ---- from a model ----------------------------------------------------------------------------------
CFG = """[net]
batch=8
subdivisions=2
width=64
height=48
channels=3
hue=.1
saturation=1.5
exposure=1.4
mosaic=1
letter_box=0
max_batches=50
resize_step=16

[convolutional]
filters=21
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
jitter=.25
random=1
resize=1.5
max=17
"""


def test_from_model_reads_net_and_last_head(tmp_path, small_set):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(CFG)
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in small_set))
    (tmp_path / "obj.data").write_text(f"classes=2\ntrain={tmp_path / 'train.txt'}\nnames=x.names\n")
    model = Darknet(cfg)
    ds = DetectionDataset.from_model(model, tmp_path / "obj.data", seed=7, log=lambda s: None)
    o = ds.options
    assert (ds.width, ds.height, ds.classes, ds.batch, ds.seed) == (64, 48, 2, 8, 7)
    assert (o.jitter, o.resize, o.max_boxes, o.hue, o.saturation, o.exposure) == (0.25, 1.5, 17, 0.1, 1.5, 1.4)
    assert ds.mosaic and not ds.mixup and ds.mode == "alexeyab"
    assert len(ds) == 50 * 8 and ds.num_images == 6
    assert ds.size_of(0) == train_size(0, net_w=64, net_h=48, random=1, resize_step=16, max_batches=50, flavor="alexeyab", seed=7)
    x, _t = ds[0]
    assert tuple(x.shape[1:]) == ds.size_of(0)[::-1]
    ds2 = DetectionDataset.from_model(model, DataConfig.read(tmp_path / "obj.data"), augment="builtin", seed=7, log=lambda s: None)
    assert ds2.mode == "builtin" and ds2.size_for is not None

"""COCO ``instances_*.json`` to Darknet labels, an image list and ``coco.names``.

Darknet's COCO labels (pjreddie's ``scripts/get_coco_dataset.sh`` ships them ready made) number the
80 categories 0..79 in the order of their COCO ids: ``coco_ids[]`` in ``examples/detector.c`` (both
forks) maps a class index back to COCO's id (1..90 with gaps), and ``data/coco.names`` names them
(Darknet's spellings: ``motorbike``, ``aeroplane``, ``sofa``...). A COCO ``bbox`` is ``[left, top,
width, height]`` in pixels, so the label is ``(left + width/2) / W, (top + height/2) / H, width / W,
height / H``. Labels go where both forks look: ``images/<split>/x.jpg`` -> ``labels/<split>/x.txt``
(darknet-reference.md §6.1; otherwise beside the image). Crowd regions (``iscrowd=1``) are left out,
as COCO's own evaluation ignores them; every image gets a label file, empty when it has no boxes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .labels import label_path

__all__ = ["COCO_IDS", "COCO_NAMES", "CocoResult", "coco_to_darknet"]

COCO_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # examples/detector.c: coco_ids[]
COCO_NAMES = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa",
    "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # data/coco.names
_COCO_JSON_NAMES = {"motorcycle": "motorbike", "airplane": "aeroplane", "couch": "sofa", "potted plant": "pottedplant",
                    "dining table": "diningtable", "tv": "tvmonitor"}  # COCO's spelling -> Darknet's


@dataclass
class CocoResult:
    """What :func:`coco_to_darknet` wrote."""

    names: list[str]
    mapping: str
    list_file: Path
    names_file: Path
    images: int = 0
    boxes: int = 0
    crowd: int = 0
    empty: int = 0
    missing_images: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [(f"{self.images} images ({self.empty} without boxes, {self.missing_images} not found), {self.boxes} boxes, "
                  f"{self.crowd} crowd regions left out; classes: {self.mapping} mapping, {len(self.names)} names"),
                 f"list: {self.list_file}", f"names: {self.names_file}"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _is_coco80(categories: list[dict]) -> bool:
    official = dict(zip(COCO_IDS, COCO_NAMES))
    for c in categories:
        name = _COCO_JSON_NAMES.get(c.get("name", ""), c.get("name", ""))
        if official.get(c.get("id")) != name:
            return False
    return True


def _box_line(cls: int, bbox: list, width: float, height: float) -> str:
    left, top, w, h = (float(v) for v in bbox[:4])
    return f"{cls} {(left + w / 2) / width} {(top + h / 2) / height} {w / width} {h / height}\n"


def coco_to_darknet(
    instances: "str | os.PathLike",
    images: "str | os.PathLike | None" = None,
    out: "str | os.PathLike | None" = None,
    *,
    mapping: str = "auto",
    include_crowd: bool = False,
) -> CocoResult:
    """Write a label file per image of a COCO instances file, the image list and the names.

    Args:
        instances: ``annotations/instances_<split>.json``.
        images: the folder of the split's images (default ``<root>/images/<split>`` beside
            ``annotations/``, else ``<root>/<split>``).
        out: where ``<split>.txt`` (absolute image paths) and the names go (default: the root).
        mapping: ``coco80`` (COCO's ids to 0..79 as Darknet, ``coco.names``), ``sorted`` (the file's
            categories in id order, their own names) or ``auto`` (``coco80`` when every category is
            one of COCO's 80 with its id).
        include_crowd: keep ``iscrowd=1`` regions as boxes.

    Raises:
        DataError: an unreadable JSON, a category outside the mapping, or an image without a size.
    """
    src = Path(instances)
    try:
        doc = json.loads(src.read_text())
    except FileNotFoundError:
        raise DataError(f"{src}: instances file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{src}: not JSON ({err})") from None
    if not isinstance(doc, dict) or "images" not in doc or "categories" not in doc:
        raise DataError(f"{src}: not a COCO instances file (no 'images' or 'categories')")
    split = src.stem.split("_", 1)[1] if src.stem.startswith("instances_") else src.stem
    root = src.resolve().parent.parent
    if images is None:
        images = root / "images" / split if (root / "images" / split).is_dir() else root / split
    image_dir, out_dir = Path(os.path.abspath(images)), Path(out) if out is not None else root
    categories = sorted(doc["categories"], key=lambda c: c["id"])
    if mapping == "auto":
        mapping = "coco80" if _is_coco80(categories) else "sorted"
    if mapping == "coco80":
        index, names = {cid: i for i, cid in enumerate(COCO_IDS)}, list(COCO_NAMES)
    elif mapping == "sorted":
        index, names = {c["id"]: i for i, c in enumerate(categories)}, [str(c["name"]) for c in categories]
    else:
        raise DataError(f"unknown COCO class mapping {mapping!r} (auto, coco80 or sorted)")
    result = CocoResult(names, mapping, out_dir / f"{split}.txt", out_dir / ("coco.names" if mapping == "coco80" else f"{split}.names"))
    lines: dict[int, list[str]] = {int(im["id"]): [] for im in doc["images"]}
    sizes = {int(im["id"]): (im.get("width"), im.get("height")) for im in doc["images"]}
    for ann in doc.get("annotations", []):
        if ann.get("iscrowd") and not include_crowd:
            result.crowd += 1
            continue
        image_id, cid = int(ann["image_id"]), ann["category_id"]
        if cid not in index:
            raise DataError(f"{src}: annotation {ann.get('id')} has category_id {cid}, not in the {mapping} mapping")
        if image_id not in lines:
            raise DataError(f"{src}: annotation {ann.get('id')} refers to image {image_id}, not in 'images'")
        width, height = sizes[image_id]
        if not width or not height:
            raise DataError(f"{src}: image {image_id} has no width/height")
        lines[image_id].append(_box_line(index[cid], ann["bbox"], width, height))
        result.boxes += 1
    listed = []
    for im in sorted(doc["images"], key=lambda im: im["file_name"]):
        image = image_dir / im["file_name"]
        result.missing_images += not image.exists()
        target = label_path(image)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(lines[int(im["id"])]))
        except PermissionError:
            raise DataError(f"{target}: cannot write the label here") from None
        result.empty += not lines[int(im["id"])]
        listed.append(f"{image}\n")
    result.images = len(listed)
    if result.missing_images:
        result.notes.append(f"{result.missing_images} listed images are not in {image_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    result.list_file.write_text("".join(listed))
    result.names_file.write_text("".join(f"{n}\n" for n in names))
    return result

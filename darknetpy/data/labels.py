"""Darknet label files: where each fork looks for them, and reading them with their problems named.

A label file holds one ``class x_center y_center width height`` line per box, relative to the image
(darknet-reference.md §6.1). pjreddie finds it by replacing the first ``images``, ``JPEGImages`` and
``raw`` with ``labels`` and the image extension with ``.txt`` (``fill_truth_detection``);
AlexeyAB replaces only ``/JPEGImages/`` and COCO's ``/images/{train,val}{2014,2017}/`` with their
``labels`` folders and the extension (``replace_image_to_label``), so custom data keeps its labels
beside the images.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["LabelProblem", "label_path", "read_labels", "read_image_list", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM", ".tiff", ".TIFF")
_PJ_SUFFIXES = (".jpg", ".png", ".JPG", ".JPEG")
_AB_FOLDERS = (
    ("/images/train2017/", "/labels/train2017/"),
    ("/images/val2017/", "/labels/val2017/"),
    ("/JPEGImages/", "/labels/"),
    ("\\images\\train2017\\", "\\labels\\train2017\\"),
    ("\\images\\val2017\\", "\\labels\\val2017\\"),
    ("\\images\\train2014\\", "\\labels\\train2014\\"),
    ("\\images\\val2014\\", "\\labels\\val2014\\"),
    ("/images/train2014/", "/labels/train2014/"),
    ("/images/val2014/", "/labels/val2014/"),
    ("\\JPEGImages\\", "\\labels\\"),
)


def _replace_first(text: str, old: str, new: str) -> str:
    """``find_replace``: the first occurrence only."""
    return text.replace(old, new, 1)


def label_path(image: "str | os.PathLike", flavor: str = "alexeyab") -> Path:
    """The label file the fork reads for ``image``."""
    s = os.fspath(image)
    if flavor == "pjreddie":
        for old in ("images", "JPEGImages", "raw"):
            s = _replace_first(s, old, "labels")
        for ext in _PJ_SUFFIXES:
            s = _replace_first(s, ext, ".txt")
        return Path(s)
    for old, new in _AB_FOLDERS:
        s = _replace_first(s, old, new)
    for ext in IMAGE_SUFFIXES:  # find_replace_extension: only at the end
        if s.endswith(ext):
            s = s[: -len(ext)] + ".txt"
    return Path(s)


@dataclass(frozen=True)
class LabelProblem:
    """A bad line or file, named as ``path:line: message``."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


def read_labels(path: "str | os.PathLike", classes: int | None = None) -> tuple[np.ndarray, list[LabelProblem]]:
    """The boxes ``(N, 5)`` (``class x y w h``) of a label file that pass the checks, and the problems.

    A line is refused (and named) when it does not parse, its class is negative or ``>= classes``,
    a value is not finite, the centre is outside ``(0, 1]``, or the box has no area; a missing file
    is one problem and no boxes. Nothing is raised: the caller decides (training skips, ``check`` reports).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return np.zeros((0, 5), np.float32), [LabelProblem(os.fspath(p), None, "label file not found")]
    rows, problems = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) < 5:
                raise ValueError
            cls = int(parts[0])
            x, y, w, h = (float(v) for v in parts[1:5])
        except ValueError:
            problems.append(LabelProblem(os.fspath(p), number, f"not 'class x y w h': {line!r}"))
            continue
        reason = None
        if cls < 0 or (classes is not None and cls >= classes):
            reason = f"class {cls} outside 0..{classes - 1 if classes else '?'}"
        elif not all(math.isfinite(v) for v in (x, y, w, h)):
            reason = f"non-finite value in {line!r}"
        elif not (0 < x <= 1 and 0 < y <= 1):
            reason = f"box centre ({x}, {y}) outside the image"
        elif w <= 0 or h <= 0:
            reason = f"box of zero size (w = {w}, h = {h})"
        if reason:
            problems.append(LabelProblem(os.fspath(p), number, reason))
            continue
        rows.append((cls, x, y, w, h))
    boxes = np.asarray(rows, np.float32).reshape(-1, 5)
    return boxes, problems


def read_image_list(path: "str | os.PathLike") -> list[Path]:
    """The image paths of a list file (``train.txt``), relative ones resolved from the working
    directory as Darknet does, else from the list's folder."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise DataError(f"{p}: image list not found") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        q = Path(line)
        out.append(q if q.is_absolute() or q.exists() else p.parent / q)
    return out

"""Data set tools: small VOC folders and images made on the fly."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, width: int = 100, height: int = 50) -> Path:
    """A grey image of ``width`` x ``height`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))
    return path


def write_voc(root: Path, objects: dict[str, list[tuple]], sets: dict[str, list[str]], size: tuple[int, int] = (100, 50)) -> Path:
    """A VOC folder: ``objects[id]`` = ``[(name, xmin, ymin, xmax, ymax, difficult), ...]``."""
    for image_id, objs in objects.items():
        write_image(root / "JPEGImages" / f"{image_id}.jpg", *size)
        body = "".join(
            f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>" for n, x0, y0, x1, y1, d in objs)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"<depth>3</depth></size>{body}</annotation>")
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for name, ids in sets.items():
        (main / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


# image name -> (label text or None for no file, the kind expected at which line); images are 100 x 50
PLANTED = {
    "good.jpg": ("0 0.5 0.5 0.2 0.2\n2 0.25 0.5 0.1 0.4\n", None),
    "bad_class.jpg": ("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n", ("class out of range", 2)),
    "zero.jpg": ("1 0.5 0.5 0 0\n", ("zero-size box", 1)),
    "centre.jpg": ("0 1.5 0.5 0.2 0.2\n", ("centre outside image", 1)),
    "big.jpg": ("0 0.5 0.5 1.2 0.5\n", ("box larger than image", 1)),
    "edge.jpg": ("0 0.05 0.5 0.3 0.2\n", ("box past edge", 1)),  # 10 px past the left edge
    "near_edge.jpg": ("0 0.145 0.5 0.3 0.2\n", None),  # 0.5 px past: rounding, not reported
    "dup.jpg": ("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n0 0.5 0.5 0.2 0.2\n", ("duplicate box", 3)),
    "empty.jpg": ("", ("empty label", None)),
    "missing.jpg": (None, ("missing label", None)),
    "badline.jpg": ("0 0.5 0.5\n", ("bad line", 1)),
    "nan.jpg": ("0 nan 0.5 0.1 0.1\n", ("non-finite value", 1)),
    "tiny.jpg": ("0 0.5 0.5 0.005 0.2\n", ("box under 1 px", 1)),
    "polygon.jpg": ("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.2 0.1 0.2 0.2\n", ("extra values", 2)),  # a segment, not a box
    "broken.jpg": ("0 0.5 0.5 0.2 0.2\n", ("unreadable image", None)),
}


def write_planted(folder: Path, only: "list[str] | None" = None) -> Path:
    """Images with labels beside them (AlexeyAB's custom-data layout), one planted problem each."""
    for name, (text, _) in PLANTED.items():
        if only is not None and name not in only:
            continue
        image = folder / name
        if name == "broken.jpg":
            folder.mkdir(parents=True, exist_ok=True)
            image.write_bytes(b"\xff\xd8 not really a JPEG")
        else:
            write_image(image)
        if text is not None:
            image.with_suffix(".txt").write_text(text)
    return folder

"""Known Darknet weights files: where they come from, their exact sizes, and the cfg they fit.

Sizes are facts about the published files (and equal what this library computes for their cfg
and cutoff, which the tests check). A weights file carries no shapes, so a file of exactly one of
these sizes can be recognised, e.g. to load yolov3.weights (80 classes) into a 3-class cfg.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KnownWeights", "KNOWN_WEIGHTS", "identify", "package_root", "default_model"]


@dataclass(frozen=True)
class KnownWeights:
    """A published weights file."""

    name: str
    size: int
    cfg: str  # file name in the repository's cfg/ folder
    cutoff: int | None  # layers held (a partial file), None for the whole cfg
    url: str
    flavor: str


KNOWN_WEIGHTS: tuple[KnownWeights, ...] = (
    KnownWeights("yolov3.weights", 248_007_048, "yolov3.cfg", None, "https://pjreddie.com/media/files/yolov3.weights", "pjreddie"),
    KnownWeights("darknet53.conv.74", 162_482_580, "yolov3.cfg", 74, "https://pjreddie.com/media/files/darknet53.conv.74", "pjreddie"),
    KnownWeights("yolov3-tiny.weights", 35_434_956, "yolov3-tiny.cfg", None, "https://pjreddie.com/media/files/yolov3-tiny.weights", "pjreddie"),
    KnownWeights("yolov4.weights", 257_717_640, "yolov4.cfg", None, "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v3_optimal/yolov4.weights", "alexeyab"),
    KnownWeights("yolov4.conv.137", 170_038_676, "yolov4.cfg", 137, "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v3_optimal/yolov4.conv.137", "alexeyab"),
    KnownWeights("yolov4-tiny.weights", 24_251_276, "yolov4-tiny.cfg", None, "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.weights", "alexeyab"),
    KnownWeights("yolov4-tiny.conv.29", 19_789_716, "yolov4-tiny.cfg", 29, "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.conv.29", "alexeyab"),
    KnownWeights("yolo-fastest-1.1.weights", 1_384_268, "yolo-fastest-1.1.cfg", None, "", "alexeyab"),
    KnownWeights("yolo-fastest-1.1.conv.109", 840_692, "yolo-fastest-1.1.cfg", 109, "", "alexeyab"),
)


def identify(path: "str | os.PathLike") -> KnownWeights | None:
    """The known file of exactly this size, if any."""
    size = Path(path).stat().st_size
    for known in KNOWN_WEIGHTS:
        if known.size == size:
            return known
    return None


def package_root() -> Path:
    """The repository root (with cfg/ and weights/) of this checkout."""
    return Path(__file__).resolve().parents[1]


def default_model() -> tuple[Path, Path, Path]:
    """(cfg, weights, names) of the bundled Yolo-Fastest-1.1 COCO model."""
    root = package_root()
    return root / "cfg" / "yolo-fastest-1.1.cfg", root / "weights" / "yolo-fastest-1.1.weights", root / "cfg" / "coco.names"

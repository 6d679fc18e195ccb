"""Known Darknet weights files: where they come from, their exact sizes, and the cfg they fit.

Sizes are facts about the published files (and equal what this library computes for their cfg
and cutoff, which the tests check). A weights file carries no shapes, so a file of exactly one of
these sizes can be recognised, e.g. to load yolov3.weights (80 classes) into a 3-class cfg.
"""
from __future__ import annotations

import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import DarknetError

__all__ = [
    "KnownWeights", "KNOWN_WEIGHTS", "identify", "asset", "bundled_files", "find_file", "default_model", "sample_image",
]

logger = logging.getLogger(__name__)

# The bundled files live inside the package (darknetpy/assets/{cfg,weights,data}); the repository's
# top-level cfg/, weights/ and data/ are links to these folders.
ASSETS = "assets"
_FOLDERS = ("cfg", "weights", "data")
DEFAULT_MODEL = ("cfg/yolo-fastest-1.1.cfg", "weights/yolo-fastest-1.1.weights", "cfg/coco.names")


@dataclass(frozen=True)
class KnownWeights:
    """A published weights file."""

    name: str
    size: int
    cfg: str  # name of the bundled cfg (cfg/ folder)
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


def asset(relative: "str | os.PathLike") -> Path:
    """A file bundled with the package (``cfg/yolov3.cfg``, ``weights/yolo-fastest-1.1.weights``,
    ``data/dog.jpg``), found with :mod:`importlib.resources` wherever darknetpy is installed."""
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        raise DarknetError(f"{relative}: not a bundled file name (e.g. cfg/yolov3.cfg)")
    found = _bundled(parts)
    if found is None:
        raise DarknetError(f"{relative}: no such bundled file (bundled: {', '.join(bundled_files())})")
    return found


def _bundled(parts: "tuple[str, ...]") -> Path | None:
    """The bundled file of these relative path parts on disk, or None."""
    resource = importlib.resources.files(__package__).joinpath(ASSETS)
    for part in parts:
        resource = resource.joinpath(part)
    return _on_disk(resource, Path(*parts)) if resource.is_file() else None


def bundled_files() -> list[str]:
    """Every bundled file, as the relative names :func:`asset` takes."""
    root = importlib.resources.files(__package__).joinpath(ASSETS)
    names = []
    for folder in sorted((f for f in root.iterdir() if f.is_dir()), key=lambda f: f.name):
        names.extend(f"{folder.name}/{f.name}" for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.is_file())
    return names


def _on_disk(resource, relative: "str | os.PathLike") -> Path:
    """A real path for the resource: itself on a normal install, a cached copy from a zipped one."""
    if isinstance(resource, Path):
        return resource
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "darknetpy" / __version__ / Path(relative)
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(resource.read_bytes())
        tmp.replace(cache)
    return cache


def find_file(path: "str | os.PathLike") -> Path:
    """``path`` itself when it exists, else the bundled file of that name: ``cfg/yolov4-tiny.cfg``,
    ``data/dog.jpg`` or ``coco.names`` run from any folder, as in a Darknet checkout."""
    p = Path(path)
    if p.exists() or p.is_absolute() or ".." in p.parts:
        return p
    if len(p.parts) == 2:
        candidates = [p.parts] if p.parts[0] in _FOLDERS else []
    else:
        candidates = [(folder, p.name) for folder in _FOLDERS] if len(p.parts) == 1 else []
    for parts in candidates:
        found = _bundled(parts)
        if found is not None:
            logger.info("%s: not here; using the bundled %s", p, found)
            return found
    return p


def default_model() -> tuple[Path, Path, Path]:
    """(cfg, weights, names) of the bundled Yolo-Fastest-1.1 COCO model."""
    cfg, weights, names = (asset(name) for name in DEFAULT_MODEL)
    return cfg, weights, names


def sample_image() -> Path:
    """Darknet's sample ``data/dog.jpg``, bundled."""
    return asset("data/dog.jpg")


def download(name: str, folder: "str | os.PathLike" = ".") -> Path:
    """Download a published weights file into ``folder``, checking its exact size.

    It is written under a temporary name and renamed once complete and of the right size, so an
    interrupted download leaves nothing a later load could mistake for the file.
    """
    import urllib.request

    known = {k.name: k for k in KNOWN_WEIGHTS if k.url}
    if name not in known:
        raise DarknetError(f"{name}: not a known weights file; known: {', '.join(known)}")
    k = known[name]
    target = Path(folder) / k.name
    if target.is_file() and target.stat().st_size == k.size:
        logger.info("%s: present (%d bytes)", target, k.size)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        urllib.request.urlretrieve(k.url, part)
    except OSError as err:
        part.unlink(missing_ok=True)
        raise DarknetError(f"{k.url}: download failed ({err})") from None
    size = part.stat().st_size
    if size != k.size:
        part.unlink()
        raise DarknetError(f"{k.url}: got {size:,} bytes, {k.name} has {k.size:,}; nothing kept")
    part.replace(target)
    return target

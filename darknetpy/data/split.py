"""A seeded random train/valid split of a folder of images: ``train.txt`` and ``valid.txt``.

The order is a hash of the seed and each image's path relative to the folder (SHA-256), so a
split depends only on the seed and the file names: the same on every machine and Python or NumPy
version, and adding an image moves at most one other across the cut. The first ``n * valid_fraction``
images of that order, rounded half up (and at least one on each side from two images on), are the
valid set. Lists hold absolute paths, sorted, one per line, as Darknet's ``get_paths`` reads them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .labels import IMAGE_SUFFIXES

__all__ = ["SplitResult", "find_images", "split_images"]


@dataclass
class SplitResult:
    """The two lists and where they were written."""

    train: list[Path]
    valid: list[Path]
    train_file: Path
    valid_file: Path
    data_file: Path | None = None

    def __str__(self) -> str:
        lines = [f"{len(self.train)} train, {len(self.valid)} valid images",
                 f"train: {self.train_file}", f"valid: {self.valid_file}"]
        return "\n".join(lines + ([f"data: {self.data_file}"] if self.data_file else []))


def find_images(folder: "str | os.PathLike", recursive: bool = False) -> list[Path]:
    """The image files of a folder (Darknet's image extensions), sorted, as absolute paths."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = root.rglob("*") if recursive else root.iterdir()
    return sorted(Path(os.path.abspath(p)) for p in files if p.suffix in IMAGE_SUFFIXES and p.is_file())


def _rank(seed: int, relative: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{relative}".encode()).digest()


def split_images(
    folder: "str | os.PathLike",
    out: "str | os.PathLike | None" = None,
    *,
    valid_fraction: float = 0.2,
    seed: int = 0,
    recursive: bool = False,
    names: "str | os.PathLike | None" = None,
) -> SplitResult:
    """Split the images of ``folder`` into ``train.txt`` and ``valid.txt`` (8:2 by default).

    Args:
        folder: the images (their labels beside them, or where the Darknet fork looks).
        out: where the lists go (default: ``folder``'s parent).
        valid_fraction: the share of valid images, in [0, 1).
        seed: the split's seed; the same seed gives the same split.
        recursive: include images in subfolders.
        names: a ``.names`` file: also write ``<its stem>.data`` beside the lists (classes, train,
            valid, names, backup), as AlexeyAB's ``obj.names`` and ``obj.data``.

    Raises:
        DataError: no images, or a fraction outside [0, 1).
    """
    if not 0 <= valid_fraction < 1:
        raise DataError(f"valid fraction {valid_fraction} is not in [0, 1)")
    root = Path(folder)
    images = find_images(root, recursive)
    if not images:
        raise DataError(f"{root}: no images ({', '.join(sorted({s.lower() for s in IMAGE_SUFFIXES}))})")
    base = Path(os.path.abspath(root))
    order = sorted(images, key=lambda p: _rank(seed, p.relative_to(base).as_posix()))
    n_valid = int(len(images) * valid_fraction + 0.5)
    if len(images) >= 2 and valid_fraction > 0:
        n_valid = min(max(n_valid, 1), len(images) - 1)
    valid, train = sorted(order[:n_valid]), sorted(order[n_valid:])
    out_dir = Path(out) if out is not None else base.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    result = SplitResult(train, valid, out_dir / "train.txt", out_dir / "valid.txt")
    result.train_file.write_text("".join(f"{p}\n" for p in train))
    result.valid_file.write_text("".join(f"{p}\n" for p in valid))
    if names is not None:
        from .datafile import read_names

        classes = len(read_names(names))
        backup = Path(os.path.abspath(out_dir / "backup"))
        backup.mkdir(exist_ok=True)
        result.data_file = out_dir / f"{Path(names).stem}.data"
        result.data_file.write_text(
            f"classes={classes}\ntrain={os.path.abspath(result.train_file)}\nvalid={os.path.abspath(result.valid_file)}\n"
            f"names={os.path.abspath(names)}\nbackup={backup}/\n")
    return result

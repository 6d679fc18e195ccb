"""Every label file against its image: what Darknet would refuse, clamp or silently drop, named by file and line.

Darknet: AlexeyAB's ``fill_truth_detection`` (``src/data.c``) prints ``Wrong annotation`` and appends
to ``bad_label.list`` for a class id ``>= classes``, a centre outside ``(0, 1]`` and a width or height
above 1 (clamped to 1); it drops boxes smaller than one network pixel without a word, and a missing
label file gives no boxes and a line in ``bad.list`` (pjreddie: a fatal ``Couldn't open file``).
``calc_anchors`` prints ``Wrong label`` for a box of zero width or height (darknet-reference.md §6.1).
Errors are what Darknet refuses or reports; warnings are what it accepts but is likely a mistake.
Image sizes come from the file header (Pillow), so checking a large set decodes no pixels.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .datafile import DataConfig
from .labels import IMAGE_SUFFIXES, label_path, read_image_list, read_labels

__all__ = ["KINDS", "EDGE_TOLERANCE_PX", "Finding", "CheckReport", "dataset_images", "image_size", "check_dataset"]

EDGE_TOLERANCE_PX = 1.0  # a box edge up to one pixel outside: VOC's 1-based pixels and rounding, not a mistake

KINDS: dict[str, tuple[str, str]] = {  # kind -> (severity, what it means)
    "missing image": ("error", "a listed image does not exist"),
    "unreadable image": ("error", "neither Pillow nor OpenCV reads the image"),
    "missing label": ("error", "no label file where the fork looks (AlexeyAB: bad.list, pjreddie: fatal)"),
    "bad line": ("error", "a line that is not 'class x y w h'"),
    "extra values": ("error", "more than 5 values on a line: Darknet's fscanf reads them as the next box"),
    "class out of range": ("error", "class id < 0 or >= classes (AlexeyAB: Wrong annotation, box dropped)"),
    "non-finite value": ("error", "nan or inf in a box"),
    "centre outside image": ("error", "x or y outside (0, 1] (AlexeyAB: Wrong annotation, box dropped)"),
    "zero-size box": ("error", "width or height <= 0 (calc_anchors: Wrong label; training drops it)"),
    "box larger than image": ("error", "w or h > 1 (AlexeyAB: Wrong annotation, clamped to 1)"),
    "box past edge": ("warning", f"an edge more than {EDGE_TOLERANCE_PX:g} px outside the image (Darknet clamps it)"),
    "box under 1 px": ("warning", "narrower or lower than one image pixel"),
    "duplicate box": ("warning", "the same box twice in one label file"),
    "empty label": ("warning", "a label file without boxes (a background image, if meant)"),
    "duplicate image": ("warning", "an image listed twice in one list"),
    "in train and valid": ("warning", "an image in both the train and the valid list"),
}
_PROBLEM_KINDS = (  # darknetpy.data.labels.read_labels messages -> kinds
    ("label file not found", "missing label"),
    ("not 'class x y w h'", "bad line"),
    ("class ", "class out of range"),
    ("non-finite", "non-finite value"),
    ("box centre", "centre outside image"),
    ("box of zero size", "zero-size box"),
)


@dataclass(frozen=True)
class Finding:
    """One problem: its kind (a key of :data:`KINDS`), where, and what."""

    kind: str
    path: str
    line: int | None
    message: str

    @property
    def severity(self) -> str:
        return KINDS[self.kind][0]

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class CheckReport:
    """The findings of :func:`check_dataset` and the counts behind its summary table."""

    sources: list[str]
    lists: dict[str, int] = field(default_factory=dict)
    images: int = 0
    label_files: int = 0
    boxes: Counter = field(default_factory=Counter)
    names: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def table(self) -> str:
        """The summary: one row per kind of problem found, then the totals."""
        rows = [("problem", "severity", "count", "files")]
        for kind, (severity, _) in KINDS.items():
            found = [f for f in self.findings if f.kind == kind]
            if found:
                rows.append((kind, severity, str(len(found)), str(len({f.path for f in found}))))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}" for r in rows] if len(rows) > 1 else []
        per_list = ", ".join(f"{k} {v}" for k, v in self.lists.items())
        per_class = ", ".join(f"{self.names[c] if c < len(self.names) else c} {n}" for c, n in sorted(self.boxes.items()))
        lines.append(f"{self.images} images ({per_list}), {self.label_files} label files, {sum(self.boxes.values())} boxes"
                     + (f" ({per_class})" if per_class else ""))
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)

    def format(self, limit: int | None = 20) -> str:
        """Each finding (at most ``limit`` per kind; ``None``: all), then :meth:`table`."""
        shown, out = Counter(), []
        for f in self.findings:
            shown[f.kind] += 1
            if limit is None or shown[f.kind] <= limit:
                out.append(str(f))
        out += [f"... {n - limit} more '{k}'" for k, n in shown.items() if limit is not None and n > limit]
        return "\n".join(out + [self.table()])

    def __str__(self) -> str:
        return self.format()


def dataset_images(sources: "list[str | os.PathLike]") -> tuple[dict[str, list[Path]], DataConfig | None]:
    """The images named by each source: a ``.data`` file (its ``train`` and ``valid`` lists), an
    image list, a folder (its images, sorted) or an image. Returns ``{list name: paths}`` and the
    last ``.data`` file read (for ``classes`` and ``names``)."""
    groups: dict[str, list[Path]] = {}
    config = None
    for source in sources:
        p = Path(source)
        if p.suffix == ".data":
            config = DataConfig.read(p)
            for key in ("train", "valid"):
                value = config.get(key)
                if value is not None and (key == "train" or value != config.get("train")):
                    groups[key if key not in groups else f"{p}:{key}"] = read_image_list(config.resolve(value))
        elif p.is_dir():
            from .split import find_images

            groups[os.fspath(p)] = find_images(p)
        elif p.suffix in IMAGE_SUFFIXES:
            groups.setdefault("images", []).append(p)
        elif p.exists():
            groups[os.fspath(p)] = read_image_list(p)
        else:
            raise DataError(f"{p}: not found (give a .data file, an image list, a folder or an image)")
    return groups, config


def image_size(path: "str | os.PathLike", decode: bool = False) -> tuple[int, int] | None:
    """``(width, height)`` from the header (Pillow), or ``None`` when the image cannot be read.

    ``decode``: every pixel is decoded too, so a truncated or corrupt file is ``None``. A format
    Pillow does not know is read with OpenCV.
    """
    from PIL import Image

    try:
        im = Image.open(path)
    except Exception:  # noqa: BLE001 - not a format Pillow knows (or not an image at all)
        import cv2

        img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
        return None if img is None else (img.shape[1], img.shape[0])
    with im:
        if decode:
            try:
                im.load()
            except Exception:  # noqa: BLE001 - Pillow raises many kinds for a damaged file
                return None
        return im.size


def _kind_of(message: str) -> str:
    for prefix, kind in _PROBLEM_KINDS:
        if message.startswith(prefix):
            return kind
    return "bad line"


def _check_boxes(label: Path, text: str, boxes, bad_lines: set[int], size: tuple[int, int]) -> list[Finding]:
    """Checks of the boxes read_labels accepted: extra values, size above the image, edges, sub-pixel, duplicates."""
    lines = text.splitlines()
    numbers = [n for n, raw in enumerate(lines, start=1) if raw.strip() and n not in bad_lines]
    width, height = size
    found, seen = [], {}
    where = os.fspath(label)
    for number, (cls, x, y, w, h) in zip(numbers, boxes.tolist()):
        if len(lines[number - 1].split()) > 5:
            found.append(Finding("extra values", where, number, f"{len(lines[number - 1].split())} values: {lines[number - 1].strip()!r}"))
        if w > 1 or h > 1:
            found.append(Finding("box larger than image", where, number, f"w = {w:g}, h = {h:g} (above 1)"))
        over = max(-(x - w / 2) * width, (x + w / 2 - 1) * width, -(y - h / 2) * height, (y + h / 2 - 1) * height)
        if over > EDGE_TOLERANCE_PX and not (w > 1 or h > 1):
            found.append(Finding("box past edge", where, number, f"the box reaches {over:.1f} px outside the {width}x{height} image"))
        if w * width < 1 or h * height < 1:
            found.append(Finding("box under 1 px", where, number, f"{w * width:.2f} x {h * height:.2f} px in a {width}x{height} image"))
        key = (int(cls), round(x, 6), round(y, 6), round(w, 6), round(h, 6))
        if key in seen:
            found.append(Finding("duplicate box", where, number, f"the same box as line {seen[key]}"))
        seen.setdefault(key, number)
    return found


def check_dataset(
    sources: "str | os.PathLike | list[str | os.PathLike]",
    *,
    classes: int | None = None,
    flavor: str = "alexeyab",
    decode: bool = False,
) -> CheckReport:
    """Check every image of ``sources`` and the label file the ``flavor`` of Darknet reads for it.

    Args:
        sources: ``.data`` files, image lists, folders or images (see :func:`dataset_images`).
        classes: the number of classes (default: the ``.data`` file's ``classes``; without either,
            only negative class ids are flagged).
        flavor: whose label path rule to follow: ``alexeyab`` or ``pjreddie`` (darknet-reference.md §6.1).
        decode: decode every image fully (finds truncated files; slower) instead of reading its header.

    Returns:
        A :class:`CheckReport`; ``report.errors`` is empty when Darknet would use every box as written.
    """
    if flavor not in ("alexeyab", "pjreddie"):
        raise DataError(f"unknown flavor {flavor!r} (alexeyab or pjreddie)")
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    groups, config = dataset_images(items)
    report = CheckReport([os.fspath(s) for s in items], {k: len(v) for k, v in groups.items()})
    if config is not None:
        classes = classes if classes is not None else (config.classes or None)
        try:
            report.names = config.names()
        except DataError:
            pass
    in_list: dict[Path, str] = {}
    for name, paths in groups.items():
        counts = Counter(Path(os.path.abspath(p)) for p in paths)
        for image, n in counts.items():
            if n > 1:
                report.findings.append(Finding("duplicate image", os.fspath(image), None, f"listed {n} times in {name}"))
            if image in in_list and {in_list[image], name} == {"train", "valid"}:
                report.findings.append(Finding("in train and valid", os.fspath(image), None, "listed in both train and valid"))
            in_list.setdefault(image, name)
    for image in in_list:
        report.images += 1
        report.findings += _check_image(image, classes, flavor, decode, report)
    return report


def _check_image(image: Path, classes: int | None, flavor: str, decode: bool, report: CheckReport) -> list[Finding]:
    if not image.exists():
        return [Finding("missing image", os.fspath(image), None, "image not found")]
    size = image_size(image, decode)
    found = [] if size else [Finding("unreadable image", os.fspath(image), None, "not a readable image")]
    label = label_path(image, flavor)
    boxes, problems = read_labels(label, classes)
    for problem in problems:
        kind = _kind_of(problem.message)
        found.append(Finding(kind, problem.path, problem.line, f"{problem.message} (image {image.name})" if kind == "missing label" else problem.message))
    if any(_kind_of(p.message) == "missing label" for p in problems):
        return found
    report.label_files += 1
    text = label.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        found.append(Finding("empty label", os.fspath(label), None, "no boxes"))
    report.boxes.update(int(c) for c in boxes[:, 0])
    if size:
        found += _check_boxes(label, text, boxes, {p.line for p in problems if p.line}, size)
    return found

"""Pascal VOC annotations (XML + ImageSets) to Darknet labels, image lists, ``.names`` and ``.data``.

Darknet: pjreddie's ``scripts/voc_label.py`` (one ``labels/<id>.txt`` per image beside
``JPEGImages/``, difficult boxes and unknown classes left out, a ``<year>_<set>.txt`` list of
absolute image paths per ImageSet, ``train.txt`` = the train and val lists) and AlexeyAB's
``scripts/voc_label_difficult.py`` (the difficult boxes in ``labels/difficult_<id>.txt`` and a
``difficult_<year>_<set>.txt`` list of ``JPEGImages/difficult_<id>.jpg`` paths, parallel to the
valid list: ``detector map`` reads it as ``difficult=`` in the ``.data`` file, maps each path to its
label file and drops a detection that only matches a difficult box; darknet-reference.md §7.3).

Box centre convention. ``voc_label.py``'s ``convert()`` gives ``x = ((xmin + xmax) / 2 - 1) / width``
(VOC's pixel coordinates are 1-based) and ``w = (xmax - xmin) / width``: the default here
(``offset=True``). ``offset=False`` is the plain ``x = (xmin + xmax) / 2 / width`` many converters use,
among them the one that made the labels of the BCCD reference run (its ``BloodImage_00343.txt``
box 3 has ``x = 0.282813 = 181 / 640`` for ``xmin = xmax = 181``). Sizes are the same in both.
Boxes are written as the XML gives them, without clamping: a bad box stays visible to
:func:`darknetpy.data.check.check_dataset` (and Darknet clamps or drops it when training).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .labels import IMAGE_SUFFIXES, label_path

__all__ = ["VOC_CLASSES", "VocObject", "VocAnnotation", "VocResult", "read_voc_xml", "voc_box", "voc_to_darknet"]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # voc_label.py's classes (data/voc.names)
_MAIN_SETS = ("train", "val", "trainval", "test")


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: its class name, ``bndbox`` in VOC pixels and the ``difficult`` flag."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False


@dataclass(frozen=True)
class VocAnnotation:
    """One annotation file: the image size of ``<size>`` and its objects."""

    path: Path
    width: int
    height: int
    objects: tuple[VocObject, ...]


@dataclass
class VocResult:
    """What :func:`voc_to_darknet` wrote, with the counts it saw."""

    names: list[str]
    data_file: Path
    names_file: Path
    lists: dict[str, Path]
    train_file: Path
    valid_file: Path | None
    difficult_file: Path | None
    images: int = 0
    boxes: list[int] = field(default_factory=list)
    difficult: int = 0
    unknown: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {c}" for n, c in zip(self.names, self.boxes))
        lines = [f"{self.images} images, {sum(self.boxes)} boxes ({counts}), {self.difficult} difficult boxes kept for evaluation only"]
        if self.unknown:
            lines.append("skipped classes not in the names: " + ", ".join(f"{n} ({c})" for n, c in sorted(self.unknown.items())))
        lines += [f"{name}: {path}" for name, path in self.lists.items()]
        lines += [f"names: {self.names_file}", f"data: {self.data_file}"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _number(node: ET.Element | None, tag: str, where: str) -> float:
    child = None if node is None else node.find(tag)
    text = None if child is None else (child.text or "").strip()
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: <{tag}> is {text!r}, not a number") from None


def read_voc_xml(path: "str | os.PathLike") -> VocAnnotation:
    """Parse one VOC annotation file (``<size>`` and every ``<object>``'s ``name``, ``difficult``, ``bndbox``).

    A missing ``<difficult>`` counts as 0 (as in later VOC tools; voc_label.py would fail). A
    width or height of 0 is kept as 0: :func:`voc_to_darknet` then reads the size from the image.

    Raises:
        DataError: the file is missing, not XML, or a box coordinate is not a number.
    """
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except FileNotFoundError:
        raise DataError(f"{p}: annotation not found") from None
    except ET.ParseError as err:
        raise DataError(f"{p}: not a VOC annotation ({err})") from None
    size = root.find("size")
    width = int(_number(size, "width", os.fspath(p))) if size is not None and size.find("width") is not None else 0
    height = int(_number(size, "height", os.fspath(p))) if size is not None and size.find("height") is not None else 0
    objects = []
    for number, obj in enumerate(root.iter("object")):
        where = f"{p}: object {number}"
        name = (obj.findtext("name") or "").strip()
        difficult = (obj.findtext("difficult") or "0").strip()
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{where} ({name}) has no <bndbox>")
        objects.append(VocObject(
            name, _number(box, "xmin", where), _number(box, "ymin", where), _number(box, "xmax", where),
            _number(box, "ymax", where), difficult not in ("0", ""),
        ))
    return VocAnnotation(p, width, height, tuple(objects))


def voc_box(obj: VocObject, width: int, height: int, offset: bool = True) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` relative to the image: voc_label.py's ``convert()`` (``offset=True``: the
    centre minus 1 pixel), or the plain centre ``(xmin + xmax) / 2`` (``offset=False``)."""
    shift = 1.0 if offset else 0.0
    x = ((obj.xmin + obj.xmax) / 2.0 - shift) * (1.0 / width)
    y = ((obj.ymin + obj.ymax) / 2.0 - shift) * (1.0 / height)
    return x, y, (obj.xmax - obj.xmin) * (1.0 / width), (obj.ymax - obj.ymin) * (1.0 / height)


def _label_line(cls: int, box: tuple[float, float, float, float]) -> str:
    return str(cls) + " " + " ".join(str(v) for v in box) + "\n"  # voc_label.py: str() of each float


def _voc_folders(root: Path) -> list[tuple[str, Path]]:
    """``(prefix, folder)`` of each VOC folder: the root itself, or the ``VOC<year>`` folders of a VOCdevkit."""
    if (root / "Annotations").is_dir():
        name = root.name
        return [(name[3:] if name.startswith("VOC") and name[3:].isdigit() else name, root)]
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / "Annotations").is_dir()) if root.is_dir() else []
    if not found:
        raise DataError(f"{root}: not a VOC folder (no Annotations/) nor a VOCdevkit (no VOC*/Annotations/)")
    return [(p.name[3:] if p.name.startswith("VOC") and p.name[3:].isdigit() else p.name, p) for p in found]


def _set_ids(folder: Path, sets: list[str] | None) -> dict[str, list[str]]:
    main = folder / "ImageSets" / "Main"
    if sets is None:
        sets = [s for s in _MAIN_SETS if (main / f"{s}.txt").is_file()]
        if not sets:  # no ImageSets: every annotation is one set
            return {"all": sorted(p.stem for p in (folder / "Annotations").glob("*.xml"))}
    out = {}
    for s in sets:
        try:
            out[s] = [line.split()[0] for line in (main / f"{s}.txt").read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            raise DataError(f"{main / (s + '.txt')}: image set not found") from None
    return out


def _image_of(folder: Path, image_id: str) -> Path:
    images = folder / "JPEGImages"
    for ext in (".jpg",) + IMAGE_SUFFIXES:
        if (images / f"{image_id}{ext}").exists():
            return images / f"{image_id}{ext}"
    return images / f"{image_id}.jpg"


def _discover_names(annotations: list[VocAnnotation]) -> list[str]:
    seen = sorted({o.name for a in annotations for o in a.objects})
    if set(seen) <= set(VOC_CLASSES):
        return list(VOC_CLASSES)
    return seen


def _image_size(image: Path, annotation: VocAnnotation, result: "VocResult") -> tuple[int, int]:
    """The XML's ``<size>`` (what voc_label.py divides by); the image header's when it is missing.
    A header that disagrees with the XML is noted: the labels are then relative to the XML's size."""
    from .check import image_size

    actual = image_size(image) if image.exists() else None
    if annotation.width > 0 and annotation.height > 0:
        if actual and actual != (annotation.width, annotation.height):
            result.notes.append(f"{annotation.path}: <size> {annotation.width}x{annotation.height}, "
                                f"but {image.name} is {actual[0]}x{actual[1]}")
        return annotation.width, annotation.height
    if actual is None:
        raise DataError(f"{annotation.path}: no <size> and {image} is not a readable image")
    return actual


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except PermissionError:
        raise DataError(f"{path}: cannot write here (read-only data set? use link_images / --link-images)") from None


def _link(image: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        if target.resolve() == image.resolve():
            return
        target.unlink()
    target.symlink_to(image.resolve())


def voc_to_darknet(
    root: "str | os.PathLike",
    out: "str | os.PathLike" = ".",
    *,
    names: list[str] | None = None,
    sets: list[str] | None = None,
    train: list[str] | None = None,
    valid: list[str] | None = None,
    offset: bool = True,
    labels_beside: bool = False,
    link_images: bool = False,
    name: str | None = None,
) -> VocResult:
    """Write Darknet labels, image lists, ``<name>.names`` and ``<name>.data`` for a VOC data set.

    Args:
        root: a VOC folder (``Annotations/``, ``ImageSets/Main/``, ``JPEGImages/``) or a VOCdevkit
            holding ``VOC<year>`` folders.
        out: where the lists, ``.names``, ``.data`` and ``backup/`` go (voc_label.py: the working directory).
        names: the classes in label order; default: VOC's 20 classes when every name found is one of
            them, else the names found, sorted.
        sets: the ImageSets to convert (default: those of train, val, trainval, test present; with
            no ImageSets, every annotation as the set ``all``).
        train, valid: the sets concatenated into ``train.txt`` and ``valid.txt`` (voc_label.py:
            train + val for training; default valid: test, else val).
        offset: voc_label.py's centre minus 1 pixel (default); ``False``: the plain centre.
        labels_beside: labels next to the images instead of voc_label.py's ``labels/`` folder.
        link_images: leave ``root`` untouched: symbolic links to the images go to
            ``out/<folder>/JPEGImages/`` (``out/<folder>/obj/`` with ``labels_beside``, AlexeyAB's
            custom-data folder, so that neither fork's path rewriting moves the labels away) and the
            labels beside them as above.
        name: the stem of the ``.names``/``.data`` files (default ``voc`` for a VOCdevkit, else the
            folder name in lower case).

    Returns:
        A :class:`VocResult` with the files written and the box counts per class.

    Raises:
        DataError: no VOC folder, an unreadable annotation, a missing ImageSet, a class list
            without a class found, or a read-only destination.
    """
    root_p, out_p = Path(root), Path(out)
    folders = _voc_folders(root_p)
    name = name or ("voc" if len(folders) > 1 or folders[0][1] != root_p else root_p.resolve().name.lower())
    ids = {prefix: _set_ids(folder, sets) for prefix, folder in folders}
    annotations: dict[tuple[str, str], VocAnnotation] = {}
    for (prefix, folder) in folders:
        for image_id in dict.fromkeys(i for s in ids[prefix].values() for i in s):
            annotations[prefix, image_id] = read_voc_xml(folder / "Annotations" / f"{image_id}.xml")
    classes = list(names) if names else _discover_names(list(annotations.values()))
    found = {o.name for a in annotations.values() for o in a.objects}
    if found and not found & set(classes):
        raise DataError(f"{root_p}: no object is of the classes {', '.join(classes)}; the annotations name {', '.join(sorted(found))}")
    index = {n: i for i, n in enumerate(classes)}
    result = VocResult(classes, out_p / f"{name}.data", out_p / f"{name}.names", {}, out_p / "train.txt", None, None,
                       boxes=[0] * len(classes))
    listed: dict[tuple[str, str], Path] = {}
    difficult: dict[tuple[str, str], tuple[Path, str]] = {}
    misplaced = 0
    for (prefix, folder) in folders:
        image_dir = out_p.resolve() / folder.name / ("obj" if labels_beside else "JPEGImages") if link_images else None
        for image_id in dict.fromkeys(i for s in ids[prefix].values() for i in s):
            source = _image_of(folder, image_id)
            image = (image_dir / source.name) if image_dir else Path(os.path.abspath(source))
            if image_dir:
                _link(source, image)
            labels = image.with_suffix(".txt") if labels_beside else image.parent.parent / "labels" / f"{image_id}.txt"
            ann = annotations[prefix, image_id]
            width, height = _image_size(source, ann, result)
            if not source.exists():
                result.notes.append(f"{ann.path}: image {source.name} not found")
            kept, hard = [], []
            for obj in ann.objects:
                if obj.name not in index:
                    result.unknown[obj.name] = result.unknown.get(obj.name, 0) + 1
                    continue
                (hard if obj.difficult else kept).append(_label_line(index[obj.name], voc_box(obj, width, height, offset)))
                if not obj.difficult:
                    result.boxes[index[obj.name]] += 1
            result.difficult += len(hard)
            _write(labels, "".join(kept))
            misplaced += label_path(image) != labels
            listed[prefix, image_id] = image
            difficult[prefix, image_id] = (labels.with_name(f"difficult_{labels.name}"), "".join(hard))
        for set_name, set_ids in ids[prefix].items():
            path = out_p / f"{prefix}_{set_name}.txt"
            _write(path, "".join(f"{listed[prefix, i]}\n" for i in set_ids))
            result.lists[f"{prefix}_{set_name}"] = path
    result.images = len(listed)
    if misplaced:
        result.notes.append(f"{misplaced} label files are not where AlexeyAB's Darknet looks (it replaces /JPEGImages/ "
                            "by /labels/): use the default layout, or link_images (--link-images) with labels beside")
    _write_lists(result, ids, listed, difficult, train, valid)
    _write(result.names_file, "".join(f"{n}\n" for n in classes))
    backup = out_p.resolve() / "backup"
    backup.mkdir(parents=True, exist_ok=True)
    data = [f"classes={len(classes)}", f"train={result.train_file.resolve()}"]
    if result.valid_file:
        data.append(f"valid={result.valid_file.resolve()}")
    if result.difficult_file:
        data.append(f"difficult={result.difficult_file.resolve()}")
    data += [f"names={result.names_file.resolve()}", f"backup={backup}/"]
    _write(result.data_file, "\n".join(data) + "\n")
    return result


def _write_lists(result: VocResult, ids: dict[str, dict[str, list[str]]], listed: dict[tuple[str, str], Path],
                 difficult: dict[tuple[str, str], tuple[Path, str]], train: list[str] | None, valid: list[str] | None) -> None:
    """``train.txt``, ``valid.txt`` and, when a valid image has difficult boxes, the difficult labels of
    every valid image and ``difficult_valid.txt`` (parallel to ``valid.txt``)."""
    present = {s for sets in ids.values() for s in sets}
    if train is None:
        train = [s for s in ("train", "val") if s in present] or sorted(present)
    if valid is None:
        valid = ["test"] if "test" in present else ["val"] if "val" in present and "val" not in train else []
    for s in list(train) + list(valid):
        if s not in present:
            raise DataError(f"image set {s!r} was not converted (sets: {', '.join(sorted(present))})")

    def keys(wanted: list[str]) -> list[tuple[str, str]]:
        return [(prefix, i) for prefix, sets in ids.items() for s in wanted if s in sets for i in sets[s]]

    _write(result.train_file, "".join(f"{listed[k]}\n" for k in keys(train)))
    if not valid:
        return
    valid_keys = keys(valid)
    result.valid_file = result.train_file.with_name("valid.txt")
    _write(result.valid_file, "".join(f"{listed[k]}\n" for k in valid_keys))
    if not any(difficult[k][1] for k in valid_keys):
        return
    for k in dict.fromkeys(valid_keys):
        _write(*difficult[k])
    # detector map maps each line to a label file (replace_image_to_label): JPEGImages/difficult_<id>.jpg
    # -> labels/difficult_<id>.txt, as voc_label_difficult.py writes it
    result.difficult_file = result.train_file.with_name("difficult_valid.txt")
    _write(result.difficult_file, "".join(f"{listed[k].parent / ('difficult_' + listed[k].name)}\n" for k in valid_keys))

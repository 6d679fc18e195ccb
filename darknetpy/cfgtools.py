"""Cfg edits for a custom data set (``classes``, the head convs' ``filters``, ``max_batches``) and a cfg diff.

Darknet reads the keys changed here in ``src/parser.c``: ``parse_yolo`` (``classes``, ``num``, ``mask``),
``parse_gaussian_yolo`` (the same), ``parse_region`` (``classes``, ``coords``, ``num``), ``parse_detection``
(``classes``, ``coords``, ``num``, ``side``) and ``parse_net_options`` (``max_batches``, ``policy``,
``steps``, ``scales``). A head checks that its input has exactly the channels it needs
(``l.outputs == params.inputs``), so the layer right before it must give:

- ``[yolo]``: ``filters = (classes + 5)·len(mask)`` (``mask`` defaults to ``0..num-1``);
- ``[Gaussian_yolo]``: ``filters = (classes + 9)·len(mask)``;
- ``[region]``: ``filters = (classes + coords + 1)·num``;
- ``[detection]``: a ``[connected]`` with ``output = side²·((1 + coords)·num + classes)``.

The edits keep the file as it was (comments, blank lines, spacing, key order): only the value of the
first occurrence of a changed key is rewritten in place, and a missing key is added after the
section's last option. Darknet reads the result exactly as the same edits made on its options
(checked after every edit).
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .cfg import CfgFile, Section, format_cfg, parse_cfg_text, read_cfg
from .errors import BadValueError, CfgError
from .zoo import find_file

__all__ = ["CfgChange", "EditedCfg", "diff", "head_filters", "max_batches_for", "set_classes", "set_classes_text"]

HEADS = ("yolo", "Gaussian_yolo", "region", "detection")
_CONV = ("convolutional", "conv")
_CONNECTED = ("connected", "conn")
MIN_MAX_BATCHES = 6000  # AlexeyAB's README: classes·2000, and not less than 6000


@dataclass(frozen=True)
class CfgChange:
    """One key changed, added (``old`` None) or removed (``new`` None) in one section."""

    section: int  # position in the file: 0 is [net]
    name: str
    key: str
    old: str | None
    new: str | None
    reason: str = ""

    @property
    def layer(self) -> int | None:
        return self.section - 1 if self.section else None

    def __str__(self) -> str:
        where = f"[{self.name}" + (f" #{self.layer}" if self.layer is not None else "") + "]"
        why = f"  ({self.reason})" if self.reason else ""
        return f"{where} {self.key}: {self.old if self.old is not None else '(absent)'} -> {self.new if self.new is not None else '(removed)'}{why}"


@dataclass
class EditedCfg(CfgFile):
    """A cfg after :func:`set_classes`: the parsed sections, plus the edited text (comments kept)."""

    source: str = ""
    changes: list[CfgChange] = field(default_factory=list)

    def text(self) -> str:
        """The edited file, comments and layout kept (``format_cfg`` would drop them)."""
        return self.source

    def write(self, path: str | os.PathLike) -> None:
        """Write :meth:`text` to ``path`` byte for byte (CRLF files stay CRLF)."""
        Path(path).write_bytes(self.source.encode("utf-8"))


def max_batches_for(classes: int) -> int:
    """AlexeyAB's rule of thumb: ``2000·classes``, and not less than 6000 (README, "How to train")."""
    return max(2000 * classes, MIN_MAX_BATCHES)


def head_filters(sec: Section, classes: int) -> int:
    """The channels (``filters``, or a ``[connected]``'s ``output``) the layer before the head ``sec`` must give."""
    probe = sec.copy()
    if sec.name in ("yolo", "Gaussian_yolo"):
        num = probe.get_int("num", 1)
        mask = probe.get_ints("mask") or list(range(num))
        return (classes + (5 if sec.name == "yolo" else 9)) * len(mask)
    if sec.name == "region":
        return (classes + probe.get_int("coords", 4) + 1) * probe.get_int("num", 1)
    if sec.name == "detection":
        side = probe.get_int("side", 7)
        return side * side * ((1 + probe.get_int("coords", 1)) * probe.get_int("num", 1) + classes)
    raise sec.error(f"not a detection head (one of {', '.join(HEADS)})")


def _feeder_edit(cfg: CfgFile, position: int, classes: int) -> tuple[str, int]:
    """The key of the layer feeding the head at ``position`` (``filters`` or ``output``) and its new value."""
    head = cfg.sections[position]
    feeder = cfg.sections[position - 1] if position > 1 else None
    want = head_filters(head, classes)
    kinds = _CONNECTED if head.name == "detection" else _CONV
    if feeder is None or feeder.name not in kinds:
        fed_by = f"[{feeder.name} #{feeder.index}]" if feeder is not None else "the input"
        needed = "a [connected] with output" if head.name == "detection" else "a [convolutional] with filters"
        raise head.error(
            f"is fed by {fed_by}, not by {needed}={want}: set that layer's channels by hand "
            f"(darknetpy changes only the layer right before a head)",
            cls=CfgError,
        )
    key = "output" if head.name == "detection" else "filters"
    if key == "filters":
        groups = feeder.copy().get_int("groups", 1) or 1
        if want % groups:
            raise feeder.error(f"filters={want} for {classes} classes is not a multiple of groups={groups}", "groups", BadValueError)
    return key, want


def _plan(cfg: CfgFile, classes: int, max_batches: bool | int) -> list[CfgChange]:
    """Every change, in file order."""
    changes: list[CfgChange] = []

    def change(position: int, key: str, new: str | None, reason: str = "") -> None:
        sec = cfg.sections[position]
        opt = sec.find(key, mark=False)
        old = opt.value if opt is not None else None
        if old != new:
            changes.append(CfgChange(position, sec.name, key, old, new, reason))

    if max_batches:
        net = cfg.net
        total = max_batches_for(classes) if max_batches is True else int(max_batches)
        if total < 1:
            raise net.error(f"max_batches={total}: must be at least 1", cls=BadValueError)
        change(0, "max_batches", str(total), "AlexeyAB: 2000·classes, at least 6000" if max_batches is True else "")
        policy = net.copy().get_str("policy", "constant")
        if "steps" in net and policy in ("steps", "sgdr"):
            change(0, "steps", f"{total * 8 // 10},{total * 9 // 10}", "80% and 90% of max_batches")
            scales = (net.copy().get_str("scales") or "").split("#", 1)[0].split(",")
            if policy == "steps" and len([s for s in scales if s]) != 2:
                first = scales[0] if scales and scales[0] else ".1"
                kept = scales[:2] if len(scales) >= 2 else [first, first]
                change(0, "scales", ",".join(kept), "one scale per step")
    heads = [i for i, sec in enumerate(cfg.sections) if i > 0 and sec.name in HEADS]
    if not heads:
        raise CfgError(f"no detection head ({', '.join('[' + h + ']' for h in HEADS)}) in this cfg", path=cfg.path)
    for position in heads:
        head = cfg.sections[position]
        if head.name == "region" and ("tree" in head or "map" in head):
            raise head.error("its classes come from a tree/map file (YOLO9000): edit it by hand", "tree" if "tree" in head else "map")
        key, want = _feeder_edit(cfg, position, classes)
        change(position - 1, key, str(want), f"for [{head.name} #{head.index}]")
        change(position, "classes", str(classes))
        if "counters_per_class" in head:
            change(position, "counters_per_class", None, "its counts are for the old classes")
    return sorted(changes, key=lambda c: c.section)


def _split_lines(text: str) -> list[str]:
    return text.split("\n")


def _rewrite_value(raw: str, value: str) -> str:
    """``raw`` (a ``key = value  # note`` line) with its value replaced, spacing and inline comment kept."""
    end = "\r" if raw.endswith("\r") else ""
    body = raw[: len(raw) - len(end)]
    eq = body.index("=")
    head, rest = body[: eq + 1], body[eq + 1 :]
    lead = rest[: len(rest) - len(rest.lstrip(" \t"))]
    tail = ""
    if "#" in rest:
        cut = rest.index("#")
        before = rest[:cut]
        tail = before[len(before.rstrip(" \t")) :] + rest[cut:]
    return f"{head}{lead}{value}{tail}{end}"


def _apply(text: str, cfg: CfgFile, changes: list[CfgChange]) -> str:
    """The text with ``changes`` made in place (see the module docstring)."""
    lines = _split_lines(text)
    end = "\r" if cfg.crlf else ""
    replace: dict[int, str] = {}
    drop: set[int] = set()
    insert: dict[int, list[str]] = {}
    for ch in changes:
        sec = cfg.sections[ch.section]
        opts = [o for o in sec.options if o.key == ch.key]
        if ch.new is None:
            drop.update(o.line - 1 for o in opts if o.line)
        elif opts and opts[0].line:
            replace[opts[0].line - 1] = _rewrite_value(lines[opts[0].line - 1], ch.new)
        else:
            after = max([o.line for o in sec.options if o.line] + [sec.line or 0])
            insert.setdefault(after - 1, []).append(f"{ch.key}={ch.new}{end}")
    out: list[str] = []
    for i, line in enumerate(lines):
        if i not in drop:
            out.append(replace.get(i, line))
        out.extend(insert.get(i, []))
    return "\n".join(out)


def _check_reading(edited: CfgFile, base: CfgFile, changes: list[CfgChange]) -> None:
    """Darknet must read the edited text as the base with the changes made on its options."""
    expected = base.copy()
    for ch in changes:
        sec = expected.sections[ch.section]
        sec.remove(ch.key) if ch.new is None else sec.set(ch.key, ch.new)
    def read(cfg: CfgFile) -> list:  # the value before an inline '#' (kept on an edited line): what atoi/atof read
        return [(s.name, {k: s.find(k, mark=False).value.split("#", 1)[0] for k in s.keys()}) for s in cfg.sections]

    got, want = read(edited), read(expected)
    if got != want:  # pragma: no cover - a bug in _apply, never a user error
        raise RuntimeError("darknetpy: the edited cfg text does not read as intended")


def set_classes_text(text: str, classes: int, max_batches: bool | int = False, path: str | os.PathLike | None = None) -> EditedCfg:
    """:func:`set_classes` on cfg text (``path`` only names it in messages)."""
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise BadValueError(f"classes={classes}: must be a whole number of at least 1", path=path)
    base = parse_cfg_text(text, path)
    changes = _plan(base, classes, max_batches)
    source = _apply(text, base, changes)
    edited = parse_cfg_text(source, path)
    _check_reading(edited, base, changes)
    return EditedCfg(edited.sections, edited.path, edited.crlf, source=source, changes=changes)


def set_classes(cfg: str | os.PathLike | CfgFile, classes: int, max_batches: bool | int = False) -> EditedCfg:
    """A cfg for ``classes`` classes: ``classes`` in every head, the channels of the layer feeding it.

    Args:
        cfg: a cfg path (its comments and layout are kept) or a parsed :class:`CfgFile` (written out
            with ``format_cfg`` first, so without comments).
        classes: the number of classes, at least 1.
        max_batches: ``True``: ``max_batches = max(2000·classes, 6000)`` (AlexeyAB's README); an int: that
            value. With ``policy=steps`` (or ``sgdr``) and ``steps`` given, ``steps`` become 80% and 90% of it
            (and ``scales`` two values). ``False``: [net] is left alone.

    Returns:
        An :class:`EditedCfg`: the parsed result (build it with ``Darknet``/``shape_model``), its text and
        the list of changes.

    Raises:
        CfgError: no head, a head not fed by a ``[convolutional]`` (``[connected]`` for ``[detection]``),
            a YOLO9000 tree head. BadValueError: ``classes < 1``.
    """
    if isinstance(cfg, CfgFile):
        return set_classes_text(format_cfg(cfg), classes, max_batches, cfg.path)
    p = find_file(cfg)
    read_cfg(p)  # Darknet's reading errors (missing file, binary data) first
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return set_classes_text(text, classes, max_batches, p)


def _as_cfg(cfg: str | os.PathLike | CfgFile) -> CfgFile:
    return cfg if isinstance(cfg, CfgFile) else read_cfg(cfg)


def _values(sec: Section) -> dict[str, str]:
    return {k: sec.find(k, mark=False).value for k in sec.keys()}


def _label(sec: Section) -> str:
    return f"[{sec.name}" + (f" #{sec.index}" if sec.index is not None else "") + "]"


def _section_diff(a: Section, b: Section) -> list[str]:
    va, vb = _values(a), _values(b)
    out = []
    for key in va:
        if key not in vb:
            out.append(f"  - {key}={va[key]}")
        elif va[key] != vb[key]:
            out.append(f"  {key}: {va[key]} -> {vb[key]}")
    out += [f"  + {key}={vb[key]}" for key in vb if key not in va]
    if not out:
        return []
    where = _label(a) if a.index == b.index else f"{_label(a)} -> #{b.index}"
    return [f"{where} (line {a.line} -> {b.line})", *out]


def diff(a: str | os.PathLike | CfgFile, b: str | os.PathLike | CfgFile) -> str:
    """The keys that differ between two cfgs, as Darknet reads them, by section with layer indices.

    Sections are aligned by their names in order (``difflib``), so an added or removed layer shows as
    ``+ [name #i]`` / ``- [name #i]`` and the others are compared key by key (first occurrence, as
    ``option_find``): ``key: old -> new``, ``+ key=value``, ``- key=value``. An empty string: no difference.
    """
    ca, cb = _as_cfg(a), _as_cfg(b)
    out: list[str] = []
    names_a, names_b = [s.name for s in ca.sections], [s.name for s in cb.sections]
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, names_a, names_b, autojunk=False).get_opcodes():
        if op == "equal":
            for sa, sb in zip(ca.sections[i1:i2], cb.sections[j1:j2]):
                out += _section_diff(sa, sb)
            continue
        for sa in ca.sections[i1:i2]:
            out.append(f"- {_label(sa)} (line {sa.line}): " + " ".join(f"{k}={v}" for k, v in _values(sa).items()))
        for sb in cb.sections[j1:j2]:
            out.append(f"+ {_label(sb)} (line {sb.line}): " + " ".join(f"{k}={v}" for k, v in _values(sb).items()))
    if not out:
        return ""
    return "\n".join([f"--- {_name(ca, 'a')}", f"+++ {_name(cb, 'b')}", *out])


def _name(cfg: CfgFile, default: str) -> str:
    name = cfg.path or default
    return f"{name} (edited)" if isinstance(cfg, EditedCfg) else name

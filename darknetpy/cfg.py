"""Darknet cfg files: text to sections (each option keeps its file and line) and back.

Darknet: ``src/parser.c:read_cfg``, ``src/option_list.c:read_option/option_find``, ``src/utils.c:strip``.
The reading rules are Darknet's (darknet-reference.md §1.1):

- every space, tab, newline and carriage return is deleted from a line, not only at its ends;
- a line starting with ``#`` or ``;``, and an empty line, is skipped;
- ``[...]`` opens a section, ``key=value`` splits at the first ``=``;
- a repeated key: the first occurrence wins (the later ones are reported unused, as Darknet does);
- inline ``#`` text stays in the value; number parsing stops there, as ``atoi``/``atof`` do.

Deliberate differences: a value that is not a number where a number is needed is a
:class:`BadValueError` (Darknet's ``atoi`` would silently read 0), and an option before the first
section is a :class:`CfgError` (Darknet crashes).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .errors import BadValueError, CfgError

__all__ = [
    "CfgFile",
    "Option",
    "Section",
    "UnusedKeyWarning",
    "format_cfg",
    "parse_cfg_text",
    "read_cfg",
    "write_cfg",
]

_WHITESPACE = str.maketrans("", "", " \t\n\r")
_INT_RE = re.compile(r"[+-]?\d+")


class UnusedKeyWarning(UserWarning):
    """A key Darknet would report as ``Unused field`` (unknown, misspelt, or repeated)."""


class CfgWarning(UserWarning):
    """A cfg line Darknet reads with a complaint (no ``=``, CRLF under pjreddie)."""


@dataclass
class Option:
    """One ``key=value`` line."""

    key: str
    value: str
    line: int | None = None
    used: bool = False


@dataclass
class Section:
    """One ``[name]`` block: its options in file order, with where it came from."""

    name: str
    options: list[Option] = field(default_factory=list)
    line: int | None = None
    path: str | None = None
    index: int | None = None  # layer index (None for [net])

    # ---- lookup -------------------------------------------------------------------------
    def find(self, key: str, *, mark: bool = True) -> Option | None:
        """First occurrence of ``key`` (Darknet's ``option_find``), marked used."""
        for opt in self.options:
            if opt.key == key:
                if mark:
                    opt.used = True
                return opt
        return None

    def __contains__(self, key: str) -> bool:
        return self.find(key, mark=False) is not None

    def keys(self) -> list[str]:
        """Distinct keys in file order."""
        seen: list[str] = []
        for opt in self.options:
            if opt.key not in seen:
                seen.append(opt.key)
        return seen

    def mark_used(self, *keys: str) -> None:
        """Mark keys Darknet reads but this port does not need (so they are not reported)."""
        for key in keys:
            self.find(key)

    def unused(self) -> list[Option]:
        """Options Darknet would print as ``Unused field`` (unknown keys and repeats)."""
        return [opt for opt in self.options if not opt.used]

    # ---- errors -------------------------------------------------------------------------
    def error(self, message: str, key: str | None = None, cls: type[CfgError] = CfgError) -> CfgError:
        """Build an error located at this section (or at ``key``'s line)."""
        opt = self.find(key, mark=False) if key is not None else None
        return cls(
            message,
            path=self.path,
            line=opt.line if opt is not None else self.line,
            section=self.name,
            index=self.index,
            key=key,
            value=opt.value if opt is not None else None,
        )

    # ---- typed reads --------------------------------------------------------------------
    def get_str(self, key: str, default: str | None = None) -> str | None:
        opt = self.find(key)
        return default if opt is None else opt.value

    def get_int(self, key: str, default: int | None = None) -> int | None:
        opt = self.find(key)
        if opt is None:
            return default
        return self._parse_int(opt, _number_text(opt.value))

    def get_float(self, key: str, default: float | None = None) -> float | None:
        opt = self.find(key)
        if opt is None:
            return default
        return self._parse_float(opt, _number_text(opt.value))

    def get_bool(self, key: str, default: bool = False) -> bool:
        return bool(self.get_int(key, int(default)))

    def get_ints(self, key: str, default: Sequence[int] | None = None) -> list[int] | None:
        opt = self.find(key)
        if opt is None:
            return None if default is None else list(default)
        return [self._parse_int(opt, item) for item in _list_items(self, opt)]

    def get_floats(self, key: str, default: Sequence[float] | None = None) -> list[float] | None:
        opt = self.find(key)
        if opt is None:
            return None if default is None else list(default)
        return [self._parse_float(opt, item) for item in _list_items(self, opt)]

    def _parse_int(self, opt: Option, text: str) -> int:
        if _INT_RE.fullmatch(text):
            return int(text)
        raise self._bad(opt, "expected an integer")

    def _parse_float(self, opt: Option, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise self._bad(opt, "expected a number") from None

    def _bad(self, opt: Option, message: str) -> BadValueError:
        return BadValueError(
            message, path=self.path, line=opt.line, section=self.name, index=self.index, key=opt.key, value=opt.value
        )

    # ---- editing ------------------------------------------------------------------------
    def set(self, key: str, value: object) -> None:
        """Set the first occurrence of ``key`` (or append it); later repeats are removed."""
        text = _format_value(value)
        first = None
        kept: list[Option] = []
        for opt in self.options:
            if opt.key == key:
                if first is None:
                    first = opt
                    opt.value = text
                    kept.append(opt)
                continue
            kept.append(opt)
        if first is None:
            kept.append(Option(key, text))
        self.options = kept

    def remove(self, key: str) -> None:
        self.options = [opt for opt in self.options if opt.key != key]

    def copy(self) -> "Section":
        return Section(self.name, [Option(o.key, o.value, o.line) for o in self.options], self.line, self.path, self.index)

    def where(self) -> str:
        """``path:line`` of the section header."""
        return f"{self.path or '<cfg>'}:{self.line}"


def _format_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number_text(value: str) -> str:
    """The part of a value ``atoi``/``atof`` look at: everything before an inline ``#``."""
    return value.split("#", 1)[0]


def _list_items(section: Section, opt: Option) -> list[str]:
    text = _number_text(opt.value)
    items = text.split(",")
    if items and items[-1] == "" and len(items) > 1:
        items = items[:-1]  # a trailing comma: Darknet would read one more 0; ignore it
    if any(item == "" for item in items):
        raise section._bad(opt, "empty item in a comma list")
    return items


@dataclass
class CfgFile:
    """A parsed cfg: ``sections[0]`` is ``[net]``, ``sections[1:]`` are the layers."""

    sections: list[Section]
    path: str | None = None
    crlf: bool = False

    @property
    def net(self) -> Section:
        return self.sections[0]

    @property
    def layers(self) -> list[Section]:
        return self.sections[1:]

    def __iter__(self) -> Iterator[Section]:
        return iter(self.sections)

    def __len__(self) -> int:
        return len(self.sections)

    def copy(self) -> "CfgFile":
        return CfgFile([s.copy() for s in self.sections], self.path, self.crlf)

    def text(self) -> str:
        return format_cfg(self)


def parse_cfg_text(text: str, path: str | os.PathLike | None = None) -> CfgFile:
    """Parse cfg text with Darknet's rules; ``path`` is only used in messages."""
    spath = None if path is None else os.fspath(path)
    if "\x00" in text:
        raise CfgError("this is not a text cfg file (it contains NUL bytes)", path=spath)
    sections: list[Section] = []
    crlf = "\r" in text
    current: Section | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.translate(_WHITESPACE)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            name = line[1:-1] if line.endswith("]") else line[1:]
            current = Section(name, [], number, spath)
            sections.append(current)
            continue
        if current is None:
            raise CfgError(f"option '{line}' before the first [section]", path=spath, line=number)
        if "=" not in line:
            warnings.warn(f"{spath or '<cfg>'}:{number}: no '=' in '{line}': Darknet skips this line", CfgWarning, stacklevel=2)
            continue
        key, value = line.split("=", 1)
        current.options.append(Option(key, value, number))
    if not sections:
        raise CfgError("no sections: a cfg starts with [net]", path=spath)
    for i, sec in enumerate(sections[1:]):
        sec.index = i
    return CfgFile(sections, spath, crlf)


def read_cfg(path: str | os.PathLike) -> CfgFile:
    """Read a cfg file (Darknet's ``read_cfg``); ``cfg/yolov3.cfg`` that is not here is the bundled one."""
    from .zoo import find_file

    p = find_file(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CfgError("cfg file not found", path=p) from None
    except IsADirectoryError:
        raise CfgError("is a directory, not a cfg file", path=p) from None
    if b"\x00" in data:
        raise CfgError("this is not a text cfg file (it contains NUL bytes)", path=p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_cfg_text(text, p)


def format_cfg(cfg: CfgFile | Sequence[Section]) -> str:
    """Cfg text that Darknet reads into the same sections and options (comments are not kept)."""
    sections = cfg.sections if isinstance(cfg, CfgFile) else cfg
    blocks = []
    for sec in sections:
        lines = [f"[{sec.name}]"] + [f"{opt.key}={opt.value}" for opt in sec.options]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def write_cfg(cfg: CfgFile | Sequence[Section], path: str | os.PathLike) -> None:
    """Write :func:`format_cfg` text to ``path``."""
    Path(path).write_text(format_cfg(cfg))

"""Darknet's ``.data`` file (``classes``, ``train``, ``valid``, ``names``, ``backup``...) and ``.names``.

Darknet: ``src/option_list.c:read_data_cfg`` (the same ``key=value`` reader as cfg options, without
sections), ``get_labels``/``get_paths``. Relative paths are tried as given (Darknet resolves them
from the working directory) and then beside the ``.data`` file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

__all__ = ["DataConfig", "read_names"]


def read_names(path: "str | os.PathLike") -> list[str]:
    """Class names, one per line (``get_labels``); blank trailing lines are ignored. ``coco.names``
    or ``cfg/coco.names`` that is not here is the bundled one."""
    from ..zoo import find_file

    p = find_file(path)
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise DataError(f"{p}: names file not found") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


@dataclass
class DataConfig:
    """A parsed ``.data`` file."""

    path: Path
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: "str | os.PathLike") -> "DataConfig":
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise DataError(f"{p}: .data file not found") from None
        options: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = "".join(raw.split())
            if not line or line[0] in "#;":
                continue
            if "=" not in line:
                raise DataError(f"{p}:{number}: expected key=value, got '{raw.strip()}'")
            key, value = line.split("=", 1)
            options.setdefault(key, value)  # the first occurrence wins, as option_find
        return cls(p, options)

    def resolve(self, value: str) -> Path:
        """A path from the file: as given if it exists, else relative to the .data file's folder."""
        candidate = Path(value)
        if candidate.is_absolute() or candidate.exists():
            return candidate
        beside = self.path.parent / value
        return beside if beside.exists() else candidate

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def path_of(self, key: str) -> Path | None:
        value = self.options.get(key)
        return None if value is None else self.resolve(value)

    @property
    def classes(self) -> int:
        try:
            return int(self.options.get("classes", "0"))
        except ValueError:
            raise DataError(f"{self.path}: classes={self.options['classes']} is not an integer") from None

    def names(self) -> list[str]:
        """The class names of ``names=`` (Darknet's default is ``data/names.list``)."""
        path = self.path_of("names") or self.resolve("data/names.list")
        names = read_names(path)
        if self.classes and len(names) < self.classes:
            raise DataError(f"{path}: {len(names)} names for classes={self.classes} in {self.path}")
        return names

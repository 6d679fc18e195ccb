"""One exception family for everything a user can get wrong.

Every message names where the problem is: ``path:line: [section #index] key=value: what is wrong``
for cfg problems, the layer index and byte counts for weights problems.
"""
from __future__ import annotations

import os


class DarknetError(Exception):
    """Base class of every error darknetpy raises on bad input."""


def _where(path: str | os.PathLike | None, line: int | None) -> str:
    if path is None and line is None:
        return ""
    if line is None:
        return f"{os.fspath(path)}: "
    return f"{os.fspath(path) if path is not None else '<cfg>'}:{line}: "


class CfgError(DarknetError, ValueError):
    """A problem in a cfg file, located by file, line, section, layer index and key."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        line: int | None = None,
        section: str | None = None,
        index: int | None = None,
        key: str | None = None,
        value: str | None = None,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.section = section
        self.index = index
        self.key = key
        self.value = value
        self.reason = message
        where = _where(path, line)
        what = ""
        if section is not None:
            what += f"[{section}" + (f" #{index}" if index is not None else "") + "] "
        if key is not None:
            what += f"{key}={value}: " if value is not None else f"{key}: "
        super().__init__(f"{where}{what}{message}")


class UnknownSectionError(CfgError):
    """A ``[section]`` name Darknet (in the chosen flavour) does not know."""


class BadValueError(CfgError):
    """A value that is not of the key's type (``filters=abc``) or out of its range."""


class ShapeError(CfgError):
    """Layer sizes that do not fit: filters vs classes/mask, route sizes, references outside the network."""


class FlavorError(CfgError):
    """A section or key that only the other Darknet flavour knows."""


class WeightsError(DarknetError, ValueError):
    """A .weights file that does not fit its cfg: too short, too long, or misaligned."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, layer: int | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.layer = layer
        where = f"{self.path}: " if self.path else ""
        super().__init__(where + message)


class DataError(DarknetError, ValueError):
    """A problem in a data set: .data file, image list, label file or image."""


class ParityError(DarknetError):
    """Raised by :mod:`darknetpy.verify` when a case cannot be checked at all."""


class TrainingError(DarknetError):
    """Training cannot go on (a NaN loss, a batch that does not split): what happened and what to check."""

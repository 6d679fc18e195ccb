"""Darknet ``.weights`` files: header, sequential read and write, partial files, strict length.

Darknet: ``src/parser.c:load_weights_upto/save_weights_upto`` (darknet-reference.md §2).
The file is a header (``major, minor, revision`` as int32, then ``seen`` as 4 or 8 bytes) and the
float32 arrays of every layer with weights, in layer order, with no shapes or separators.

Unlike Darknet, a file that ends inside a layer, or has bytes left over after the last layer, is
a :class:`WeightsError` naming the layer, and a file that ends exactly between two layers (a
partial file such as ``darknet53.conv.74``) loads the layers it holds with a
:class:`PartialWeightsWarning` naming the first layer left at its initialisation.
"""
from __future__ import annotations

import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from torch import Tensor

from .errors import WeightsError
from .flavor import FlavorSpec, flavor_from_header, is_transposed, seen_is_64bit

if TYPE_CHECKING:
    from .layers.base import DarknetLayer
    from .model import Darknet

__all__ = [
    "WeightsHeader",
    "WeightsReader",
    "WeightsWriter",
    "LoadReport",
    "PartialWeightsWarning",
    "read_header",
    "load_weights",
    "save_weights",
    "weights_bytes",
]


class PartialWeightsWarning(UserWarning):
    """A weights file that holds only the first layers of the cfg."""


@dataclass(frozen=True)
class WeightsHeader:
    """The header of a .weights file."""

    major: int
    minor: int
    revision: int
    seen: int
    seen_bytes: int = 8

    @property
    def size(self) -> int:
        return 12 + self.seen_bytes

    @property
    def transpose(self) -> bool:
        """Connected weights stored transposed (``major > 1000 or minor > 1000``)."""
        return is_transposed(self.major, self.minor)

    @property
    def flavor(self) -> FlavorSpec:
        """The fork that writes this version (AlexeyAB 0.2.5, pjreddie 0.2.0)."""
        return flavor_from_header(self.major, self.minor, self.revision)

    def to_bytes(self) -> bytes:
        fmt = "<iiiQ" if self.seen_bytes == 8 else "<iiiI"
        return struct.pack(fmt, self.major, self.minor, self.revision, self.seen)

    @classmethod
    def for_flavor(cls, flavor: FlavorSpec, seen: int = 0) -> "WeightsHeader":
        """What ``save_weights_upto`` of that fork writes."""
        return cls(*flavor.header_version, seen=seen, seen_bytes=8)

    @classmethod
    def parse(cls, data: bytes, flavor: FlavorSpec | None = None, path: str | None = None) -> "WeightsHeader":
        """Parse a header; ``seen`` is 4 or 8 bytes by the reading fork's rule (§2.1)."""
        if len(data) < 16:
            raise WeightsError(f"too short for a weights header ({len(data)} bytes, at least 16 needed)", path=path)
        major, minor, revision = struct.unpack_from("<iii", data)
        reader = flavor or flavor_from_header(major, minor, revision)
        if seen_is_64bit(reader, major, minor):
            if len(data) < 20:
                raise WeightsError("too short for a weights header with a 64-bit seen (20 bytes)", path=path)
            (seen,) = struct.unpack_from("<Q", data, 12)
            return cls(major, minor, revision, seen, 8)
        (seen,) = struct.unpack_from("<I", data, 12)
        return cls(major, minor, revision, seen, 4)


def read_header(path: str | os.PathLike, flavor: FlavorSpec | None = None) -> WeightsHeader:
    """Read only the header of a weights file."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(20)
    except FileNotFoundError:
        raise WeightsError("weights file not found", path=p) from None
    except IsADirectoryError:
        raise WeightsError("is a directory, not a weights file", path=p) from None
    return WeightsHeader.parse(data, flavor, os.fspath(p))


class WeightsReader:
    """Sequential float32 reads from the body of a weights file."""

    def __init__(self, data: np.ndarray, path: str | None = None, transpose: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.path = path
        self.transpose = transpose

    @property
    def remaining(self) -> int:
        return int(self.data.size - self.pos)

    def take(self, n: int, layer: "DarknetLayer | None" = None) -> np.ndarray:
        if n > self.remaining:
            where = f"layer {layer.index} [{layer.section_type}]" if layer is not None else "the file"
            raise WeightsError(
                f"the file ends inside {where}: {n * 4} more bytes needed, {self.remaining * 4} left",
                path=self.path,
                layer=None if layer is None else layer.index,
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def read_into(self, t: Tensor, layer: "DarknetLayer | None" = None) -> None:
        """Fill ``t`` with the next ``t.numel()`` floats.

        A whole float32 CPU tensor becomes a view of the buffer read from disk (no copy: loading
        costs little more than reading the file); slices and other devices or dtypes are copied.
        """
        arr = self.take(t.numel(), layer)
        src = torch.from_numpy(arr).view(t.shape)
        if t._base is None and t.device.type == "cpu" and t.dtype == torch.float32:
            t.data = src
        else:
            with torch.no_grad():
                t.copy_(src)

    def skip(self, n: int, layer: "DarknetLayer | None" = None) -> None:
        self.take(n, layer)


class WeightsWriter:
    """Collects float32 arrays in file order."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def write(self, t: Tensor | np.ndarray) -> None:
        if isinstance(t, Tensor):
            t = t.detach().to("cpu", torch.float32).contiguous().numpy()
        self.parts.append(np.ascontiguousarray(t, dtype="<f4").reshape(-1))

    @property
    def count(self) -> int:
        return sum(p.size for p in self.parts)

    def dump(self, f: BinaryIO) -> None:
        for part in self.parts:
            f.write(part.tobytes())


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    path: str
    header: WeightsHeader
    layers_read: int  # layers 0 .. layers_read-1 were considered (loaded or holding no weights)
    floats_read: int
    partial: bool
    first_missing: int | None  # first layer with weights that the file did not hold


def weights_bytes(model: "Darknet", cutoff: int | None = None) -> int:
    """Size of the .weights file Darknet writes for this model (64-bit seen header)."""
    layers = model.layers if cutoff is None else model.layers[:cutoff]
    return 20 + 4 * sum(layer.num_weights() for layer in layers if not layer.dontsave)


def load_weights(model: "Darknet", path: str | os.PathLike, cutoff: int | None = None) -> LoadReport:
    """Read a weights file into ``model`` (layers ``0 .. cutoff-1``), checking its length."""
    p = Path(path)
    spath = os.fspath(p)
    header = read_header(p, model.flavor)
    size = p.stat().st_size
    body = size - header.size
    if body % 4:
        raise WeightsError(f"the size after the {header.size}-byte header ({body} bytes) is not a whole number of floats", path=p)
    data = np.fromfile(p, dtype="<f4", offset=header.size)
    reader = WeightsReader(data, spath, header.transpose)
    layers = model.layers if cutoff is None else model.layers[: max(0, cutoff)]
    first_missing = None
    count = 0
    for layer in layers:
        need = layer.num_weights()
        if need and reader.remaining == 0:
            first_missing = layer.index
            break
        if need > reader.remaining:
            raise WeightsError(
                f"the file ends inside layer {layer.index} [{layer.section_type}] ({layer.where}): it needs {need * 4} bytes, "
                f"{reader.remaining * 4} are left; the cfg does not match these weights (or the file is truncated)",
                path=p,
                layer=layer.index,
            )
        if need:
            layer.read_weights(reader)
        count += 1
    if cutoff is None and first_missing is None and reader.remaining:
        raise WeightsError(
            f"{reader.remaining * 4} bytes are left over after the last layer ({len(model.layers) - 1}): the cfg does not "
            f"match these weights (expected {weights_bytes(model)} bytes, the file has {size})",
            path=p,
        )
    if first_missing is not None:
        remaining_layers = [l.index for l in model.layers[first_missing:] if l.num_weights()]
        warnings.warn(
            f"{spath}: holds the weights of layers 0..{first_missing - 1} only (a partial file); layers "
            f"{first_missing}..{remaining_layers[-1]} keep their initialisation",
            PartialWeightsWarning,
            stacklevel=3,
        )
    model.header = header
    model.seen = header.seen
    model.load_report = LoadReport(spath, header, count, reader.pos, first_missing is not None, first_missing)
    return model.load_report


def save_weights(model: "Darknet", path: str | os.PathLike, cutoff: int | None = None) -> None:
    """Write ``model`` as Darknet does; with ``cutoff`` exactly as ``darknet partial`` (``seen`` 0).

    Without a cutoff, the header of the file the model was loaded from is kept (so a load followed
    by a save gives back the same bytes), with ``seen`` updated. The file is written to a
    temporary name and renamed, so an interrupted save never leaves a truncated file.
    """
    if cutoff is None:
        base = model.header or WeightsHeader.for_flavor(model.flavor)
        header = WeightsHeader(base.major, base.minor, base.revision, int(model.seen), base.seen_bytes)
        layers = model.layers
    else:
        header = WeightsHeader.for_flavor(model.flavor, seen=0)
        layers = model.layers[: max(0, cutoff)]
    writer = WeightsWriter()
    for layer in layers:
        if layer.dontsave:
            continue
        layer.write_weights(writer)
    atomic_write(Path(path), lambda f: (f.write(header.to_bytes()), writer.dump(f)))


def atomic_write(path: Path, write) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, then rename it. The file
    gets the permissions a plain ``open(path, "wb")`` gives (mkstemp's are 0600)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

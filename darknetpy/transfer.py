"""Start weights for training: Darknet's sequential load, partial files, and weights made for another
class count (or another cfg) copied layer by layer where the shapes match.

A ``.weights`` file holds no shapes. Loaded into a cfg it was not made for, Darknet reads on and
misaligns silently; here a file that does not fit the cfg is loaded through the cfg it was made
for (``weights_cfg``, or the bundled cfg of a published file recognised by its exact size, see
:mod:`darknetpy.zoo`), and every layer whose type and tensor shapes agree is copied; the others keep
Darknet's initialisation and are named (for a custom class count: the convs before the heads).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import WeightsError
from .weights import PartialWeightsWarning, WeightsHeader
from .zoo import asset, identify

if TYPE_CHECKING:
    from .model import Darknet

__all__ = ["StartReport", "load_start_weights"]


@dataclass
class StartReport:
    """What :func:`load_start_weights` did."""

    path: str
    source_cfg: str | None  # the cfg the weights were read with, when it is not the training cfg
    loaded: list[int] = field(default_factory=list)  # layers with weights taken from the file
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (layer, why) kept at initialisation
    partial_from: int | None = None  # first layer the file did not hold (a partial file)
    seen: int = 0

    def lines(self) -> list[str]:
        """Human-readable summary."""
        out = []
        if self.source_cfg:
            out.append(f"{self.path}: read with {self.source_cfg} (the weights' own cfg); layers with matching shapes copied")
        if self.partial_from is not None:
            out.append(f"{self.path}: a partial file: layers {self.partial_from}.. keep their initialisation")
        for index, why in self.skipped:
            out.append(f"layer {index} not loaded, freshly initialised: {why}")
        out.append(f"Loaded {len(self.loaded)} layers with weights from {self.path}, seen {self.seen}")
        return out


def _state(layer) -> list[torch.Tensor]:
    return list(layer.weight_tensors()) if layer.num_weights() else []


def _copy_matching(model: "Darknet", source: "Darknet", limit: int | None, report: StartReport) -> None:
    for layer in model.layers:
        if not layer.num_weights():
            continue
        if limit is not None and layer.index >= limit:
            break
        if layer.index >= len(source.layers):
            report.skipped.append((layer.index, "the weights' cfg has no such layer"))
            continue
        other = source.layers[layer.index]
        mine, theirs = _state(layer), _state(other)
        if other.section_type != layer.section_type:
            report.skipped.append((layer.index, f"[{layer.section_type}] here, [{other.section_type}] in the weights' cfg"))
        elif [t.shape for t in mine] != [t.shape for t in theirs]:
            shapes = lambda ts: "x".join(str(d) for d in ts[-1].shape) if ts else "-"  # noqa: E731
            report.skipped.append((layer.index, f"[{layer.section_type}] shape {shapes(mine)} here, {shapes(theirs)} in the weights"))
        else:
            with torch.no_grad():
                for a, b in zip(mine, theirs):
                    a.copy_(b)
            report.loaded.append(layer.index)


def load_start_weights(
    model: "Darknet",
    path: "str | os.PathLike",
    weights_cfg: "str | os.PathLike | None" = None,
    clear: bool = False,
) -> StartReport:
    """Load ``path`` into ``model`` to start (or resume) training.

    - A file that fits the cfg (whole, or a partial file ending on a layer boundary such as
      ``darknet53.conv.74``) is read as Darknet reads it; ``seen`` is kept (resume) unless ``clear``.
    - With ``weights_cfg``, or when the file is a published one recognised by its size whose cfg is
      not this one, it is read with that cfg and the layers whose shapes match are copied; the
      others (the heads, for a custom class count) are re-initialised and listed. ``seen`` starts at 0.
    """
    p = Path(path)
    spath = os.fspath(p)
    source_cfg: Path | None = Path(weights_cfg) if weights_cfg else None
    cutoff = None
    if source_cfg is None:
        known = identify(p)
        if known is not None and known.size != model.weights_bytes(known.cutoff):
            source_cfg, cutoff = asset(f"cfg/{known.cfg}"), known.cutoff
    report = StartReport(spath, os.fspath(source_cfg) if source_cfg else None)
    if source_cfg is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialWeightsWarning)
            try:
                loaded = model.load_weights(p)
            except WeightsError as e:
                raise WeightsError(
                    f"{e}. If these weights were made for another cfg (another class count), give that cfg "
                    f"with --weights-cfg and the layers whose shapes match are loaded"
                ) from None
        report.partial_from = loaded.first_missing
        limit = loaded.first_missing if loaded.first_missing is not None else len(model.layers)
        report.loaded = [l.index for l in model.layers[:limit] if l.num_weights() and not l.dontload]
        model.reset_parameters(limit)
        report.seen = 0 if clear else int(model.seen)
        model.seen = report.seen
        return report
    from .model import Darknet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialWeightsWarning)
        source = Darknet(source_cfg, flavor=model.flavor)
        loaded = source.load_weights(p, cutoff=cutoff)
    report.partial_from = loaded.first_missing
    model.reset_parameters()
    _copy_matching(model, source, loaded.first_missing, report)
    model.header = WeightsHeader.for_flavor(model.flavor, seen=0)
    model.seen = report.seen = 0
    return report

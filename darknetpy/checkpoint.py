"""``.pt`` checkpoints that carry the cfg text and the weights header, so a ``.pt`` alone rebuilds
the model and converting back gives the original ``.weights`` bytes.

A checkpoint is a ``torch.save`` dict: ``format``, ``cfg_text``, ``cfg_path``, ``flavor``,
``header`` (major, minor, revision, seen, seen_bytes), ``layers_in_file`` (how many layers the
.weights file held: partial files round-trip too) and ``state_dict``.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch

from .cfg import parse_cfg_text
from .errors import DarknetError, WeightsError
from .model import Darknet
from .weights import WeightsHeader, WeightsWriter, atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "convert"]

FORMAT = "darknetpy-checkpoint-1"


def save_checkpoint(model: Darknet, path: "str | os.PathLike", layers_in_file: int | None = None) -> None:
    """Write ``model`` as a ``.pt`` with its cfg and header."""
    header = model.header or WeightsHeader.for_flavor(model.flavor, model.seen)
    payload = {
        "format": FORMAT,
        "cfg_text": model.cfg.text(),
        "cfg_path": model.cfg.path,
        "flavor": model.flavor.name,
        "header": [header.major, header.minor, header.revision, int(model.seen), header.seen_bytes],
        "layers_in_file": layers_in_file if layers_in_file is not None else len(model.layers),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue()))


def load_checkpoint(path: "str | os.PathLike") -> tuple[Darknet, int]:
    """Rebuild the model of a ``.pt`` written by :func:`save_checkpoint`; returns it and ``layers_in_file``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DarknetError(f"{path}: file not found") from None
    except Exception as err:  # not a torch file
        raise DarknetError(f"{path}: not a darknetpy .pt checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DarknetError(f"{path}: not a darknetpy .pt checkpoint (no '{FORMAT}' format tag)")
    cfg = parse_cfg_text(payload["cfg_text"], payload.get("cfg_path") or f"{path}:cfg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(cfg, flavor=payload["flavor"])
    model.load_state_dict(payload["state_dict"])
    major, minor, revision, seen, seen_bytes = payload["header"]
    model.header = WeightsHeader(major, minor, revision, seen, seen_bytes)
    model.seen = seen
    return model, int(payload["layers_in_file"])


def write_weights_file(model: Darknet, path: "str | os.PathLike", layers_in_file: int) -> None:
    """The .weights bytes of ``model`` with its own header and its first ``layers_in_file`` layers."""
    header = model.header or WeightsHeader.for_flavor(model.flavor, model.seen)
    header = WeightsHeader(header.major, header.minor, header.revision, int(model.seen), header.seen_bytes)
    writer = WeightsWriter()
    for layer in model.layers[:layers_in_file]:
        if not layer.dontsave:
            layer.write_weights(writer)
    atomic_write(Path(path), lambda f: (f.write(header.to_bytes()), writer.dump(f)))


def convert(source: "str | os.PathLike", target: "str | os.PathLike", cfg: "str | os.PathLike | None" = None) -> str:
    """``.weights`` (with ``cfg``) to ``.pt``, or ``.pt`` to ``.weights``; returns a one-line summary."""
    src, dst = Path(source), Path(target)
    if src.suffix == ".pt":
        model, layers_in_file = load_checkpoint(src)
        if dst.suffix == ".pt":
            raise DarknetError("convert .pt to .weights (or .weights to .pt), not .pt to .pt")
        write_weights_file(model, dst, layers_in_file)
        return f"{src} -> {dst}: {dst.stat().st_size:,} bytes"
    if cfg is None:
        raise DarknetError(f"{src}: converting a .weights file needs its cfg (--cfg model.cfg)")
    if dst.suffix != ".pt":
        raise WeightsError(f"{dst}: the target of a .weights conversion is a .pt file")
    model = Darknet(cfg, src)
    report = model.load_report
    layers_in_file = report.first_missing if report and report.first_missing is not None else len(model.layers)
    save_checkpoint(model, dst, layers_in_file)
    return f"{src} + {cfg} -> {dst}: {len(model.layers)} layers ({layers_in_file} in the file), flavour {model.flavor.name}"

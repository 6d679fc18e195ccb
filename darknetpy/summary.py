"""Darknet's layer table and the weights size of a cfg, computed without running the network.

Darknet prints this table while ``parse_network_cfg`` builds the network; ``summary --json`` gives
the same shapes as data: ``{"layers": [{"index", "type", "out_c", "out_h", "out_w"}], "weights_bytes"}``.
Shapes are Darknet's ``l.out_c/out_h/out_w`` (0×0×0 for layers that set none, such as softmax).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .cfg import CfgFile
from .flavor import FlavorSpec
from .model import Darknet

__all__ = ["shape_model", "summary_json", "summary_text"]


def shape_model(cfg: "str | os.PathLike | CfgFile", flavor: "str | FlavorSpec | None" = None, **kwargs: Any) -> Darknet:
    """Build ``cfg`` on the meta device: every shape and size, no memory for weights."""
    with torch.device("meta"):
        return Darknet(cfg, flavor=flavor, **kwargs)


def summary_json(model: Darknet) -> dict:
    """Shapes of every layer and the size of the .weights file."""
    return {
        "layers": [
            {"index": layer.index, "type": layer.section_type, "out_c": layer.out_shape[0], "out_h": layer.out_shape[1], "out_w": layer.out_shape[2]}
            for layer in model.layers
        ],
        "weights_bytes": model.weights_bytes(),
    }


def summary_text(model: Darknet) -> str:
    """Darknet's layer table: index, type, filters, size/stride, input -> output, BFLOPs."""
    lines = ["   layer   type            filters  size/strd(dil)       input                output"]
    total = 0.0
    for layer in model.layers:
        c, h, w = layer.in_shape
        oc, oh, ow = layer.out_shape
        filters, size = layer.describe()
        bf = layer.bflops()
        total += bf
        shapes = f"{w:4d} x{h:4d} x{c:4d} -> {ow:4d} x{oh:4d} x{oc:4d}"
        flops = f" {bf:7.3f} BF" if bf else ""
        lines.append(f"{layer.index:6d}   {layer.section_type:<15.15s} {filters:>7s}  {size:<18.18s} {shapes}{flops}")
    lines.append(f"Total BFLOPS {total:5.3f}")
    lines.append(f"Weights file: {model.weights_bytes():,} bytes ({model.flavor.title} flavour)")
    return "\n".join(lines)

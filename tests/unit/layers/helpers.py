"""Small builders shared by the layer tests."""
from __future__ import annotations

import warnings

import torch

from darknetpy import Darknet, parse_cfg_text


def net(body: str, width: int = 4, height: int = 4, channels: int = 1, flavor: str = "alexeyab", extra: str = "") -> Darknet:
    """A model from a cfg body (the sections after [net]), warnings silenced."""
    text = f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n{extra}\n{body}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(parse_cfg_text(text, "t.cfg"), flavor=flavor).eval().requires_grad_(False)


def ramp(*shape: int) -> torch.Tensor:
    """Deterministic values −n/2 … n/2 (negative ones test padding)."""
    n = 1
    for s in shape:
        n *= s
    return (torch.arange(n, dtype=torch.float32) - n / 2).reshape(shape) / 4


def roundtrip(model: Darknet, tmp_path) -> bytes:
    """Save, reload into a fresh copy of the cfg, save again; both files must be identical."""
    a, b = tmp_path / "a.weights", tmp_path / "b.weights"
    model.save_weights(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = Darknet(model.cfg, a, flavor=model.flavor)
    again.save_weights(b)
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size == model.weights_bytes()
    for x, y in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(x, y)
    return a.read_bytes()

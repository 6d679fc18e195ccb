"""AlexeyAB's [scale_channels] against src/scale_channels_layer.c:forward_scale_channels_layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, CfgError, Darknet, FlavorError, ShapeError, parse_cfg_text

pytestmark = pytest.mark.unit

HEAD = "[net]\nwidth=5\nheight=4\nchannels=3\n[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"
SE = HEAD + "[avgpool]\n[convolutional]\nfilters=6\nsize=1\nactivation=logistic\n"
WH = HEAD + "[convolutional]\nfilters=1\nsize=1\nactivation=logistic\n"


def build(text: str, flavor: str = "alexeyab") -> Darknet:
    model = Darknet(parse_cfg_text(text, "sc.cfg"), flavor=flavor)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(torch.randn(t.shape, generator=g))
    return model


def scale_channels_ref(inp: np.ndarray, frm: np.ndarray, batch, c, h, w, scale_wh) -> np.ndarray:
    """Literal forward loop (before activate_array)."""
    size = batch * c * w * h
    channel_size = w * h
    batch_size = c * w * h
    out = np.zeros(size, dtype=np.float32)
    for i in range(size):
        if scale_wh:
            input_index = i % channel_size + (i // batch_size) * channel_size
            out[i] = inp[input_index] * frm[i]
        else:
            out[i] = inp[i // channel_size] * frm[i]
    return out


def test_squeeze_excitation():
    model = build(SE + "[scale_channels]\nfrom=-3\n")
    layer = model.layers[3]
    assert (layer.scale_wh, layer.activation, layer.sources) == (0, "linear", (0,))
    assert layer.out_shape == (6, 4, 5) and layer.outputs == 120
    x = torch.randn(2, 3, 4, 5)
    outs = model.trace(x)
    expected = scale_channels_ref(outs[2].detach().reshape(-1).numpy(), outs[0].detach().reshape(-1).numpy(), 2, 6, 4, 5, 0)
    np.testing.assert_array_equal(outs[3].detach().reshape(-1).numpy(), expected)
    assert tuple(outs[3].shape) == (2, 6, 4, 5)


def test_scale_wh():
    model = build(WH + "[scale_channels]\nfrom=-2\nscale_wh=1\n")
    layer = model.layers[2]
    assert layer.out_shape == (6, 4, 5)
    x = torch.randn(2, 3, 4, 5)
    outs = model.trace(x)
    expected = scale_channels_ref(outs[1].detach().reshape(-1).numpy(), outs[0].detach().reshape(-1).numpy(), 2, 6, 4, 5, 1)
    np.testing.assert_array_equal(outs[2].detach().reshape(-1).numpy(), expected)


def test_activation_is_applied():
    model = build(SE + "[scale_channels]\nfrom=-3\nactivation=logistic\n")
    x = torch.randn(1, 3, 4, 5)
    outs = model.trace(x)
    raw = scale_channels_ref(outs[2].detach().reshape(-1).numpy(), outs[0].detach().reshape(-1).numpy(), 1, 6, 4, 5, 0)
    np.testing.assert_allclose(outs[3].detach().reshape(-1).numpy(), 1 / (1 + np.exp(-raw)), rtol=1e-6)


def test_gradient_reaches_both_inputs():
    model = build(SE + "[scale_channels]\nfrom=-3\n")
    x = torch.randn(1, 3, 4, 5, requires_grad=True)
    model(x).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


@pytest.mark.parametrize(
    "text, error, match",
    [
        (HEAD + "[convolutional]\nfilters=6\nsize=1\n[scale_channels]\nfrom=-2\n", ShapeError, "must be 1x1"),
        (SE.replace("filters=6\nsize=1", "filters=5\nsize=1") + "[scale_channels]\nfrom=-3\n", ShapeError, "channels"),
        (SE + "[scale_channels]\nfrom=-3\nscale_wh=1\n", ShapeError, "one channel"),
        (SE + "[scale_channels]\n", CfgError, "needs from="),
        (SE + "[scale_channels]\nfrom=-3,-2\n", BadValueError, "one layer"),
        (SE + "[scale_channels]\nfrom=9\n", ShapeError, "outside the layers"),
        (SE + "[scale_channels]\nfrom=-3\nactivation=mish\n", BadValueError, "zeros"),
    ],
)
def test_errors(text, error, match):
    with pytest.raises(error, match=match):
        build(text)


def test_alexeyab_only():
    with pytest.raises(FlavorError, match="scale_channels"):
        build(SE + "[scale_channels]\nfrom=-3\n", "pjreddie")

"""AlexeyAB's [sam] against src/sam_layer.c:forward_sam_layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, CfgError, Darknet, FlavorError, ShapeError, parse_cfg_text

pytestmark = pytest.mark.unit

BODY = (
    "[net]\nwidth=5\nheight=4\nchannels=3\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=1\nactivation=logistic\n"
)


def build(text: str, flavor: str = "alexeyab") -> Darknet:
    model = Darknet(parse_cfg_text(text, "sam.cfg"), flavor=flavor)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(torch.randn(t.shape, generator=g))
    return model


def sam_ref(inp: np.ndarray, frm: np.ndarray) -> np.ndarray:
    out = np.zeros_like(inp)
    for i in range(inp.size):  # l.output[i] = state.input[i] * from_output[i]
        out[i] = inp[i] * frm[i]
    return out


def test_forward():
    model = build(BODY + "[sam]\nfrom=-2\n")
    layer = model.layers[2]
    assert (layer.activation, layer.sources) == ("linear", (0,))
    assert layer.out_shape == (4, 4, 5) and layer.outputs == 80
    outs = model.trace(torch.randn(2, 3, 4, 5))
    expected = sam_ref(outs[1].detach().reshape(-1).numpy(), outs[0].detach().reshape(-1).numpy())
    np.testing.assert_array_equal(outs[2].detach().reshape(-1).numpy(), expected)
    assert tuple(outs[2].shape) == (2, 4, 4, 5)


def test_activation():
    model = build(BODY + "[sam]\nfrom=-2\nactivation=leaky\n")
    outs = model.trace(torch.randn(1, 3, 4, 5))
    raw = sam_ref(outs[1].detach().reshape(-1).numpy(), outs[0].detach().reshape(-1).numpy())
    np.testing.assert_allclose(outs[2].detach().reshape(-1).numpy(), np.where(raw > 0, raw, np.float32(0.1) * raw), rtol=1e-6)


@pytest.mark.parametrize(
    "text, error, match",
    [
        (BODY.replace("filters=4\nsize=1", "filters=2\nsize=1") + "[sam]\nfrom=-2\n", ShapeError, "same size and channels"),
        (BODY + "[maxpool]\nsize=2\nstride=2\n[sam]\nfrom=-2\n", ShapeError, "same size"),
        (BODY + "[sam]\n", CfgError, "needs from="),
        (BODY + "[sam]\nfrom=-2,-1\n", BadValueError, "one layer"),
        (BODY + "[sam]\nfrom=-2\nactivation=swish\n", BadValueError, "zeros"),
    ],
)
def test_errors(text, error, match):
    with pytest.raises(error, match=match):
        build(text)


def test_alexeyab_only():
    with pytest.raises(FlavorError, match="sam"):
        build(BODY + "[sam]\nfrom=-2\n", "pjreddie")

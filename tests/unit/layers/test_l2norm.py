"""pjreddie's [l2norm] against forward_l2norm_layer / l2normalize_cpu."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import Darknet, FlavorError, parse_cfg_text

pytestmark = pytest.mark.unit


def build(head: str, body: str = "[l2norm]\n", flavor: str = "pjreddie") -> Darknet:
    return Darknet(parse_cfg_text(head + body, "l2norm.cfg"), flavor=flavor)


def l2normalize_ref(x: np.ndarray, batch: int, filters: int, spatial: int) -> np.ndarray:
    x = x.astype(np.float32).copy()
    for b in range(batch):
        for i in range(spatial):
            s = np.float32(0)
            for f in range(filters):
                s = np.float32(s + np.float32(x[b * filters * spatial + f * spatial + i] ** 2))
            s = np.sqrt(s, dtype=np.float32)
            for f in range(filters):
                x[b * filters * spatial + f * spatial + i] /= s
    return x


def test_image_input():
    model = build("[net]\nwidth=3\nheight=2\nchannels=4\n")
    layer = model.layers[0]
    assert layer.out_shape == (4, 2, 3) and layer.outputs == 24
    x = torch.randn(2, 4, 2, 3)
    y = model(x)
    assert tuple(y.shape) == (2, 4, 2, 3)
    np.testing.assert_allclose(y.reshape(-1).numpy(), l2normalize_ref(x.reshape(-1).numpy(), 2, 4, 6), rtol=1e-6)
    assert torch.allclose((y * y).sum(dim=1), torch.ones(2, 2, 3))


def test_after_connected():
    model = build("[net]\ninputs=6\n[connected]\noutput=5\nactivation=linear\n")
    assert model.layers[1].out_shape == (5, 1, 1)
    outs = model.trace(torch.randn(3, 6))
    expected = l2normalize_ref(outs[0].detach().reshape(-1).numpy(), 3, 5, 1)
    np.testing.assert_allclose(outs[1].detach().reshape(-1).numpy(), expected, rtol=1e-6)


def test_no_image_shape_is_a_copy():
    # filters = out_c = 0: l2normalize_cpu's loops run zero times
    model = build("[net]\ninputs=6\n")
    assert model.layers[0].out_shape == (0, 0, 0)
    x = torch.randn(2, 6)
    assert torch.equal(model(x), x)


def test_zero_pixel_is_nan_as_in_darknet():
    y = build("[net]\nwidth=1\nheight=1\nchannels=3\n")(torch.zeros(1, 3, 1, 1))
    assert bool(torch.isnan(y).all())


def test_pjreddie_only():
    with pytest.raises(FlavorError, match="l2norm"):
        build("[net]\nwidth=1\nheight=1\nchannels=3\n", flavor="alexeyab")

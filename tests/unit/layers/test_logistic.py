"""pjreddie's [logistic] (LOGXENT) against forward_logistic_layer / logistic_x_ent_cpu."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import Darknet, FlavorError, parse_cfg_text

pytestmark = pytest.mark.unit

HEAD = "[net]\nwidth=3\nheight=2\nchannels=4\n"


def build(body: str = "[logistic]\n", flavor: str = "pjreddie", head: str = HEAD) -> Darknet:
    return Darknet(parse_cfg_text(head + body, "logistic.cfg"), flavor=flavor)


def test_shape_and_forward():
    model = build()
    layer = model.layers[0]
    assert layer.has_cost
    assert layer.out_shape == (4, 2, 3) and layer.outputs == 24
    x = torch.randn(2, 4, 2, 3) * 4
    y = model(x)
    assert tuple(y.shape) == (2, 4, 2, 3)
    np.testing.assert_allclose(y.numpy(), 1.0 / (1.0 + np.exp(-x.numpy().astype(np.float64))), rtol=1e-6)


def test_flat_input():
    model = build(head="[net]\ninputs=5\n")
    assert model.layers[0].out_shape == (0, 0, 0) and model.layers[0].outputs == 5
    x = torch.randn(3, 5)
    assert torch.allclose(model(x), torch.sigmoid(x))


def test_cost_and_delta():
    model = build()
    x = torch.randn(2, 4, 2, 3, requires_grad=True)
    p = model(x)
    t = (torch.rand(2, 4, 2, 3) > 0.5).float()
    cost = model.layers[0].loss(p, t)
    pn, tn = p.detach().numpy().astype(np.float64), t.numpy()
    expected = np.sum(-tn * np.log(pn) - (1 - tn) * np.log(1 - pn))  # logistic_x_ent_cpu, then sum_array
    assert float(cost.detach()) == pytest.approx(expected, rel=1e-5)
    cost.backward()
    # Darknet's delta is t - p and its backward adds it to the input's delta: -∂cost/∂x
    np.testing.assert_allclose(-x.grad.numpy(), tn - pn, rtol=1e-4, atol=1e-6)


def test_pjreddie_only():
    with pytest.raises(FlavorError, match="logistic"):
        build(flavor="alexeyab")

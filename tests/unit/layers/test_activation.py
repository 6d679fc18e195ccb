"""[activation] (both forks): copy the input, then activate_array."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, FlavorError, parse_cfg_text

pytestmark = pytest.mark.unit


def net(body: str, flavor: str, head: str = "[net]\nwidth=3\nheight=2\nchannels=4\n") -> Darknet:
    return Darknet(parse_cfg_text(head + body, "act.cfg"), flavor=flavor)


def leaky(x):
    return np.where(x > 0, x, np.float32(0.1) * x)


REFERENCES = {
    "linear": lambda x: x,
    "leaky": leaky,
    "relu": lambda x: x * (x > 0),
    "logistic": lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64))),
    "ramp": lambda x: x * (x > 0) + 0.1 * x,
    "relie": lambda x: np.where(x > 0, x, 0.01 * x),
    "hardtan": lambda x: np.clip(x, -1, 1),
    "loggy": lambda x: 2.0 / (1.0 + np.exp(-x.astype(np.float64))) - 1,
}


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_default_is_linear_and_shape_is_kept(flavor):
    model = net("[activation]\n", flavor)
    layer = model.layers[0]
    assert layer.activation == "linear"
    assert layer.out_shape == (4, 2, 3) and layer.outputs == 24
    x = torch.randn(2, 4, 2, 3)
    assert torch.equal(model(x), x)
    assert model.weights_bytes() == 20


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_forward_matches_activate(flavor, name):
    x = torch.randn(2, 4, 2, 3) * 3
    y = net(f"[activation]\nactivation={name}\n", flavor)(x)
    np.testing.assert_allclose(y.numpy(), REFERENCES[name](x.numpy()), rtol=1e-6, atol=1e-7)


def test_flat_input():
    head = "[net]\ninputs=7\n"
    model = net("[activation]\nactivation=relu\n", "pjreddie", head)
    layer = model.layers[0]
    assert layer.out_shape == (0, 0, 0) and layer.outputs == 7
    x = torch.randn(3, 7)
    assert torch.equal(model(x), torch.relu(x))


def test_alexeyab_activation_under_pjreddie():
    with pytest.raises(FlavorError, match="AlexeyAB"):
        net("[activation]\nactivation=swish\n", "pjreddie")


@pytest.mark.parametrize("name", ["mish", "swish", "hard_mish", "normalize_channels"])
def test_not_in_generic_activate_array(name):
    # Darknet's activate() has no case for these: it would output zeros
    with pytest.raises(BadValueError, match="zeros"):
        net(f"[activation]\nactivation={name}\n", "alexeyab")


def test_gelu_under_alexeyab():
    x = torch.randn(1, 4, 2, 3)
    y = net("[activation]\nactivation=gelu\n", "alexeyab")(x)
    ref = 0.5 * x * (1 + torch.tanh(0.797885 * x + 0.035677 * x**3))
    assert torch.allclose(y, ref)


def test_unknown_activation():
    with pytest.raises(BadValueError, match="unknown activation"):
        net("[activation]\nactivation=nope\n", "alexeyab")

"""AlexeyAB's [implicit] against src/representation_layer.c."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, FlavorError, parse_cfg_text

pytestmark = pytest.mark.unit

HEAD = "[net]\nwidth=4\nheight=4\nchannels=3\n"


def build(body: str, flavor: str = "alexeyab") -> Darknet:
    return Darknet(parse_cfg_text(HEAD + body, "implicit.cfg"), flavor=flavor)


def test_defaults():
    layer = build("[implicit]\n").layers[0]
    assert (layer.mean_init, layer.std_init, layer.filters, layer.atoms) == (0.0, 0.2, 128, 1)
    assert layer.out_shape == (128, 1, 1) and layer.outputs == 128
    assert layer.num_weights() == 128


def test_forward_broadcasts_weights_and_ignores_input():
    model = build("[implicit]\nfilters=3\natoms=2\n")
    layer = model.layers[0]
    assert layer.out_shape == (3, 2, 1)
    x = torch.randn(4, 3, 4, 4)
    y = model(x)
    assert tuple(y.shape) == (4, 3, 2, 1)
    w = layer.weights.detach().reshape(-1).numpy()
    flat = y.detach().reshape(-1).numpy()
    for i in range(flat.size):  # output[i] = weights[i % nweights]
        assert flat[i] == w[i % w.size]
    assert torch.equal(model(torch.zeros_like(x)), y)


def test_gradient_sums_over_the_batch():
    model = build("[implicit]\nfilters=2\n")
    model(torch.randn(3, 3, 4, 4)).sum().backward()
    assert torch.equal(model.layers[0].weights.grad, torch.full((2, 1, 1), 3.0))


def test_init_is_mean_plus_uniform_std():
    torch.manual_seed(0)
    w = build("[implicit]\nfilters=500\nmean=2\nstd=0.5\n").layers[0].weights.detach()
    assert float(w.min()) >= 1.5 and float(w.max()) <= 2.5
    assert abs(float(w.mean()) - 2.0) < 0.05


def test_weights_round_trip(tmp_path):
    text = "[implicit]\nfilters=5\natoms=3\n"
    model = build(text)
    with torch.no_grad():
        model.layers[0].weights.copy_(torch.randn(5, 3, 1))
    path = tmp_path / "implicit.weights"
    model.save_weights(path)
    assert path.stat().st_size == model.weights_bytes() == 20 + 4 * 15
    np.testing.assert_array_equal(np.fromfile(path, dtype="<f4", offset=20), model.layers[0].weights.detach().reshape(-1).numpy())
    fresh = build(text)
    fresh.load_weights(path)
    assert torch.equal(fresh.layers[0].weights, model.layers[0].weights)
    again = tmp_path / "again.weights"
    fresh.save_weights(again)
    assert again.read_bytes() == path.read_bytes()


def test_errors():
    with pytest.raises(BadValueError, match="at least 1"):
        build("[implicit]\nfilters=0\n")
    with pytest.raises(BadValueError, match="at least 1"):
        build("[implicit]\natoms=0\n")
    with pytest.raises(FlavorError, match="implicit"):
        build("[implicit]\n", "pjreddie")

"""[shortcut]: pjreddie's shortcut_cpu (one from, alpha/beta, size sampling) and AlexeyAB's
shortcut_multilayer_cpu (from list, weights, normalisation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import ShapeError

from .helpers import net, ramp, roundtrip

pytestmark = pytest.mark.unit


def shortcut_cpu(add, out, s1, s2):
    """pjreddie src/blas.c:shortcut_cpu on one image (add = from, out = prev copy)."""
    c1, h1, w1 = add.shape
    c2, h2, w2 = out.shape
    stride = max(1, w1 // w2)
    sample = max(1, w2 // w1)
    out = out.copy()
    for k in range(min(c1, c2)):
        for j in range(min(h1, h2)):
            for i in range(min(w1, w2)):
                out[k, j * sample, i * sample] = s1 * out[k, j * sample, i * sample] + s2 * add[k, j * stride, i * stride]
    return out


@pytest.mark.parametrize("body", [
    # from is bigger (stride 2) with more channels
    "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n[convolutional]\nfilters=2\nsize=1\nstride=2\nactivation=linear\n[shortcut]\nfrom=0\nalpha=0.5\nbeta=2\n",
    # from is smaller (sample 2) with fewer channels
    "[convolutional]\nfilters=1\nsize=1\nstride=2\nactivation=linear\n[upsample]\nstride=2\n[convolutional]\nfilters=3\nsize=1\nactivation=linear\n[shortcut]\nfrom=0\n",
])
def test_pjreddie_matches_shortcut_cpu(body):
    model = net(body, 4, 4, 2, flavor="pjreddie")
    torch.manual_seed(0)
    for layer in model.layers:
        for t in layer.weight_tensors():
            with torch.no_grad():
                t.normal_()
    outs = model.trace(ramp(1, 2, 4, 4))
    last = model.layers[-1]
    expected = shortcut_cpu(outs[last.sources[0]][0].numpy(), outs[-2][0].numpy(), last.alpha, last.beta)
    np.testing.assert_allclose(outs[-1][0].numpy(), expected, rtol=1e-6)


def test_alexeyab_adds_several_inputs_and_a_smaller_one_to_the_first_channels():
    body = "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n[convolutional]\nfilters=3\nsize=1\nactivation=linear\n[convolutional]\nfilters=3\nsize=1\nactivation=linear\n[shortcut]\nfrom=0,1\nactivation=leaky\n"
    model = net(body, 2, 2)
    outs = model.trace(ramp(1, 1, 2, 2))
    expected = outs[2].clone()
    expected[:, :2] += outs[0]
    expected += outs[1]
    expected = torch.nn.functional.leaky_relu(expected, 0.1)
    torch.testing.assert_close(outs[3], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind,norm", [("per_feature", "none"), ("per_channel", "relu"), ("per_channel", "softmax")])
def test_alexeyab_weighted_shortcut(tmp_path, kind, norm):
    body = f"[convolutional]\nfilters=2\nsize=1\nactivation=linear\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n[shortcut]\nfrom=0\nweights_type={kind}\nweights_normalization={norm}\n"
    model = net(body, 2, 2)
    layer = model.layers[2]
    with torch.no_grad():
        layer.weights.copy_(torch.linspace(-0.5, 1.5, layer.weights.numel()))
    outs = model.trace(ramp(1, 1, 2, 2))
    w = layer.weights.detach().view(2, -1).numpy()
    if norm == "relu":
        r = np.maximum(w, 0)
        w = r / (1e-4 + r.sum(0))
    elif norm == "softmax":
        e = np.exp(w - w.max(0))
        w = e / (1e-4 + e.sum(0))
    w0, w1 = (w[0].reshape(-1, 1, 1), w[1].reshape(-1, 1, 1))
    expected = outs[1][0].numpy() * w0 + outs[0][0].numpy() * w1
    np.testing.assert_allclose(outs[2][0].numpy(), expected, rtol=1e-6, atol=1e-7)
    assert layer.num_weights() == (2 if kind == "per_feature" else 4)
    roundtrip(model, tmp_path)


def test_alexeyab_refuses_inputs_of_another_size():
    with pytest.raises(ShapeError, match="AlexeyAB's shortcut needs the same size"):
        net("[convolutional]\nfilters=1\nsize=1\n[maxpool]\nsize=2\nstride=2\n[shortcut]\nfrom=0\n", 4, 4)

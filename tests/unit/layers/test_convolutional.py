"""[convolutional]: parse_convolutional, forward_convolutional_layer, load_convolutional_weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import ShapeError

from .helpers import net, ramp, roundtrip

pytestmark = pytest.mark.unit


def conv_loop(x, w, b, stride, pad):
    """Darknet's im2col + gemm written as loops (zero padding, integer output size)."""
    c, h, wd = x.shape
    n, _, k, _ = w.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, oh, ow), np.float64)
    for f in range(n):
        for i in range(oh):
            for j in range(ow):
                out[f, i, j] = (xp[:, i * stride : i * stride + k, j * stride : j * stride + k] * w[f]).sum() + b[f]
    return out


def test_defaults_are_darknets():
    layer = net("[convolutional]\n").layers[0]
    assert (layer.n, layer.size, layer.stride_x, layer.padding, layer.activation, layer.batch_normalize) == (1, 1, 1, 0, "logistic", 0)


@pytest.mark.parametrize("size,stride,pad,padding,expected", [(3, 1, 1, 0, 5), (3, 2, 1, 0, 3), (3, 1, 0, 0, 3), (3, 2, 0, 2, 4), (1, 1, 1, 0, 5)])
def test_output_size_formula_and_pad_overrides_padding(size, stride, pad, padding, expected):
    model = net(f"[convolutional]\nfilters=2\nsize={size}\nstride={stride}\npad={pad}\npadding={padding}\nactivation=linear\n", 5, 5)
    assert model.layers[0].out_shape == (2, expected, expected)


def test_forward_equals_the_literal_loop(tmp_path):
    model = net("[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=linear\n", 5, 5, 2)
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight.copy_(ramp(2, 2, 3, 3))
        layer.biases.copy_(torch.tensor([0.5, -1.0]))
    x = ramp(1, 2, 5, 5)
    expected = conv_loop(x[0].numpy(), layer.weight.detach().numpy(), layer.biases.detach().numpy(), 2, 1)
    np.testing.assert_allclose(model(x)[0].detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    roundtrip(model, tmp_path)


@pytest.mark.parametrize("flavor,expected", [("pjreddie", (2.0 - 1.0) / (np.sqrt(4.0) + 1e-6) * 3 + 0.5), ("alexeyab", (2.0 - 1.0) / np.sqrt(4.0 + 1e-5) * 3 + 0.5)])
def test_batch_norm_inference_uses_each_forks_epsilon(flavor, expected):
    model = net("[convolutional]\nfilters=1\nsize=1\nbatch_normalize=1\nactivation=linear\n", 1, 1, flavor=flavor)
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.biases.fill_(0.5)
        layer.bn.scales.fill_(3.0)
        layer.bn.rolling_mean.fill_(1.0)
        layer.bn.rolling_variance.fill_(4.0)
    out = model(torch.full((1, 1, 1, 1), 2.0))
    assert out[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("flavor,momentum", [("pjreddie", 0.01), ("alexeyab", 0.1)])
def test_batch_norm_training_uses_unbiased_variance_and_the_forks_momentum(flavor, momentum):
    model = net("[convolutional]\nfilters=1\nsize=1\nbatch_normalize=1\nactivation=linear\n", 2, 1, flavor=flavor).train()
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bn.rolling_variance.fill_(1.0)
    x = torch.tensor([[[[1.0, 3.0]]]])  # mean 2, unbiased variance 2 (biased would be 1)
    out = model.trace(x)[0]
    eps = 1e-6 if flavor == "pjreddie" else 1e-5
    denom = np.sqrt(2.0) + eps if flavor == "pjreddie" else np.sqrt(2.0 + eps)
    np.testing.assert_allclose(out.detach().numpy().ravel(), [-1 / denom, 1 / denom], rtol=1e-6)
    assert layer.bn.rolling_mean.item() == pytest.approx(momentum * 2.0)
    assert layer.bn.rolling_variance.item() == pytest.approx((1 - momentum) * 1.0 + momentum * 2.0)


def test_payload_order_biases_scales_mean_variance_weights(tmp_path):
    model = net("[convolutional]\nfilters=2\nsize=1\nbatch_normalize=1\nactivation=linear\n", 2, 2, 1)
    layer = model.layers[0]
    with torch.no_grad():
        layer.biases.copy_(torch.tensor([1.0, 2.0]))
        layer.bn.scales.copy_(torch.tensor([3.0, 4.0]))
        layer.bn.rolling_mean.copy_(torch.tensor([5.0, 6.0]))
        layer.bn.rolling_variance.copy_(torch.tensor([7.0, 8.0]))
        layer.weight.copy_(torch.tensor([9.0, 10.0]).view(2, 1, 1, 1))
    data = roundtrip(model, tmp_path)
    assert np.frombuffer(data[20:], "<f4").tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_stride_x_stride_y_dilation_and_groups():
    model = net("[convolutional]\nfilters=4\ngroups=2\nsize=3\nstride_x=2\nstride_y=1\ndilation=2\npad=1\nactivation=linear\n", 8, 8, 2)
    layer = model.layers[0]
    assert layer.out_shape == (4, 8, 4)
    assert tuple(layer.weight.shape) == (4, 1, 3, 3)
    assert model(torch.zeros(1, 2, 8, 8)).shape == (1, 4, 8, 4)


def test_groups_must_divide_channels():
    with pytest.raises(ShapeError, match="groups=3 must divide the input channels"):
        net("[convolutional]\nfilters=3\ngroups=3\nsize=1\n", channels=2)


def test_xnor_binarizes_weights_and_input():
    model = net("[convolutional]\nfilters=1\nsize=1\nxnor=1\nactivation=linear\n", 2, 1, 2)
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -1.5]).view(1, 2, 1, 1))  # mean |w| = 1 -> (+1, -1)
    x = torch.tensor([[[[0.3, -2.0]], [[-0.1, 0.0]]]])  # sign: (+1,-1) and (-1,-1)
    out = model(x)
    np.testing.assert_array_equal(out.detach().numpy().ravel(), [1 * 1 + (-1) * (-1), -1 * 1 + (-1) * (-1)])


def test_antialiasing_blurs_after_a_stride_one_conv():
    model = net("[convolutional]\nfilters=1\nsize=1\nstride=2\nantialiasing=1\nactivation=linear\n[maxpool]\nsize=1\nstride=1\n", 4, 4)
    layer = model.layers[0]
    assert layer.out_shape == (1, 4, 4)  # Darknet reports the stride-1 size
    assert model.layers[1].in_shape == (1, 2, 2)  # the next layer gets the blurred, strided one
    with torch.no_grad():
        layer.weight.fill_(1.0)
    out = model.trace(torch.ones(1, 1, 4, 4))[0]
    # 3x3 [1,2,1]²/16 blur, zero padded, at (0,0): the 2x2 in-image corner weights 4+2+2+1 = 9/16
    assert out.shape == (1, 1, 2, 2) and out[0, 0, 0, 0].item() == pytest.approx(9 / 16)


def test_share_index_shares_parameters_and_stores_nothing():
    model = net("[convolutional]\nfilters=1\nsize=1\nactivation=linear\n[convolutional]\nfilters=1\nsize=1\nactivation=linear\nshare_index=0\n")
    assert model.layers[1].weight is model.layers[0].weight
    assert model.layers[1].num_weights() == 0 and model.weights_bytes() == 20 + 8


def test_flipped_transposes_on_load(tmp_path):
    plain = net("[convolutional]\nfilters=2\nsize=1\nactivation=linear\n", 1, 1, 3)
    with torch.no_grad():
        plain.layers[0].weight.copy_(torch.arange(6.0).view(2, 3, 1, 1))
    path = tmp_path / "w.weights"
    plain.save_weights(path)
    flipped = net("[convolutional]\nfilters=2\nsize=1\nflipped=1\nactivation=linear\n", 1, 1, 3)
    flipped.load_weights(path)
    # the six stored floats are read as a (c·k·k=3) x (n=2) matrix and transposed
    np.testing.assert_array_equal(flipped.layers[0].weight.detach().view(2, 3).numpy(), np.arange(6.0).reshape(3, 2).T)


def test_pjreddie_numload_reads_only_the_first_filters(tmp_path):
    source = net("[convolutional]\nfilters=1\nsize=1\nactivation=linear\n", 1, 1, 2, flavor="pjreddie")
    with torch.no_grad():
        source.layers[0].weight.copy_(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1))
        source.layers[0].biases.fill_(7.0)
    path = tmp_path / "w.weights"
    source.save_weights(path)
    model = net("[convolutional]\nfilters=2\nsize=1\nnumload=1\nactivation=linear\n", 1, 1, 2, flavor="pjreddie")
    model.load_weights(path)
    assert model.layers[0].biases[0].item() == 7.0
    assert model.layers[0].weight[0].flatten().tolist() == [3.0, 4.0]


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_initialisation_scale(flavor):
    torch.manual_seed(0)
    layer = net("[convolutional]\nfilters=64\nsize=3\npad=1\nactivation=linear\n", 4, 4, 32, flavor=flavor).layers[0]
    scale = np.sqrt(2 / (32 * 9))
    w = layer.weight.detach().numpy()
    if flavor == "alexeyab":  # scale·U(-1,1)
        assert np.abs(w).max() <= scale and w.std() == pytest.approx(scale / np.sqrt(3), rel=0.05)
    else:  # scale·N(0,1)
        assert w.std() == pytest.approx(scale, rel=0.05) and np.abs(w).max() > scale

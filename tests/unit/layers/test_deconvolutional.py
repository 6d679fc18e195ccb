"""pjreddie's [deconvolutional] against forward_deconvolutional_layer (gemm + col2im_cpu)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, FlavorError, ShapeError, parse_cfg_text

pytestmark = pytest.mark.unit


def net(c: int, h: int, w: int, body: str, flavor: str = "pjreddie") -> Darknet:
    text = f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"
    return Darknet(parse_cfg_text(text, "deconv.cfg"), flavor=flavor)


def randomize(model: Darknet, seed: int = 0) -> Darknet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "variance" in name else torch.randn(t.shape, generator=g))
    return model


def deconv_ref(x, weights, biases, b, c, h, w, n, size, stride, pad):
    """Literal forward_deconvolutional_layer (no batch norm, linear)."""
    out_h = (h - 1) * stride + size - 2 * pad
    out_w = (w - 1) * stride + size - 2 * pad
    outputs = n * out_h * out_w
    out = np.zeros(b * outputs, dtype=np.float64)
    m, k, nn_ = size * size * n, c, h * w
    a = weights.reshape(k, m)  # gemm_cpu(1,0,m,n,k,1,a,lda=m,...): A is stored k x m
    for i in range(b):
        col = a.T.astype(np.float64) @ x[i * c * h * w : (i + 1) * c * h * w].reshape(k, nn_)
        col = col.reshape(-1)
        # col2im_cpu(col, out_c=n, out_h, out_w, size, stride, pad, output)
        height_col = (out_h + 2 * pad - size) // stride + 1
        width_col = (out_w + 2 * pad - size) // stride + 1
        for cc in range(n * size * size):
            w_off = cc % size
            h_off = (cc // size) % size
            c_im = cc // size // size
            for hh in range(height_col):
                for ww in range(width_col):
                    row = h_off + hh * stride - pad
                    colm = w_off + ww * stride - pad
                    if 0 <= row < out_h and 0 <= colm < out_w:
                        out[i * outputs + colm + out_w * (row + out_h * c_im)] += col[(cc * height_col + hh) * width_col + ww]
        out[i * outputs : (i + 1) * outputs] += np.repeat(biases, out_h * out_w)
    return out


def test_defaults_and_alias():
    for name in ("deconvolutional", "deconv"):
        layer = net(2, 3, 3, f"[{name}]\n").layers[0]
        assert layer.section_type == "deconvolutional"
        assert (layer.n, layer.size, layer.stride, layer.padding, layer.activation) == (1, 1, 1, 0, "logistic")
        assert layer.bn is None
        assert layer.out_shape == (1, 3, 3)


@pytest.mark.parametrize(
    "size, stride, pad, padding, out",
    [(4, 2, 0, 0, (10, 8)), (4, 2, 1, 0, (6, 4)), (3, 2, 0, 1, (7, 5)), (1, 1, 0, 0, (4, 3)), (2, 3, 0, 0, (11, 8))],
)
def test_shape_formula(size, stride, pad, padding, out):
    # (in - 1)*stride + size - 2*padding, with pad=1 meaning padding = size/2
    layer = net(2, 4, 3, f"[deconv]\nfilters=5\nsize={size}\nstride={stride}\npad={pad}\npadding={padding}\n").layers[0]
    assert layer.out_shape == (5, *out)
    assert layer.outputs == 5 * out[0] * out[1]


@pytest.mark.parametrize("size, stride, padding", [(3, 2, 1), (4, 2, 1), (2, 2, 0), (3, 1, 0), (1, 3, 0)])
def test_forward_matches_c_loop(size, stride, padding):
    c, h, w, n, b = 3, 3, 4, 2, 2
    model = randomize(net(c, h, w, f"[deconv]\nfilters={n}\nsize={size}\nstride={stride}\npadding={padding}\nactivation=linear\n"))
    layer = model.layers[0]
    x = torch.randn(b, c, h, w)
    y = model(x)
    expected = deconv_ref(
        x.reshape(-1).numpy(), layer.weight.detach().reshape(-1).numpy(), layer.biases.detach().numpy(),
        b, c, h, w, n, size, stride, padding,
    )
    np.testing.assert_allclose(y.detach().reshape(-1).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_and_activation():
    model = randomize(net(2, 3, 3, "[deconv]\nfilters=3\nsize=2\nstride=2\nbatch_normalize=1\nactivation=leaky\n")).eval()
    layer = model.layers[0]
    x = torch.randn(2, 2, 3, 3)
    raw = torch.nn.functional.conv_transpose2d(x, layer.weight, None, 2, 0)
    bn = layer.bn
    norm = (raw - bn.rolling_mean.view(1, -1, 1, 1)) / (torch.sqrt(bn.rolling_variance.view(1, -1, 1, 1)) + 1e-6)  # pjreddie CPU
    ref = norm * bn.scales.view(1, -1, 1, 1) + layer.biases.view(1, -1, 1, 1)
    ref = torch.where(ref > 0, ref, 0.1 * ref)
    assert torch.allclose(model(x), ref, atol=1e-6)


@pytest.mark.parametrize("bn", [0, 1])
def test_weights_round_trip(tmp_path, bn):
    c, n, size = 3, 4, 3
    text = f"[deconv]\nfilters={n}\nsize={size}\nstride=2\nbatch_normalize={bn}\n"
    model = randomize(net(c, 3, 3, text), seed=1)
    layer = model.layers[0]
    assert model.weights_bytes() == 20 + 4 * (n + 3 * n * bn + c * n * size * size)
    path = tmp_path / "deconv.weights"
    model.save_weights(path)
    assert path.stat().st_size == model.weights_bytes()
    body = np.fromfile(path, dtype="<f4", offset=20)
    np.testing.assert_array_equal(body[:n], layer.biases.detach().numpy())
    np.testing.assert_array_equal(body[-c * n * size * size :], layer.weight.detach().reshape(-1).numpy())  # [c][n][k][k]
    fresh = net(c, 3, 3, text)
    fresh.load_weights(path)
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    again = tmp_path / "again.weights"
    fresh.save_weights(again)
    assert again.read_bytes() == path.read_bytes()


def test_darknet_init():
    torch.manual_seed(0)
    layer = net(2, 4, 4, "[deconv]\nfilters=8\nsize=4\nstride=2\n").layers[0]
    # .02·N(0,1) scaled by out_w·out_h/(w·h) = 100/16
    std = float(layer.weight.detach().std())
    assert 0.02 * 6.25 * 0.7 < std < 0.02 * 6.25 * 1.3
    assert bool((layer.biases == 0).all())


def test_errors():
    with pytest.raises(FlavorError, match="pjreddie"):
        net(2, 3, 3, "[deconv]\n", "alexeyab")
    with pytest.raises(ShapeError, match="too large"):
        net(2, 1, 1, "[deconv]\nsize=1\npadding=1\n")
    with pytest.raises(BadValueError, match="numload"):
        net(2, 3, 3, "[deconv]\nnumload=1\n")
    with pytest.raises(BadValueError, match="at least 1"):
        net(2, 3, 3, "[deconv]\nstride=0\n")
    with pytest.raises(ShapeError, match="must output an image"):
        Darknet(parse_cfg_text("[net]\ninputs=8\n[deconv]\n"), flavor="pjreddie")

"""[local] against src/local_layer.c (im2col per location, one weight block per location)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, ShapeError, parse_cfg_text

pytestmark = pytest.mark.unit


def net(c: int, h: int, w: int, body: str, flavor: str = "pjreddie") -> Darknet:
    text = f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"
    return Darknet(parse_cfg_text(text, "local.cfg"), flavor=flavor)


def randomize(model: Darknet, seed: int = 0) -> Darknet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(torch.randn(t.shape, generator=g))
    return model


def cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    return -(-a // b) if a < 0 else a // b


def im2col_ref(x: np.ndarray, channels, height, width, ksize, stride, pad) -> np.ndarray:
    """Literal src/im2col.c:im2col_cpu (one image)."""
    height_col = cdiv(height + 2 * pad - ksize, stride) + 1
    width_col = cdiv(width + 2 * pad - ksize, stride) + 1
    col = np.zeros(channels * ksize * ksize * height_col * width_col, dtype=np.float32)
    for c in range(channels * ksize * ksize):
        w_offset = c % ksize
        h_offset = (c // ksize) % ksize
        c_im = c // ksize // ksize
        for hh in range(height_col):
            for ww in range(width_col):
                row = h_offset + hh * stride - pad
                colm = w_offset + ww * stride - pad
                v = 0.0 if (row < 0 or colm < 0 or row >= height or colm >= width) else x[colm + width * (row + height * c_im)]
                col[(c * height_col + hh) * width_col + ww] = v
    return col


def local_ref(x, weights, biases, b, c, h, w, n, size, stride, pad, out_h, out_w):
    """Literal forward_local_layer before the activation."""
    locations = out_h * out_w
    k = size * size * c
    outputs = n * locations
    out = np.zeros(b * outputs, dtype=np.float64)
    for i in range(b):
        out[i * outputs : (i + 1) * outputs] = biases
        col = im2col_ref(x[i * c * h * w : (i + 1) * c * h * w], c, h, w, size, stride, pad)
        for j in range(locations):
            a = weights[j * k * n : (j + 1) * k * n].reshape(n, k)  # gemm(0,0,m=n,n=1,k, a lda=k)
            bcol = col[j::locations][:k]  # b + j with ldb = locations
            out[i * outputs + j : (i + 1) * outputs : locations] += a.astype(np.float64) @ bcol
    return out


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_defaults(flavor):
    model = net(2, 4, 4, "[local]\n", flavor)
    layer = model.layers[0]
    assert (layer.n, layer.size, layer.stride, layer.pad, layer.activation) == (1, 1, 1, 0, "logistic")
    assert layer.out_shape == (1, 4, 4)


@pytest.mark.parametrize(
    "h, w, size, stride, pad, out",
    [(7, 6, 3, 1, 1, (7, 6)), (7, 6, 3, 2, 1, (4, 3)), (7, 6, 3, 1, 0, (5, 4)), (8, 8, 2, 2, 0, (4, 4)), (9, 9, 5, 2, 2, (5, 5))],
)
def test_shape_formula(h, w, size, stride, pad, out):
    # local_out_height: (h - (pad ? 1 : size))/stride + 1
    layer = net(2, h, w, f"[local]\nfilters=3\nsize={size}\nstride={stride}\npad={pad}\n").layers[0]
    assert layer.out_shape == (3, *out)
    assert layer.outputs == 3 * out[0] * out[1]


@pytest.mark.parametrize("size, stride, pad", [(3, 1, 1), (3, 2, 1), (2, 1, 0), (1, 1, 0), (5, 2, 2)])
def test_forward_matches_c_loop(size, stride, pad):
    c, h, w, n, b = 2, 6, 5, 3, 2
    model = randomize(net(c, h, w, f"[local]\nfilters={n}\nsize={size}\nstride={stride}\npad={pad}\nactivation=linear\n"))
    layer = model.layers[0]
    _, out_h, out_w = layer.out_shape
    x = torch.randn(b, c, h, w)
    y = model(x)
    expected = local_ref(
        x.reshape(-1).numpy(), layer.weights.detach().reshape(-1).numpy(), layer.biases.detach().reshape(-1).numpy(),
        b, c, h, w, n, size, stride, pad, out_h, out_w,
    )
    np.testing.assert_allclose(y.detach().reshape(-1).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_window_past_the_image_reads_zeros():
    # (2 - 3)/2 + 1 = 1 in C: the only window hangs over the bottom/right edge, where im2col reads 0
    c, n, b = 2, 3, 2
    model = randomize(net(c, 2, 2, f"[local]\nfilters={n}\nsize=3\nstride=2\nactivation=linear\n"))
    layer = model.layers[0]
    assert layer.out_shape == (n, 1, 1)
    x = torch.randn(b, c, 2, 2)
    expected = local_ref(
        x.reshape(-1).numpy(), layer.weights.detach().reshape(-1).numpy(), layer.biases.detach().reshape(-1).numpy(),
        b, c, 2, 2, n, 3, 2, 0, 1, 1,
    )
    np.testing.assert_allclose(model(x).detach().reshape(-1).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_activation_is_applied():
    model = randomize(net(1, 4, 4, "[local]\nfilters=2\nsize=3\npad=1\nactivation=leaky\n"))
    x = torch.randn(1, 1, 4, 4)
    layer = model.layers[0]
    layer.activation = "linear"
    raw = model(x)
    layer.activation = "leaky"
    assert torch.allclose(model(x), torch.where(raw > 0, raw, 0.1 * raw))


def test_weights_round_trip(tmp_path):
    c, h, w, n, size = 3, 5, 4, 2, 3
    text = f"[local]\nfilters={n}\nsize={size}\nstride=1\npad=1\nactivation=leaky\n"
    model = randomize(net(c, h, w, text), seed=3)
    layer = model.layers[0]
    locations = h * w
    assert model.weights_bytes() == 20 + 4 * (n * locations + locations * n * c * size * size)
    path = tmp_path / "local.weights"
    model.save_weights(path)
    assert path.stat().st_size == model.weights_bytes()
    body = np.fromfile(path, dtype="<f4", offset=20)
    np.testing.assert_array_equal(body[: n * locations], layer.biases.detach().reshape(-1).numpy())
    np.testing.assert_array_equal(body[n * locations :], layer.weights.detach().reshape(-1).numpy())
    fresh = net(c, h, w, text)
    fresh.load_weights(path)
    assert torch.equal(fresh.layers[0].weights, layer.weights)
    assert torch.equal(fresh.layers[0].biases, layer.biases)
    again = tmp_path / "again.weights"
    fresh.save_weights(again)
    assert again.read_bytes() == path.read_bytes()


def test_darknet_init_fills_the_first_location_only():
    c, size = 2, 3
    torch.manual_seed(0)
    layer = net(c, 5, 5, f"[local]\nfilters=4\nsize={size}\npad=1\n").layers[0]
    bound = math.sqrt(2.0 / (size * size * c))
    first = layer.weights[0]
    assert bool((first.abs() <= bound).all()) and bool((first != 0).any())
    assert bool((layer.weights[1:] == 0).all())
    assert bool((layer.biases == 0).all())


def test_errors():
    with pytest.raises(ShapeError, match="im2col"):
        net(2, 6, 6, "[local]\nsize=5\npad=1\n")  # out 6x6, im2col 4x4
    with pytest.raises(ShapeError, match="im2col"):
        net(2, 6, 6, "[local]\nsize=1\npad=1\n")  # Darknet would write past its buffer
    with pytest.raises(ShapeError, match="too small"):
        net(2, 2, 2, "[local]\nsize=3\n")
    with pytest.raises(BadValueError, match="at least 1"):
        net(2, 4, 4, "[local]\nstride=0\n")
    with pytest.raises(BadValueError, match="outputs? zeros|would output zeros"):
        net(2, 4, 4, "[local]\nactivation=mish\n", "alexeyab")
    with pytest.raises(ShapeError, match="must output an image"):
        Darknet(parse_cfg_text("[net]\ninputs=8\n[local]\n"), flavor="pjreddie")

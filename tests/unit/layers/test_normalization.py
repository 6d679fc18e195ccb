"""[lrn] / [normalization] against src/normalization_layer.c:forward_normalization_layer (CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, ShapeError, parse_cfg_text

pytestmark = pytest.mark.unit


def net(c: int, h: int, w: int, body: str, flavor: str = "pjreddie") -> Darknet:
    text = f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"
    return Darknet(parse_cfg_text(text, "lrn.cfg"), flavor=flavor)


def lrn_ref(x: np.ndarray, batch, c, h, w, size, alpha, beta, kappa) -> np.ndarray:
    """Literal forward_normalization_layer in float32 (pow in double, as C's pow)."""
    f = np.float32
    alpha, beta, kappa = f(alpha), f(beta), f(kappa)
    x = x.astype(f).reshape(batch, c, h * w)
    norms = np.zeros_like(x)
    for b in range(batch):
        squared = np.array([np.array([f(v) * f(v) for v in plane], dtype=f) for plane in x[b]])
        norms[b, 0] = kappa
        for k in range(size // 2):
            norms[b, 0] = (norms[b, 0] + (alpha * squared[k]).astype(f)).astype(f)
        for k in range(1, c):
            norms[b, k] = norms[b, k - 1]
            prev = k - ((size - 1) // 2) - 1
            nxt = k + size // 2
            if prev >= 0:
                norms[b, k] = (norms[b, k] + ((-alpha) * squared[prev]).astype(f)).astype(f)
            if nxt < c:
                norms[b, k] = (norms[b, k] + (alpha * squared[nxt]).astype(f)).astype(f)
    out = np.power(norms.astype(np.float64), -np.float64(beta)).astype(f)
    return (out * x).reshape(-1)


@pytest.mark.parametrize("name", ["lrn", "normalization"])
@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_defaults(name, flavor):
    layer = net(6, 2, 2, f"[{name}]\n", flavor).layers[0]
    assert layer.section_type == "normalization"
    assert layer.size == 5
    assert layer.alpha == pytest.approx(0.0001) and layer.beta == pytest.approx(0.75) and layer.kappa == 1.0
    assert layer.out_shape == (6, 2, 2) and layer.outputs == 24


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_forward_matches_c_loop(size):
    c, h, w, b = 7, 2, 3, 2
    body = f"[lrn]\nsize={size}\nalpha=0.05\nbeta=0.75\nkappa=2\n"
    x = torch.randn(b, c, h, w) * 2
    y = net(c, h, w, body)(x)
    expected = lrn_ref(x.reshape(-1).numpy(), b, c, h, w, size, 0.05, 0.75, 2)
    np.testing.assert_array_equal(y.reshape(-1).numpy(), expected)  # operation by operation, bit for bit


def test_channel_half_size_is_never_added():
    # the running sum starts with channels 0..size/2-1 only, then subtracts channel size/2 later:
    # norms = kappa + alpha·(window sum − sq[size/2])
    c, size, alpha, kappa = 6, 3, 0.1, 3.0
    x = torch.randn(1, c, 1, 1).double()
    layer = net(c, 1, 1, f"[lrn]\nsize={size}\nalpha={alpha}\nkappa={kappa}\n").layers[0]
    norms = layer.norms(x).reshape(-1)
    sq = (x * x).reshape(-1)
    for k in range(c):
        window = sq[max(0, k - (size - 1) // 2) : min(c, k + size // 2 + 1)].sum()
        textbook = kappa + layer.alpha * window
        assert float(norms[k]) == pytest.approx(float(textbook - layer.alpha * sq[size // 2]), rel=1e-6)


def test_errors():
    with pytest.raises(ShapeError, match="exceeds"):
        net(2, 2, 2, "[lrn]\nsize=7\n")
    with pytest.raises(BadValueError, match="at least 1"):
        net(2, 2, 2, "[lrn]\nsize=0\n")
    with pytest.raises(ShapeError, match="must output an image"):
        Darknet(parse_cfg_text("[net]\ninputs=8\n[lrn]\n"), flavor="pjreddie")


def test_no_weights():
    assert net(6, 2, 2, "[lrn]\n").weights_bytes() == 20

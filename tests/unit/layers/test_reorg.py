"""[reorg] (pjreddie REORG / AlexeyAB REORG_OLD) and AlexeyAB's [reorg3d] against Darknet's C loops."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, FlavorError, ShapeError, parse_cfg_text
from darknetpy.cfg import UnusedKeyWarning

pytestmark = pytest.mark.unit


def net(c: int, h: int, w: int, body: str, flavor: str = "pjreddie") -> Darknet:
    text = f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"
    return Darknet(parse_cfg_text(text, "reorg.cfg"), flavor=flavor)


def reorg_cpu_ref(x: np.ndarray, w: int, h: int, c: int, batch: int, stride: int, forward: int) -> np.ndarray:
    """Literal src/blas.c:reorg_cpu on flat arrays."""
    out = np.zeros_like(x)
    out_c = c // (stride * stride)
    for b in range(batch):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2 = k % out_c
                    offset = k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    if forward:
                        out[out_index] = x[in_index]
                    else:
                        out[in_index] = x[out_index]
    return out


def flatten_ref(x: np.ndarray, size: int, layers: int, batch: int, forward: int) -> np.ndarray:
    """Literal src/blas.c:flatten."""
    swap = np.zeros_like(x)
    for b in range(batch):
        for c in range(layers):
            for i in range(size):
                i1 = b * layers * size + c * size + i
                i2 = b * layers * size + i * layers + c
                if forward:
                    swap[i2] = x[i1]
                else:
                    swap[i1] = x[i2]
    return swap


def run(model: Darknet, x: torch.Tensor) -> np.ndarray:
    return model(x).detach().reshape(-1).numpy()


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_reorg_shape_and_forward(flavor):
    c, h, w, s, batch = 8, 4, 6, 2, 2
    model = net(c, h, w, "[reorg]\nstride=2\n", flavor)
    layer = model.layers[0]
    assert layer.section_type == "reorg"
    assert layer.out_shape == (c * s * s, h // s, w // s)
    assert layer.outputs == c * h * w
    x = torch.randn(batch, c, h, w)
    y = model(x)
    assert tuple(y.shape) == (batch, 32, 2, 3)
    expected = reorg_cpu_ref(x.reshape(-1).numpy(), w, h, c, batch, s, 0)
    np.testing.assert_array_equal(y.reshape(-1).numpy(), expected)


def test_reorg_is_not_a_space_to_depth():
    # §3.4: pjreddie's reorg reads the input's memory as (C/s², H·s, W·s)
    c, h, w, s = 4, 2, 2, 2
    x = torch.arange(c * h * w, dtype=torch.float32).reshape(1, c, h, w)
    y = net(c, h, w, "[reorg]\nstride=2\n")(x)
    s2d = x.view(1, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).reshape(1, -1, h // s, w // s)
    assert not torch.equal(y, s2d)
    viewed = x.view(1, c // (s * s), h, s, w, s).permute(0, 3, 5, 1, 2, 4).reshape(1, -1, h // s, w // s)
    assert torch.equal(y, viewed)


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_reorg_reverse(flavor):
    c, h, w, s, batch = 8, 3, 2, 2, 2
    model = net(c, h, w, "[reorg]\nstride=2\nreverse=1\n", flavor)
    layer = model.layers[0]
    assert layer.out_shape == (c // 4, h * s, w * s)
    x = torch.randn(batch, c, h, w)
    expected = reorg_cpu_ref(x.reshape(-1).numpy(), w, h, c, batch, s, 1)
    np.testing.assert_array_equal(run(model, x), expected)


def test_reorg_reverse_is_a_depth_to_space():
    # reorg_cpu(input, w, h, c, s, forward=1): out[c2, j·s+dy, i·s+dx] = in[(dy·s+dx)·(c/s²)+c2, j, i]
    c, h, w, s = 8, 2, 3, 2
    x = torch.randn(2, c, h, w)
    y = net(c, h, w, "[reorg]\nstride=2\nreverse=1\n")(x)
    oc = c // (s * s)
    for dy in range(s):
        for dx in range(s):
            assert torch.equal(y[:, :, dy::s, dx::s], x[:, (dy * s + dx) * oc : (dy * s + dx + 1) * oc])


def test_reverse_after_reorg_is_not_the_identity():
    # each layer calls reorg_cpu with its own input's w, h, c, so the two views differ
    x = torch.randn(1, 8, 4, 4)
    y = net(8, 4, 4, "[reorg]\nstride=2\n[reorg]\nstride=2\nreverse=1\n")(x)
    expected = reorg_cpu_ref(reorg_cpu_ref(x.reshape(-1).numpy(), 4, 4, 8, 1, 2, 0), 2, 2, 32, 1, 2, 1)
    np.testing.assert_array_equal(y.reshape(-1).numpy(), expected)
    assert not torch.equal(y, x)


def test_pjreddie_flatten():
    c, h, w, batch = 3, 2, 4, 2
    x = torch.randn(batch, c, h, w)
    model = net(c, h, w, "[reorg]\nflatten=1\n")
    assert model.layers[0].out_shape == (c, h, w)
    np.testing.assert_array_equal(run(model, x), flatten_ref(x.reshape(-1).numpy(), h * w, c, batch, 1))
    model = net(c, h, w, "[reorg]\nflatten=1\nreverse=1\n")
    np.testing.assert_array_equal(run(model, x), flatten_ref(x.reshape(-1).numpy(), h * w, c, batch, 0))


def test_pjreddie_extra():
    c, h, w = 1, 3, 3
    model = net(c, h, w, "[reorg]\nextra=1\nstride=1\n")
    layer = model.layers[0]
    assert layer.out_shape == (0, 0, 0)
    assert layer.outputs == c * h * w + 1
    x = torch.randn(2, c, h, w)
    y = model(x)
    assert tuple(y.shape) == (2, 10)
    assert torch.equal(y[:, :9], x.reshape(2, 9))
    assert torch.equal(y[:, 9], torch.zeros(2))


def test_alexeyab_ignores_flatten_and_extra():
    with pytest.warns(UnusedKeyWarning, match="pjreddie"):
        model = net(4, 2, 2, "[reorg]\nstride=2\nextra=3\nflatten=1\n", "alexeyab")
    layer = model.layers[0]
    assert (layer.flatten, layer.extra) == (0, 0)
    assert layer.out_shape == (16, 1, 1)


def test_default_stride_is_one():
    for flavor in ("pjreddie", "alexeyab"):
        model = net(3, 2, 2, "[reorg]\n", flavor)
        assert model.layers[0].stride == 1
        x = torch.randn(1, 3, 2, 2)
        assert torch.equal(model(x), x)


def test_reorg3d_space_to_depth():
    c, h, w, s, batch = 3, 4, 6, 2, 2
    model = net(c, h, w, "[reorg3d]\nstride=2\n", "alexeyab")
    layer = model.layers[0]
    assert layer.section_type == "reorg3d"
    assert layer.out_shape == (c * 4, h // 2, w // 2)
    x = torch.randn(batch, c, h, w)
    y = model(x)
    # forward_reorg_layer: reorg_cpu with the output's w, h, c and forward=0
    expected = reorg_cpu_ref(x.reshape(-1).numpy(), w // s, h // s, c * s * s, batch, s, 0)
    np.testing.assert_array_equal(y.reshape(-1).numpy(), expected)
    # Y[(dy·s+dx)·C + c, j, i] = X[c, j·s+dy, i·s+dx]
    for dy in range(s):
        for dx in range(s):
            assert torch.equal(y[:, (dy * s + dx) * c : (dy * s + dx + 1) * c], x[:, :, dy::s, dx::s])


def test_reorg3d_reverse():
    c, h, w, s, batch = 16, 2, 3, 2, 2
    model = net(c, h, w, "[reorg3d]\nstride=2\nreverse=1\n", "alexeyab")
    layer = model.layers[0]
    assert layer.out_shape == (c // 4, h * s, w * s)
    x = torch.randn(batch, c, h, w)
    expected = reorg_cpu_ref(x.reshape(-1).numpy(), w * s, h * s, c // 4, batch, s, 1)
    np.testing.assert_array_equal(run(model, x), expected)


def test_reorg3d_is_alexeyab_only():
    with pytest.raises(FlavorError, match="reorg3d"):
        net(4, 2, 2, "[reorg3d]\nstride=2\n", "pjreddie")


@pytest.mark.parametrize(
    "body, flavor, error, match",
    [
        ("[reorg]\nstride=0\n", "pjreddie", BadValueError, "stride"),
        ("[reorg]\nstride=2\n", "pjreddie", ShapeError, "multiple of stride² = 4"),  # 6 channels
        ("[reorg]\nstride=2\nreverse=1\n", "alexeyab", ShapeError, "multiple of stride²"),
        ("[reorg]\nflatten=1\nextra=1\n", "pjreddie", BadValueError, "flatten and extra"),
        ("[reorg]\nextra=-2\n", "pjreddie", BadValueError, "negative"),
        ("[reorg3d]\nstride=2\nreverse=1\n", "alexeyab", ShapeError, "stride⁴"),
    ],
)
def test_errors(body, flavor, error, match):
    with pytest.raises(error, match=match):
        net(6, 4, 4, body, flavor)


def test_size_must_divide():
    with pytest.raises(ShapeError, match="multiple of stride=2"):
        net(4, 5, 4, "[reorg]\nstride=2\n")
    with pytest.raises(ShapeError, match="multiple of stride=2"):
        net(4, 4, 3, "[reorg3d]\nstride=2\n", "alexeyab")
    with pytest.raises(ShapeError, match="flatten"):
        net(4, 5, 4, "[reorg]\nstride=2\nflatten=1\n")


def test_needs_an_image():
    text = "[net]\ninputs=16\n[reorg]\nstride=2\n"
    with pytest.raises(ShapeError, match="must output an image"):
        Darknet(parse_cfg_text(text), flavor="pjreddie")


def test_yolov2_passthrough_shape():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = net(64, 38, 38, "[reorg]\nstride=2\n", "alexeyab")
    assert model.layers[0].out_shape == (256, 19, 19)
    assert model.weights_bytes() == 20

"""[crop] against src/crop_layer.c:forward_crop_layer (CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy import BadValueError, Darknet, ShapeError, parse_cfg_text

pytestmark = pytest.mark.unit


def net(c: int, h: int, w: int, body: str, flavor: str = "alexeyab") -> Darknet:
    text = f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n{body}"
    return Darknet(parse_cfg_text(text, "crop.cfg"), flavor=flavor)


def crop_ref(x: np.ndarray, c, h, w, batch, out_h, out_w, dh, dw, flip, noadjust) -> np.ndarray:
    """Literal forward_crop_layer loop (with dh, dw, flip given)."""
    scale, trans = (1.0, 0.0) if noadjust else (2.0, -1.0)
    out = np.zeros(batch * c * out_h * out_w, dtype=np.float32)
    count = 0
    for b in range(batch):
        for k in range(c):
            for i in range(out_h):
                for j in range(out_w):
                    col = w - dw - j - 1 if flip else j + dw
                    row = i + dh
                    index = col + w * (row + h * (k + c * b))
                    out[count] = x[index] * np.float32(scale) + np.float32(trans)
                    count += 1
    return out


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
def test_defaults(flavor):
    model = net(3, 5, 5, "[crop]\n", flavor).eval()
    layer = model.layers[0]
    assert (layer.crop_height, layer.crop_width, layer.flip, layer.noadjust) == (1, 1, 0, 0)
    assert (layer.angle, layer.saturation, layer.exposure, layer.shift) == (0.0, 1.0, 1.0, 0.0)
    assert layer.out_shape == (3, 1, 1)
    x = torch.rand(1, 3, 5, 5)
    assert torch.equal(model(x).reshape(-1), x[0, :, 2, 2] * 2 - 1)


@pytest.mark.parametrize("flavor", ["pjreddie", "alexeyab"])
@pytest.mark.parametrize("noadjust", [0, 1])
def test_inference_centre_crop(flavor, noadjust):
    c, h, w, oh, ow, batch = 2, 7, 6, 4, 3, 2
    model = net(c, h, w, f"[crop]\ncrop_height={oh}\ncrop_width={ow}\nflip=1\nnoadjust={noadjust}\n", flavor).eval()
    layer = model.layers[0]
    assert layer.out_shape == (c, oh, ow) and layer.outputs == c * oh * ow
    x = torch.rand(batch, c, h, w)
    y = model(x)
    assert tuple(y.shape) == (batch, c, oh, ow)
    expected = crop_ref(x.reshape(-1).numpy(), c, h, w, batch, oh, ow, (h - oh) // 2, (w - ow) // 2, False, noadjust)
    np.testing.assert_array_equal(y.reshape(-1).numpy(), expected)


def test_training_random_crop_and_flip():
    c, h, w, oh, ow, batch = 2, 6, 7, 3, 4, 2
    model = net(c, h, w, f"[crop]\ncrop_height={oh}\ncrop_width={ow}\nflip=1\n").train()
    layer = model.layers[0]
    x = torch.rand(batch, c, h, w)
    flips = set()
    for seed in range(12):
        layer.generator = torch.Generator().manual_seed(seed)
        y = model(x)
        g = torch.Generator().manual_seed(seed)  # the draws in Darknet's order: flip, dh, dw
        flip = bool(torch.randint(2, (1,), generator=g).item())
        dh = int(torch.randint(h - oh + 1, (1,), generator=g).item())
        dw = int(torch.randint(w - ow + 1, (1,), generator=g).item())
        flips.add(flip)
        expected = crop_ref(x.reshape(-1).numpy(), c, h, w, batch, oh, ow, dh, dw, flip, 0)
        np.testing.assert_array_equal(y.reshape(-1).numpy(), expected)
    assert flips == {False, True}


def test_training_without_flip_never_mirrors():
    model = net(1, 4, 4, "[crop]\ncrop_height=4\ncrop_width=4\n").train()
    x = torch.rand(1, 1, 4, 4)
    for _ in range(5):
        assert torch.equal(model(x), x * 2 - 1)


def test_errors():
    with pytest.raises(ShapeError, match="larger than the input"):
        net(3, 4, 4, "[crop]\ncrop_height=5\ncrop_width=2\n")
    with pytest.raises(ShapeError, match="larger than the input"):
        net(3, 4, 4, "[crop]\ncrop_height=2\ncrop_width=5\n")
    with pytest.raises(BadValueError, match="at least 1"):
        net(3, 4, 4, "[crop]\ncrop_height=0\n")
    with pytest.raises(ShapeError, match="must output an image"):
        Darknet(parse_cfg_text("[net]\ninputs=8\n[crop]\n"), flavor="pjreddie")


def test_no_weights():
    model = net(3, 4, 4, "[crop]\ncrop_height=2\ncrop_width=2\n")
    assert model.weights_bytes() == 20

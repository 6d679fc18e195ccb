"""[maxpool] and [local_avgpool]: make_maxpool_layer, forward_maxpool_layer (-inf padding, right/bottom extra)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import net, ramp

pytestmark = pytest.mark.unit


def pool_loop(x, size, stride, padding, average=False):
    """forward_maxpool_layer / forward_local_avgpool_layer as loops."""
    c, h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = -(padding // 2)
    out = np.zeros((c, oh, ow), np.float32)
    for k in range(c):
        for i in range(oh):
            for j in range(ow):
                vals = [x[k, y, xx] for y in range(off + i * stride, off + i * stride + size) for xx in range(off + j * stride, off + j * stride + size) if 0 <= y < h and 0 <= xx < w]
                out[k, i, j] = np.mean(vals) if average else max(vals + [-np.inf])
    return out


@pytest.mark.parametrize("size,stride,padding", [(2, 2, None), (2, 1, None), (3, 2, None), (5, 1, None), (3, 1, 0), (2, 2, 3)])
def test_forward_equals_the_loop_with_minus_infinity_padding(size, stride, padding):
    body = f"[maxpool]\nsize={size}\nstride={stride}\n" + (f"padding={padding}\n" if padding is not None else "")
    model = net(body, 5, 5, 2)
    x = -ramp(1, 2, 5, 5).abs() - 1  # all negative: zero padding would show up as 0
    expected = pool_loop(x[0].numpy(), size, stride, size - 1 if padding is None else padding)
    out = model(x)
    assert tuple(out.shape[1:]) == model.layers[0].out_shape == expected.shape
    np.testing.assert_array_equal(out[0].numpy(), expected)


def test_defaults_stride_one_size_equal_stride():
    layer = net("[maxpool]\n", 4, 4).layers[0]
    assert (layer.size, layer.stride_x, layer.padding, layer.out_shape) == (1, 1, 0, (1, 4, 4))


def test_yolov3_tiny_size_2_stride_1_keeps_the_size_padding_right_only():
    model = net("[maxpool]\nsize=2\nstride=1\n", 3, 3)
    x = torch.tensor([[[[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]]])
    np.testing.assert_array_equal(model(x)[0, 0].numpy(), [[5, 6, 6], [8, 9, 9], [8, 9, 9]])


def test_maxpool_depth_takes_the_max_across_channel_groups():
    model = net("[maxpool]\nmaxpool_depth=1\nout_channels=2\n", 1, 1, 5)
    x = torch.tensor([1.0, 7, 3, 4, 5]).view(1, 5, 1, 1)  # groups: {0,2,4} and {1,3}
    assert model.layers[0].out_shape == (2, 1, 1)
    assert model(x).flatten().tolist() == [5.0, 7.0]


def test_local_avgpool_averages_only_taps_inside_the_image():
    model = net("[local_avgpool]\nsize=3\nstride=2\n", 5, 5, 1)
    x = ramp(1, 1, 5, 5)
    np.testing.assert_allclose(model(x)[0].numpy(), pool_loop(x[0].numpy(), 3, 2, 2, average=True), rtol=1e-6)


def test_stride_x_and_stride_y():
    assert net("[maxpool]\nsize=2\nstride_x=2\nstride_y=1\n", 4, 4).layers[0].out_shape == (1, 4, 2)

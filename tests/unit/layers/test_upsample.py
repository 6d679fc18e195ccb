"""[upsample]: make_upsample_layer, upsample_cpu (nearest ×stride, scale; negative stride sums)."""
from __future__ import annotations

import numpy as np
import pytest

from .helpers import net, ramp

pytestmark = pytest.mark.unit


def test_nearest_times_stride_times_scale():
    model = net("[upsample]\nstride=2\nscale=0.5\n", 2, 2)
    x = ramp(1, 1, 2, 2)
    assert model.layers[0].out_shape == (1, 4, 4)
    np.testing.assert_array_equal(model(x)[0, 0].numpy(), 0.5 * np.kron(x[0, 0].numpy(), np.ones((2, 2))))


def test_negative_stride_sums_each_block():
    model = net("[upsample]\nstride=-2\n", 4, 4)
    x = ramp(1, 1, 4, 4)
    assert model.layers[0].out_shape == (1, 2, 2)
    expected = x[0, 0].numpy().reshape(2, 2, 2, 2).sum(axis=(1, 3))
    np.testing.assert_allclose(model(x)[0, 0].numpy(), expected, rtol=1e-6)


def test_default_stride_is_two():
    assert net("[upsample]\n", 3, 2).layers[0].out_shape == (1, 4, 6)

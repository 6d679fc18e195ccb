"""[batchnorm] and the shared batch-norm maths (sequential float32 sums for parity)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from darknetpy.layers.batchnorm import sequential_statistics

from .helpers import net, roundtrip

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("flavor,arrays", [("pjreddie", 3), ("alexeyab", 4)])
def test_stored_arrays_per_fork(tmp_path, flavor, arrays):
    model = net("[batchnorm]\n", 2, 2, 3, flavor=flavor)
    with torch.no_grad():
        model.layers[0].bn.rolling_variance.fill_(1.0)
    assert model.layers[0].num_weights() == arrays * 3
    roundtrip(model, tmp_path)


def test_sequential_statistics_equal_a_float32_running_sum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, 70, generator=g) * 5 + 100  # a large mean makes float32 sums drift
    mean, var = sequential_statistics(x)
    a = x.transpose(0, 1).reshape(3, -1).numpy()
    for c in range(3):
        s = np.float32(0)
        for v in a[c]:
            s = np.float32(s + v)
        m = np.float32(s * np.float32(1 / a.shape[1]))
        assert mean[c].item() == m
    exact = a.astype(np.float64).var(axis=1, ddof=1)
    np.testing.assert_allclose(var.numpy(), exact, rtol=1e-3)


def test_sequential_sums_keep_the_exact_gradient():
    model = net("[batchnorm]\n", 4, 4, 2).train()
    model.emulate_darknet_sums()
    x = torch.randn(2, 2, 4, 4, requires_grad=True)
    model(x).square().sum().backward()
    plain = net("[batchnorm]\n", 4, 4, 2).train()
    x2 = x.detach().clone().requires_grad_(True)
    plain(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)

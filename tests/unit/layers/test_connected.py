"""[connected]: y = x·Wᵀ (+b or batch norm), flattened in C,H,W order; BN arrays after the weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import net, ramp, roundtrip

pytestmark = pytest.mark.unit


def test_forward_on_the_chw_flattened_input(tmp_path):
    model = net("[connected]\noutput=3\nactivation=linear\n", 2, 2, 2)
    block = model.layers[0].block
    with torch.no_grad():
        block.weight.copy_(ramp(3, 8))
        block.biases.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = ramp(1, 2, 2, 2)
    expected = x.reshape(1, 8).numpy() @ block.weight.detach().numpy().T + [1, 2, 3]
    np.testing.assert_allclose(model(x).reshape(1, 3).numpy(), expected, rtol=1e-6)
    assert model.layers[0].out_shape == (3, 1, 1)
    roundtrip(model, tmp_path)


def test_batch_norm_arrays_come_after_the_weights(tmp_path):
    model = net("[connected]\noutput=1\nbatch_normalize=1\nactivation=linear\n", 1, 1, 1)
    block = model.layers[0].block
    with torch.no_grad():
        block.biases.fill_(1)
        block.weight.fill_(2)
        block.bn.scales.fill_(3)
        block.bn.rolling_mean.fill_(4)
        block.bn.rolling_variance.fill_(5)
    data = roundtrip(model, tmp_path)
    assert np.frombuffer(data[20:], "<f4").tolist() == [1, 2, 3, 4, 5]

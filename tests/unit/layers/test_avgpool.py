"""[avgpool]: a global mean, C×1×1."""
from __future__ import annotations

import pytest

from .helpers import net, ramp

pytestmark = pytest.mark.unit


def test_global_average():
    model = net("[avgpool]\n", 3, 2, 2)
    x = ramp(1, 2, 2, 3)
    assert model.layers[0].out_shape == (2, 1, 1)
    assert model(x).flatten().tolist() == pytest.approx(x.mean(dim=(2, 3)).flatten().tolist())

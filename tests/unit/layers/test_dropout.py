"""[dropout]: identity at inference, inverted dropout in training, per-fork default probability."""
from __future__ import annotations

import pytest
import torch

from .helpers import net

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("flavor,p", [("pjreddie", 0.5), ("alexeyab", 0.2)])
def test_default_probability(flavor, p):
    assert net("[dropout]\n", flavor=flavor).layers[0].p == p


def test_identity_in_eval_and_scaled_mask_in_training():
    model = net("[dropout]\nprobability=0.25\n", 64, 64)
    x = torch.ones(1, 1, 64, 64)
    assert torch.equal(model(x), x)
    torch.manual_seed(0)
    out = model.train()(x)
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))
    assert 0.2 < (out == 0).float().mean().item() < 0.3
    model.set_dropout(0.0)
    assert torch.equal(model(x), x)
    model.set_dropout(None)
    assert model.layers[0].p == 0.25

"""pjreddie [iseg]: logistic on the class channels, raw ids, shape checks."""
from __future__ import annotations

import pytest
import torch

from darknetpy import ShapeError

from .helpers import net, ramp

pytestmark = pytest.mark.unit


def test_logistic_on_classes_only():
    model = net("[iseg]\nclasses=2\nids=3\n", 2, 2, 5, flavor="pjreddie")
    x = ramp(1, 5, 2, 2)
    out = model(x)[0]
    torch.testing.assert_close(out[:, :2], torch.sigmoid(x[:, :2]))
    torch.testing.assert_close(out[:, 2:], x[:, 2:])


def test_channels_must_be_classes_plus_ids():
    with pytest.raises(ShapeError, match="needs classes\\+ids = 52"):
        net("[iseg]\n", 2, 2, 5, flavor="pjreddie")

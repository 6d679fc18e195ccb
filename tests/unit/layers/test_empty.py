"""AlexeyAB's [empty] / [silence]: the previous layer's output, unchanged."""
from __future__ import annotations

import pytest
import torch

from darknetpy import Darknet, FlavorError, parse_cfg_text

pytestmark = pytest.mark.unit

HEAD = "[net]\nwidth=4\nheight=3\nchannels=2\n[convolutional]\nfilters=5\nsize=3\npad=1\nactivation=leaky\n"


@pytest.mark.parametrize("name", ["empty", "silence"])
def test_identity(name):
    model = Darknet(parse_cfg_text(HEAD + f"[{name}]\n"), flavor="alexeyab")
    layer = model.layers[1]
    assert layer.section_type == "empty"
    assert layer.out_shape == (5, 3, 4) and layer.outputs == 60
    outs = model.trace(torch.randn(2, 2, 3, 4))
    assert torch.equal(outs[1], outs[0])
    assert model.weights_bytes() == 20 + 4 * (5 + 5 * 2 * 9)


def test_flat_input_is_kept():
    model = Darknet(parse_cfg_text("[net]\ninputs=6\n[empty]\n"), flavor="alexeyab")
    assert model.layers[0].out_shape == (0, 0, 0) and model.layers[0].outputs == 6
    x = torch.randn(2, 6)
    assert torch.equal(model(x), x)


@pytest.mark.parametrize("name", ["empty", "silence"])
def test_alexeyab_only(name):
    with pytest.raises(FlavorError, match=name):
        Darknet(parse_cfg_text(HEAD + f"[{name}]\n"), flavor="pjreddie")

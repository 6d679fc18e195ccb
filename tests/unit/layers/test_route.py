"""[route]: parse_route, forward_route_layer (flat copies; AlexeyAB groups)."""
from __future__ import annotations

import pytest
import torch

from .helpers import net, ramp

pytestmark = pytest.mark.unit

TWO = "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"


def test_concatenates_in_listed_order_with_relative_and_absolute_indices():
    model = net(TWO + "[route]\nlayers=-1,0\n", 2, 2)
    outs = model.trace(ramp(1, 1, 2, 2))
    assert model.layers[2].out_shape == (6, 2, 2)
    assert torch.equal(outs[2], torch.cat([outs[1], outs[0]], dim=1))


def test_groups_take_the_group_id_chunk_of_each_input():
    model = net(TWO + "[route]\nlayers=1\ngroups=2\ngroup_id=1\n", 2, 2)
    outs = model.trace(ramp(1, 1, 2, 2))
    assert model.layers[2].out_shape == (2, 2, 2)
    assert torch.equal(outs[2], outs[1][:, 2:])


def test_pjreddie_has_no_groups_and_says_so():
    from darknetpy import Darknet, parse_cfg_text
    from darknetpy.cfg import UnusedKeyWarning

    text = "[net]\nwidth=2\nheight=2\nchannels=1\n" + TWO + "[route]\nlayers=1\ngroups=2\n"
    with pytest.warns(UnusedKeyWarning, match=r"<cfg>: 1 key that only AlexeyAB's darknet reads is ignored, .*: groups \(line 15\)\. The flavour is pjreddie's, given"):
        model = Darknet(parse_cfg_text(text), flavor="pjreddie")
    assert model.layers[2].out_shape == (4, 2, 2)


def test_inputs_of_different_sizes_give_0x0x0_and_a_flat_concatenation():
    model = net(TWO + "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=0,2\n", 2, 2)
    layer = model.layers[3]
    assert layer.out_shape == (0, 0, 0) and layer.outputs == 2 * 4 + 4 * 1
    outs = model.trace(ramp(1, 1, 2, 2))
    assert torch.equal(outs[3], torch.cat([outs[0].flatten(1), outs[2].flatten(1)], dim=1))

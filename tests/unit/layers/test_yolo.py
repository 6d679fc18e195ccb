"""[yolo]: parse_yolo defaults per fork, forward_yolo_layer activations, scale_x_y, new_coords."""
from __future__ import annotations

import pytest
import torch

from .helpers import net

pytestmark = pytest.mark.unit

HEAD = "[convolutional]\nfilters={f}\nsize=1\nactivation=linear\n[yolo]\nclasses=2\nnum=3\nmask=0,1\nanchors=10,13,16,30,33,23\n"


def build(extra: str = "", flavor: str = "alexeyab"):
    return net(HEAD.format(f=14) + extra, 2, 2, 3, flavor=flavor)


@pytest.mark.parametrize("flavor,max_boxes", [("pjreddie", 90), ("alexeyab", 200)])
def test_defaults(flavor, max_boxes):
    opts = build(flavor=flavor).layers[1].options
    assert (opts.max_boxes, opts.ignore_thresh, opts.truth_thresh, opts.iou_normalizer, opts.scale_x_y) == (max_boxes, 0.5, 1.0, 0.75, 1.0)
    assert opts.mask == (0, 1) and opts.anchor(2) == (33, 23)


def test_logistic_on_xy_obj_classes_raw_wh():
    model = build()
    x = torch.randn(1, 3, 2, 2)
    outs = model.trace(x)
    z = outs[0].view(1, 2, 7, 2, 2)
    y = outs[1].view(1, 2, 7, 2, 2)
    torch.testing.assert_close(y[:, :, :2], torch.sigmoid(z[:, :, :2]))
    torch.testing.assert_close(y[:, :, 2:4], z[:, :, 2:4])
    torch.testing.assert_close(y[:, :, 4:], torch.sigmoid(z[:, :, 4:]))


def test_scale_x_y_applies_in_alexeyab_only():
    x = torch.randn(1, 3, 2, 2)
    ab = build("scale_x_y=1.2\n")
    outs = ab.trace(x)
    z = outs[0].view(1, 2, 7, 2, 2)
    torch.testing.assert_close(outs[1].view(1, 2, 7, 2, 2)[:, :, :2], 1.2 * torch.sigmoid(z[:, :, :2]) - 0.1)
    pj = build("scale_x_y=1.2\n", flavor="pjreddie")
    pj.load_state_dict(ab.state_dict())
    torch.testing.assert_close(pj.trace(x)[1].view(1, 2, 7, 2, 2)[:, :, :2], torch.sigmoid(z[:, :, :2]))


def test_new_coords_applies_no_logistic():
    model = build("new_coords=1\nscale_x_y=2.0\n")
    outs = model.trace(torch.rand(1, 3, 2, 2))
    z, y = outs[0].view(1, 2, 7, 2, 2), outs[1].view(1, 2, 7, 2, 2)
    torch.testing.assert_close(y[:, :, :2], 2 * z[:, :, :2] - 0.5)
    torch.testing.assert_close(y[:, :, 2:], z[:, :, 2:])


def test_model_returns_the_heads():
    out = build()(torch.zeros(1, 3, 2, 2))
    assert isinstance(out, list) and len(out) == 1 and out[0].shape == (1, 14, 2, 2)

"""[contrastive] (AlexeyAB): keys, what it takes from its [yolo] layer, shapes, output (zeros on the CPU), errors."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from darknetpy.cfg import parse_cfg_text
from darknetpy.errors import BadValueError, FlavorError, ShapeError
from darknetpy.flavor import get_flavor
from darknetpy.layers.contrastive import Contrastive
from darknetpy.model import Darknet, build_layers
from darknetpy.summary import shape_model, summary_json
from tests.conftest import ZOO

BODY = (
    "[net]\nwidth=4\nheight=4\nchannels=3\ntime_steps=1\n"
    "[convolutional]\nfilters=8\nsize=1\nactivation=linear\n"  # 0: embeddings, 2 anchors x 4
    "[convolutional]\nfilters=12\nsize=1\nactivation=linear\n"  # 1: 2 x (5 + 1)
    "[yolo]\nmask=0,1\nnum=2\nclasses=1\nanchors=1,1, 2,2\nembedding_layer=-2\n"  # 2
    "[route]\nlayers=-3\n"  # 3: the embeddings again
)


def build(text: str, flavor: str = "alexeyab"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, layers = build_layers(parse_cfg_text(text), get_flavor(flavor))
    return layers


def test_defaults_and_what_comes_from_yolo():
    layer = build(BODY + "[contrastive]\nyolo_layer=-2\n")[-1]
    assert isinstance(layer, Contrastive) and layer.has_cost and not layer.is_head
    o = layer.options
    assert (o.yolo_layer, o.n, o.classes, o.cfg_classes, o.embedding_size, o.max_boxes) == (2, 2, 1, 1000, 4, 200)
    assert (o.temperature, o.cls_normalizer, o.max_delta, o.contrastive_neg_max, o.steps, o.detection) == (
        1.0, 1.0, float("inf"), 3, 1, 1)
    assert layer.out_shape == (0, 0, 0)  # make_contrastive_layer never sets out_c/out_h/out_w
    assert layer.outputs == 8 * 4 * 4
    assert layer.weight_tensors() == [] and layer.num_weights() == 0


def test_keys_are_read():
    text = BODY + "[contrastive]\nyolo_layer=2\nclasses=7\ntemperature=0.5\ncls_normalizer=2\nmax_delta=10\ncontrastive_neg_max=5\n"
    o = build(text)[-1].options
    assert (o.yolo_layer, o.cfg_classes, o.classes, o.temperature, o.cls_normalizer, o.max_delta, o.contrastive_neg_max) == (
        2, 7, 1, 0.5, 2.0, 10.0, 5)


def test_forward_is_zeros_on_cpu():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg_text(BODY + "[contrastive]\nyolo_layer=-2\n"), flavor="alexeyab")
    x = torch.rand(2, 3, 4, 4)
    trace = model.trace(x)
    assert trace[-1].shape == (2, 128) and not trace[-1].any()
    heads = model(x)  # the [yolo] output is what the network returns
    assert len(heads) == 1 and heads[0].shape == (2, 12, 4, 4)


@pytest.mark.parametrize("value,match", [
    (None, "needs yolo_layer"),
    ("-1", "must point to a \\[yolo\\]"),
    ("0", "layer 0"),
    ("-4", "layer 0"),
    ("9", "outside"),
])
def test_yolo_layer_errors(value, match):
    text = BODY + "[contrastive]\n" + (f"yolo_layer={value}\n" if value is not None else "")
    with pytest.raises(ShapeError, match=match):
        build(text)


def test_embedding_must_fit():
    text = BODY.replace("[route]\nlayers=-3\n", "[convolutional]\nfilters=1\nsize=1\n") + "[contrastive]\nyolo_layer=-2\n"
    with pytest.raises(ShapeError, match="fewer than one"):
        build(text)


def test_temperature_zero():
    with pytest.raises(BadValueError):
        build(BODY + "[contrastive]\nyolo_layer=-2\ntemperature=0\n")


def test_pjreddie_does_not_know_it():
    with pytest.raises(FlavorError):
        build(BODY + "[contrastive]\nyolo_layer=-2\n", "pjreddie")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_zoo_cfg_shapes():
    name = "alexeyab/yolov4-tiny_contrastive.cfg"
    expected = json.loads((ZOO / "expected.json").read_text())[name]
    got = summary_json(shape_model(ZOO / name, "alexeyab"))
    layers = [[l["type"], l["out_c"], l["out_h"], l["out_w"]] for l in got["layers"]]
    assert layers == expected["layers"]
    assert got["weights_bytes"] == expected["weights_bytes"]

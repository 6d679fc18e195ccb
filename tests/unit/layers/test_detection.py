"""[detection] (YOLOv1): keys per fork, shapes, forward_detection_layer (copy + per-cell softmax), errors."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

from darknetpy.cfg import UnusedKeyWarning, parse_cfg_text
from darknetpy.errors import BadValueError, ShapeError, UnknownSectionError
from darknetpy.flavor import get_flavor
from darknetpy.layers.detection import Detection
from darknetpy.model import build_layers
from darknetpy.summary import shape_model, summary_json
from tests.conftest import ZOO, zoo_expected, zoo_flavor

FLT_MAX = np.float32(3.4028234663852886e38)
SECTION = "detection"
FLAVORS = ("pjreddie", "alexeyab")
F32 = np.float32


def build(text: str, flavor: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, layers = build_layers(parse_cfg_text(text), get_flavor(flavor))
    return layers


def det_cfg(side=2, num=2, coords=4, classes=3, extra="", inputs=None) -> str:
    c = inputs if inputs is not None else side * side * ((1 + coords) * num + classes)
    return (
        f"[net]\nwidth=1\nheight=1\nchannels={c}\n"
        f"[detection]\nside={side}\nnum={num}\ncoords={coords}\nclasses={classes}\n{extra}"
    )


def c_softmax(inp, n, out, off):
    """blas.c softmax with temp 1 and stride 1 (in place on one array is fine)."""
    vals = [inp[off + i] for i in range(n)]
    largest = -FLT_MAX
    for v in vals:
        if v > largest:
            largest = v
    total = F32(0)
    es = []
    for v in vals:
        e = F32(math.exp(float(F32(v - largest))))
        total = F32(total + e)
        es.append(e)
    for i, e in enumerate(es):
        out[off + i] = F32(e / total)


def forward_detection_layer(x, side, classes, softmax):
    """detection_layer.c forward_detection_layer: memcpy, then softmax over each cell's classes."""
    batch, inputs = x.shape
    out = x.reshape(-1).astype(F32).copy()
    if softmax:
        for b in range(batch):
            index = b * inputs
            for i in range(side * side):
                c_softmax(out, classes, out, index + i * classes)
    return out.reshape(batch, inputs)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_defaults_and_shape(flavor):
    (layer,) = build("[net]\nwidth=1\nheight=1\nchannels=147\n[detection]\n", flavor)  # 7²·((1+1)·1+1)
    assert isinstance(layer, Detection) and layer.is_head and layer.has_cost
    o = layer.options
    assert (o.coords, o.classes, o.num, o.side, o.rescore, o.softmax, o.sqrt, o.forced) == (1, 1, 1, 7, 0, 0, 0, 0)
    assert (o.coord_scale, o.object_scale, o.noobject_scale, o.class_scale, o.jitter) == (1, 1, 1, 1, 0.2)
    assert o.max_boxes == (90 if flavor == "pjreddie" else 200)
    assert o.truths == 49 * 3
    assert layer.out_shape == (0, 0, 0)  # make_detection_layer never sets out_c/out_h/out_w
    assert layer.outputs == 147
    assert layer.weight_tensors() == [] and layer.num_weights() == 0


def test_fork_keys():
    (pj,) = build(det_cfg(extra="max=10\nrandom=1\nreorg=1\n"), "pjreddie")  # PJ reads these too
    assert (pj.options.max_boxes, pj.options.random, pj.options.reorg) == (10, 1.0, 1)
    (ab,) = build(det_cfg(extra="random=0.5\nresize=1.5\n"), "alexeyab")
    assert (ab.options.random, ab.options.resize) == (0.5, 1.5)
    with pytest.warns(UnusedKeyWarning, match="AlexeyAB"):
        build_layers(parse_cfg_text(det_cfg(extra="resize=1.5\n")), get_flavor("pjreddie"))


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("softmax", [0, 1])
def test_forward_matches_c(flavor, softmax):
    (layer,) = build(det_cfg(extra=f"softmax={softmax}\n"), flavor)
    x = torch.randn(2, 52, 1, 1, generator=torch.Generator().manual_seed(7)) * 3
    y = layer(x, [])
    assert y.shape == (2, 52)
    expected = forward_detection_layer(x.numpy().reshape(2, 52), 2, 3, softmax)
    np.testing.assert_allclose(y.numpy(), expected, rtol=2e-6, atol=1e-7)
    # the confidences and boxes after the class block are never touched
    torch.testing.assert_close(y[:, 12:], x.reshape(2, 52)[:, 12:], rtol=0, atol=0)


def test_gradients():
    (layer,) = build(det_cfg(extra="softmax=1\n"), "pjreddie")
    x = torch.randn(1, 52, 1, 1, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t, []), (x,))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_inputs_must_match(flavor):
    with pytest.raises(ShapeError, match="side²"):
        build(det_cfg(inputs=51), flavor)


@pytest.mark.parametrize("key", ["side", "num"])
def test_counts_must_be_positive(key):
    with pytest.raises(BadValueError) as err:
        build(f"[net]\nwidth=1\nheight=1\nchannels=4\n[detection]\n{key}=0\n", "pjreddie")
    assert err.value.key == key


# ---- the zoo: every cfg Darknet accepts with this section has Darknet's shapes and sizes ---------
def zoo_cases(section: str) -> list[str]:
    pattern = re.compile(rf"^\s*\[{re.escape(section)}\]", re.M)
    return [
        name
        for name, e in zoo_expected().items()
        if e["darknet"] == "ok" and pattern.search((ZOO / name).read_text(errors="replace"))
    ]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", zoo_cases(SECTION))
def test_zoo_cfg_matches_darknet(name):
    expected = zoo_expected()[name]
    try:
        model = shape_model(ZOO / name, zoo_flavor(name))
    except UnknownSectionError as err:  # a section of another family, not built yet
        pytest.skip(f"needs a section not implemented yet: {err}")
    got = summary_json(model)
    assert [[l["type"], l["out_c"], l["out_h"], l["out_w"]] for l in got["layers"]] == expected["layers"]
    assert got["weights_bytes"] == expected["weights_bytes"]

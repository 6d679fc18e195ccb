"""[cost]: keys per fork, shapes, l.output at inference (zeros) and with a truth (l2/l1/smooth_l1 loops)."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from darknetpy.cfg import CfgWarning, UnusedKeyWarning, parse_cfg_text
from darknetpy.errors import UnknownSectionError
from darknetpy.flavor import get_flavor
from darknetpy.layers.cost import Cost, SECRET_NUM
from darknetpy.model import Darknet, build_layers
from darknetpy.summary import shape_model, summary_json
from tests.conftest import ZOO, zoo_expected, zoo_flavor


SECTION = "cost"
FLAVORS = ("pjreddie", "alexeyab")
NET = "[net]\nwidth=3\nheight=2\nchannels=2\n"


def build(text: str, flavor: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, layers = build_layers(parse_cfg_text(NET + text), get_flavor(flavor))
    return layers


# ---- literal numpy transcriptions of src/blas.c and forward_cost_layer ---------------------
def l2_cpu(pred, truth):
    diff = (truth - pred).astype(np.float32)
    return diff * diff, diff


def l1_cpu(pred, truth):
    diff = (truth - pred).astype(np.float32)
    return np.abs(diff), np.where(diff > 0, 1, -1).astype(np.float32)


def smooth_l1_cpu(pred, truth, pj):
    n = pred.size
    error = np.zeros(n, np.float32)
    delta = np.zeros(n, np.float32)
    p, t = pred.reshape(-1), truth.reshape(-1)
    for i in range(n):
        diff = np.float32(t[i] - p[i])
        abs_val = abs(diff)
        if abs_val < 1:
            error[i] = diff * diff
            delta[i] = diff
        else:
            error[i] = 2 * abs_val - 1
            if pj:  # pjreddie blas.c: delta[i] = (diff < 0) ? 1 : -1;
                delta[i] = 1 if diff < 0 else -1
            else:  # AlexeyAB blas.c: delta[i] = (diff > 0) ? 1 : -1;
                delta[i] = 1 if diff > 0 else -1
    return error.reshape(pred.shape), delta.reshape(pred.shape)


def forward_cost_layer(kind, pred, truth, pj):
    pred = pred.copy()
    if kind == "masked":
        pred[truth == SECRET_NUM] = SECRET_NUM
    if kind == "smooth":
        out, delta = smooth_l1_cpu(pred, truth, pj)
    elif kind == "L1" and pj:
        out, delta = l1_cpu(pred, truth)
    else:
        out, delta = l2_cpu(pred, truth)
    return out, delta, out.sum()


# ---- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
def test_defaults_and_shape(flavor):
    (layer,) = build("[cost]\n", flavor)
    assert isinstance(layer, Cost)
    o = layer.options
    assert (o.type, o.scale, o.ratio) == ("sse", 1.0, 0.0)
    assert o.smooth_l1_reversed == (flavor == "pjreddie")
    assert layer.out_shape == (0, 0, 0) and layer.outputs == 12
    assert layer.has_cost and not layer.is_head
    assert layer.weight_tensors() == [] and layer.num_weights() == 0


def test_pjreddie_only_keys():
    (pj,) = build("[cost]\nnoobj=.5\nthresh=.2\nscale=3\nratio=.1\n", "pjreddie")
    assert (pj.options.noobject_scale, pj.options.thresh, pj.options.scale, pj.options.ratio) == (0.5, 0.2, 3.0, 0.1)
    with pytest.warns(UnusedKeyWarning, match="pjreddie"):
        build_layers(parse_cfg_text(NET + "[cost]\nnoobj=.5\n"), get_flavor("alexeyab"))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_inference_output_is_zeros(flavor):
    (layer,) = build("[cost]\ntype=smooth\n", flavor)
    x = torch.randn(2, 2, 2, 3)
    y = layer(x, [])
    assert y.shape == (2, 12) and not y.any()


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("kind", ["sse", "masked", "smooth", "L1", "seg", "wgan"])
def test_training_output_matches_c(flavor, kind):
    pj = flavor == "pjreddie"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, layers = build_layers(parse_cfg_text(NET + f"[cost]\ntype={kind}\n"), get_flavor(flavor))
    layer = layers[0]
    unknown = kind not in (("seg", "sse", "masked", "smooth", "L1", "wgan") if pj else ("sse", "masked", "smooth"))
    assert any(issubclass(w.category, CfgWarning) for w in seen) == unknown
    assert layer.options.type == ("sse" if unknown else kind)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 2, 3, generator=g) * 2
    truth = torch.randn(2, 12, generator=g) * 2
    truth[0, 3] = SECRET_NUM
    res = layer.compute(x, truth)
    out, delta, cost = forward_cost_layer(layer.options.type, x.numpy().reshape(2, 12), truth.numpy(), pj)
    np.testing.assert_allclose(res.output.numpy(), out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(res.delta.numpy(), delta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(res.cost), cost, rtol=1e-5)


def test_smooth_l1_sign_differs_between_forks():
    x = torch.zeros(1, 2, 2, 3)
    truth = torch.full((1, 12), 5.0)  # diff = +5 > 1
    (pj,) = build("[cost]\ntype=smooth\n", "pjreddie")
    (ab,) = build("[cost]\ntype=smooth\n", "alexeyab")
    assert torch.equal(pj.compute(x, truth).delta, -torch.ones(1, 12))
    assert torch.equal(ab.compute(x, truth).delta, torch.ones(1, 12))
    assert torch.equal(pj.compute(x, truth).output, torch.full((1, 12), 9.0))


def test_network_output_skips_trailing_cost():
    text = "[net]\nwidth=4\nheight=4\nchannels=1\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n[cost]\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg_text(text), flavor="alexeyab")
    x = torch.randn(1, 1, 4, 4)
    trace = model.trace(x)
    assert not trace[-1].any()
    torch.testing.assert_close(model(x), trace[0])


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

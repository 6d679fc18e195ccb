"""[softmax]/[soft]: keys, shapes, the CPU loop (softmax_cpu with groups/temperature, softmax_tree), errors."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

from darknetpy.cfg import parse_cfg_text
from darknetpy.errors import BadValueError, CfgError, DarknetError, ShapeError, UnknownSectionError
from darknetpy.flavor import get_flavor
from darknetpy.layers.softmax import Softmax, parse_tree_text, softmax_cross_entropy
from darknetpy.model import build_layers
from darknetpy.summary import shape_model, summary_json
from tests.conftest import ZOO, zoo_expected, zoo_flavor

FLT_MAX = np.float32(3.4028234663852886e38)
SECTION = "softmax"
FLAVORS = ("pjreddie", "alexeyab")


def build(text: str, flavor: str, path=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, layers = build_layers(parse_cfg_text(text, path), get_flavor(flavor))
    return layers


def net(c: int, h: int = 1, w: int = 1) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n"


# ---- a literal numpy transcription of src/blas.c -----------------------------------------
def c_softmax(inp, n, temp, out, stride, off=0):
    """blas.c softmax(input, n, temp, output, stride) in float32 (exp in double, as C's exp())."""
    temp = np.float32(temp)
    largest = -FLT_MAX
    for i in range(n):
        if inp[off + i * stride] > largest:
            largest = inp[off + i * stride]
    total = np.float32(0)
    for i in range(n):
        arg = np.float32(np.float32(inp[off + i * stride] / temp) - np.float32(largest / temp))
        e = np.float32(math.exp(float(arg)))
        total = np.float32(total + e)
        out[off + i * stride] = e
    for i in range(n):
        out[off + i * stride] = np.float32(out[off + i * stride] / total)


def c_softmax_cpu(inp, n, batch, batch_offset, groups, group_offset, stride, temp, out, base=0):
    for b in range(batch):
        for g in range(groups):
            c_softmax(inp, n, temp, out, stride, base + b * batch_offset + g * group_offset)


def forward_softmax_layer(x, inputs, groups, temp, tree=None):
    """softmax_layer.c forward_softmax_layer (CPU), on a flat float32 batch."""
    inp = x.reshape(-1).astype(np.float32)
    out = np.zeros_like(inp)
    batch = x.shape[0]
    if tree is not None:
        count = 0
        for size in tree.group_size:
            c_softmax_cpu(inp, size, batch, inputs, 1, 0, 1, temp, out, base=count)
            count += size
    else:
        c_softmax_cpu(inp, inputs // groups, batch, inputs, groups, inputs // groups, 1, temp, out)
    return out.reshape(batch, inputs)


# ---- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
def test_defaults_and_shape(flavor):
    (layer,) = build(net(12, 2, 3) + "[softmax]\n", flavor)
    assert isinstance(layer, Softmax)
    assert (layer.groups, layer.temperature, layer.spatial, layer.noloss, layer.tree) == (1, 1.0, 0.0, 0, None)
    assert layer.out_shape == (0, 0, 0)  # make_softmax_layer never sets out_c/out_h/out_w
    assert layer.outputs == 72
    assert layer.has_cost and not layer.is_head
    assert layer.weight_tensors() == [] and layer.num_weights() == 0
    (alias,) = build(net(12) + "[soft]\ngroups=3\ntemperature=2\nnoloss=1\nspatial=1\n", flavor)
    assert (alias.section_type, alias.groups, alias.temperature, alias.noloss, alias.spatial) == ("softmax", 3, 2.0, 1, 1.0)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("groups,temperature", [(1, 1.0), (4, 1.0), (1, 3.0), (6, 0.5), (3, -2.0)])
def test_forward_matches_softmax_cpu(flavor, groups, temperature):
    (layer,) = build(net(24, 1, 1) + f"[softmax]\ngroups={groups}\ntemperature={temperature}\n", flavor)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 24, 1, 1, generator=g) * 4
    y = layer(x, [])
    assert y.shape == (3, 24)
    expected = forward_softmax_layer(x.numpy().reshape(3, 24), 24, groups, temperature)
    np.testing.assert_allclose(y.numpy(), expected, rtol=2e-6, atol=1e-7)
    sums = y.reshape(3, groups, -1).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_spatial_is_ignored_on_cpu():
    (plain,) = build(net(4, 2, 2) + "[softmax]\n", "alexeyab")
    (spatial,) = build(net(4, 2, 2) + "[softmax]\nspatial=1\n", "alexeyab")
    x = torch.randn(2, 4, 2, 2)
    torch.testing.assert_close(spatial(x, []), plain(x, []), rtol=0, atol=0)


@pytest.mark.parametrize("text,key,cls", [
    ("[softmax]\ngroups=5\n", "groups", ShapeError),
    ("[softmax]\ngroups=0\n", "groups", BadValueError),
    ("[softmax]\ntemperature=0\n", "temperature", BadValueError),
])
def test_bad_values(text, key, cls):
    with pytest.raises(cls) as err:
        build(net(12) + text, "alexeyab")
    assert err.value.key == key


@pytest.mark.parametrize("flavor", FLAVORS)
def test_missing_tree_is_a_clear_error(flavor, tmp_path):
    cfg = tmp_path / "net.cfg"
    with pytest.raises(CfgError) as err:
        build(net(5) + "[softmax]\ntree=data/none.tree\n", flavor, path=cfg)
    assert err.value.key == "tree" and "not found" in str(err.value)
    assert str(cfg) in str(err.value)


TREE = "a -1\nb -1\nc 0\nd 0\ne 0\nf 1\ng 1\n"


def test_read_tree_groups():
    tree = parse_tree_text(TREE)
    assert tree.n == 7
    assert tree.parent == (-1, -1, 0, 0, 0, 1, 1)
    assert tree.group_offset == (0, 2, 5) and tree.group_size == (2, 3, 2)
    assert tree.leaf == (0, 0, 1, 1, 1, 1, 1)
    assert tree.group == (0, 0, 1, 1, 1, 2, 2)
    # a first line with a parent opens an empty group first, as read_tree does
    odd = parse_tree_text("x 3\ny 3\nz -1\n")
    assert odd.group_offset == (0, 0, 2) and odd.group_size == (0, 2, 1)
    assert odd.group == (1, 1, 2)
    # an empty line is a node named "" with parent -1 (sscanf fails, parent keeps -1)
    assert parse_tree_text("a -1\n\nb 0\n").parent == (-1, -1, 0)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_tree_forward_matches_c(flavor, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.tree").write_text(TREE)
    (layer,) = build(net(7) + "[softmax]\ntree=data/t.tree\ntemperature=2\n", flavor, path=tmp_path / "x.cfg")
    assert layer.tree is not None and layer.tree.group_size == (2, 3, 2)
    x = torch.randn(2, 7, 1, 1) * 3
    y = layer(x, [])
    expected = forward_softmax_layer(x.numpy().reshape(2, 7), 7, 1, 2.0, tree=layer.tree)
    np.testing.assert_allclose(y.numpy(), expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("extra", ["groups=2\ntemperature=3\n", "tree=t.tree\ntemperature=0.5\n"])
def test_gradients(extra, tmp_path):
    (tmp_path / "t.tree").write_text(TREE + "h -1\n")
    (layer,) = build(net(8) + "[softmax]\n" + extra, "alexeyab", path=tmp_path / "x.cfg")
    x = torch.randn(2, 8, 1, 1, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t, []), (x,))


def test_tree_size_must_match_inputs(tmp_path):
    (tmp_path / "t.tree").write_text(TREE)
    with pytest.raises(ShapeError) as err:
        build(net(8) + "[softmax]\ntree=t.tree\n", "pjreddie", path=tmp_path / "x.cfg")
    assert err.value.key == "tree"


def test_darknet9000_tree_missing():
    with pytest.raises(DarknetError, match="tree"):
        shape_model(ZOO / "pjreddie" / "darknet9000.cfg", "pjreddie")


def test_cross_entropy_matches_softmax_x_ent_cpu():
    (layer,) = build(net(5) + "[softmax]\n", "pjreddie")
    x = torch.randn(2, 5, 1, 1)
    y = layer(x, [])
    truth = torch.zeros(2, 5)
    truth[0, 1] = 1
    truth[1, 4] = 1
    delta, cost = layer.cost(y, truth)
    p, t = y.numpy(), truth.numpy()
    err = np.where(t != 0, -np.log(p), 0)
    np.testing.assert_allclose(delta.numpy(), t - p, rtol=0, atol=0)
    np.testing.assert_allclose(float(cost), err.sum(), rtol=1e-6)
    (quiet,) = build(net(5) + "[softmax]\nnoloss=1\n", "pjreddie")
    d0, c0 = quiet.cost(y, truth)
    assert float(c0) == 0 and not d0.any()
    assert softmax_cross_entropy(y, truth)[1].shape == (2, 5)


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

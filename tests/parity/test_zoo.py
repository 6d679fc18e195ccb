"""Every cfg of the public zoo against Darknet's own shapes and weights sizes (expected.json)."""
from __future__ import annotations

import warnings

import pytest

from darknetpy import DarknetError, shape_model, summary_json
from darknetpy.zoo import KNOWN_WEIGHTS, asset

from ..conftest import ZOO, zoo_expected, zoo_flavor

pytestmark = pytest.mark.parity

EXPECTED = zoo_expected()
ACCEPTED = sorted(n for n, e in EXPECTED.items() if e["darknet"] == "ok")
REJECTED = sorted(n for n, e in EXPECTED.items() if e["darknet"] != "ok")


def build(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shape_model(ZOO / name, zoo_flavor(name))


def test_the_zoo_has_124_accepted_and_12_rejected_cfgs():
    assert (len(ACCEPTED), len(REJECTED)) == (124, 12)


@pytest.mark.parametrize("name", ACCEPTED)
def test_shapes_and_weights_size_are_darknets(name):
    expected = EXPECTED[name]
    got = summary_json(build(name))
    layers = [[l["type"], l["out_c"], l["out_h"], l["out_w"]] for l in got["layers"]]
    assert len(layers) == len(expected["layers"]) == expected["sections"]
    mismatches = [(i, g, e) for i, (g, e) in enumerate(zip(layers, expected["layers"])) if g != e]
    assert not mismatches, mismatches[:5]
    assert got["weights_bytes"] == expected["weights_bytes"]


@pytest.mark.parametrize("name", REJECTED)
def test_cfgs_darknet_rejects_build_or_give_a_darknet_error(name):
    try:
        model = build(name)
    except DarknetError as err:
        assert str(err).startswith(str(ZOO / name)), str(err)  # located at the file
    else:
        assert len(model.layers) == len(model.cfg.layers)


@pytest.mark.parametrize("known", [k for k in KNOWN_WEIGHTS], ids=lambda k: k.name)
def test_published_file_sizes_equal_the_computed_sizes(known):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = shape_model(asset(f"cfg/{known.cfg}"), known.flavor)
    assert model.weights_bytes(known.cutoff) == known.size


def test_the_bundled_yolo_fastest_weights_load_with_no_bytes_left_over():
    from darknetpy import Darknet
    from darknetpy.zoo import default_model

    cfg, weights, _ = default_model()
    model = Darknet(cfg, weights)
    report = model.load_report
    assert not report.partial and report.floats_read * 4 + report.header.size == weights.stat().st_size
    assert model.flavor.name == "alexeyab" and model.seen == 14_231_680

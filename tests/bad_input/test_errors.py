"""Broken inputs get their specific error class and a message located at file:line or layer."""
from __future__ import annotations

import warnings

import pytest

from darknetpy import (
    BadValueError,
    CfgError,
    Darknet,
    DarknetError,
    FlavorError,
    ShapeError,
    UnknownSectionError,
    parse_cfg_text,
)
from darknetpy.cfg import UnusedKeyWarning
from darknetpy.cli import main

pytestmark = pytest.mark.unit

HEAD = """[net]
width=32
height=32
channels=3
[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky
"""

YOLO = """[convolutional]
filters={filters}
size=1
stride=1
activation=linear
[yolo]
mask={mask}
anchors=10,13, 16,30, 33,23
classes=2
num=3
"""


def build(text: str, flavor: str = "alexeyab", **kw) -> Darknet:
    return Darknet(parse_cfg_text(text, "bad.cfg"), flavor=flavor, **kw)


def test_unknown_section_names_file_line_and_close_matches():
    with pytest.raises(UnknownSectionError, match=r"bad.cfg:11: unknown section \[convolutinal\].*did you mean \[convolutional\]"):
        build(HEAD + "[convolutinal]\nfilters=2\n")


def test_section_of_the_other_fork_is_a_flavor_error():
    with pytest.raises(FlavorError, match=r"bad.cfg:11: \[sam\] is a section of AlexeyAB's darknet only"):
        build(HEAD + "[sam]\nfrom=-1\n", flavor="pjreddie")


def test_bad_value_names_key_and_value():
    with pytest.raises(BadValueError, match=r"bad.cfg:6: \[convolutional #0\] filters=eight: expected an integer"):
        build(HEAD.replace("filters=8", "filters=eight"))


def test_unknown_activation_is_refused_not_silently_relu():
    with pytest.raises(BadValueError, match=r"bad.cfg:10: \[convolutional #0\] activation=leakky: unknown activation"):
        build(HEAD.replace("activation=leaky", "activation=leakky"))


@pytest.mark.parametrize("layers", ["-5", "1", "0,3"])
def test_route_pointing_outside_the_network(layers):
    with pytest.raises(ShapeError, match=r"bad.cfg:12: \[route #1\] layers=.*outside the layers before this one"):
        build(HEAD + f"[route]\nlayers={layers}\n")


def test_shortcut_pointing_outside_the_network():
    with pytest.raises(ShapeError, match=r"bad.cfg:12: \[shortcut #1\] from=-3: layer -3 resolves to -2"):
        build(HEAD + "[shortcut]\nfrom=-3\n")


def test_filters_that_do_not_fit_the_head_say_what_they_should_be():
    with pytest.raises(ShapeError, match=r"bad.cfg:16: \[yolo #2\] .*this head needs 21 channels .*filters=\(classes\+5\)·3 = 21"):
        build(HEAD + YOLO.format(filters=20, mask="0,1,2"))


def test_mask_and_anchors_mismatch():
    with pytest.raises(ShapeError, match=r"\[yolo #2\] mask=0,1,5: mask values \[5\] are not anchors of num=3"):
        build(HEAD + YOLO.format(filters=21, mask="0,1,5"))


def test_missing_net_section_and_empty_network():
    with pytest.raises(CfgError, match=r"the first section must be \[net\] or \[network\], not \[convolutional\]"):
        build("[convolutional]\nfilters=2\n" + HEAD)
    with pytest.raises(CfgError, match="no layers after"):
        build("[net]\nwidth=8\nheight=8\nchannels=3\n")
    with pytest.raises(CfgError, match="no input size"):
        build("[net]\nbatch=1\n[maxpool]\n")


def test_unused_and_other_fork_keys_warn_with_their_line():
    text = HEAD.replace("activation=leaky", "activation=leaky\nfilterz=3") + "[shortcut]\nfrom=-1\nalpha=0.5\n"
    with pytest.warns(UnusedKeyWarning) as record:
        build(text)
    messages = [str(w.message) for w in record]
    assert any("bad.cfg:11: [convolutional #0] filterz=3: unused key" in m for m in messages)
    assert any(m.startswith("bad.cfg: 1 key that only pjreddie's darknet reads is ignored, as AlexeyAB's darknet ignores it: "
                            "alpha (line 14). The flavour is AlexeyAB's, given; to read it use flavor='pjreddie' (--flavor pjreddie)") for m in messages)


def test_strict_turns_unused_keys_into_errors():
    with pytest.raises(CfgError, match="filterz=3: unused key"):
        build(HEAD.replace("activation=leaky", "activation=leaky\nfilterz=3"), strict=True)


def test_a_binary_file_given_as_cfg(tmp_path):
    path = tmp_path / "yolov3.weights"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CfgError, match="not a text cfg file"):
        Darknet(path)


def test_input_of_the_wrong_shape_is_refused():
    import torch

    with pytest.raises(DarknetError, match=r"takes \(N, 3, 32, 32\) input, got \(1, 3, 16, 16\)"):
        build(HEAD)(torch.zeros(1, 3, 16, 16))


@pytest.fixture()
def files(tmp_path):
    cfg = tmp_path / "m.cfg"
    cfg.write_text(HEAD + "[maxpool]\nsize=2\nstride=2\n[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=linear\n")
    weights = tmp_path / "m.weights"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Darknet(cfg).save_weights(weights)
    return cfg, weights


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda b: b[:-6], "not a whole number of floats"),
        (lambda b: b[:-8], "ends inside layer 2 [convolutional]"),
        (lambda b: b + b"\0" * 4, "4 bytes are left over after the last layer"),
    ],
)
def test_broken_weights_through_the_cli_print_one_line_and_exit_2(files, tmp_path, capsys, mutate, expected):
    cfg, weights = files
    weights.write_bytes(mutate(weights.read_bytes()))
    status = main(["convert", str(weights), str(tmp_path / "out.pt"), "--cfg", str(cfg)])
    err = capsys.readouterr().err
    assert status == 2
    assert expected in err
    assert err.count("\n") == 1 and err.startswith("darknetpy: ")
    assert "Traceback" not in err


def test_wrong_cfg_for_the_weights_through_the_cli(files, tmp_path, capsys):
    cfg, weights = files
    other = tmp_path / "other.cfg"
    other.write_text(cfg.read_text().replace("filters=4", "filters=6"))
    assert main(["convert", str(weights), str(tmp_path / "out.pt"), "--cfg", str(other)]) == 2
    assert "ends inside layer 2 [convolutional]" in capsys.readouterr().err

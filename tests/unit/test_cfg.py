"""Darknet's cfg reading rules (read_cfg, read_option, option_find, strip) and the writer."""
from __future__ import annotations

import warnings

import pytest

from darknetpy import BadValueError, CfgError, Darknet, format_cfg, parse_cfg_text, read_cfg
from darknetpy.cfg import CfgWarning

from ..conftest import ZOO, zoo_expected

pytestmark = pytest.mark.unit

NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"


def test_whitespace_is_deleted_everywhere_not_only_at_the_ends():
    cfg = parse_cfg_text("[ net ]\n w i d t h = 3 2\n\theight\t=\t16 \nchannels=3\n")
    assert cfg.net.name == "net"
    assert cfg.net.get_int("width") == 32
    assert cfg.net.get_int("height") == 16


def test_comments_and_empty_lines_are_skipped_with_line_numbers_kept():
    cfg = parse_cfg_text("# top\n[net]\n; semicolon\n\nwidth=8\n#x=1\n")
    assert [o.key for o in cfg.net.options] == ["width"]
    assert cfg.net.options[0].line == 5
    assert cfg.net.line == 2


def test_first_occurrence_of_a_repeated_key_wins():
    cfg = parse_cfg_text(NET + "[convolutional]\nfilters=4\nfilters=8\n")
    sec = cfg.layers[0]
    assert sec.get_int("filters") == 4
    assert [o.value for o in sec.unused()] == ["8"]  # Darknet reports the repeat as unused


def test_inline_hash_text_stays_in_the_value_and_numbers_stop_there():
    cfg = parse_cfg_text(NET + "[yolo]\nmask=0,1,2#comment\nclasses=80 # eighty\n")
    sec = cfg.layers[0]
    assert sec.get_str("mask") == "0,1,2#comment"
    assert sec.get_ints("mask") == [0, 1, 2]
    assert sec.get_int("classes") == 80


def test_network_is_an_alias_of_net_and_key_splits_at_first_equals():
    cfg = parse_cfg_text("[network]\nwidth=8\nheight=8\nchannels=1\nweird=a=b\n[maxpool]\n")
    assert cfg.net.name == "network"
    assert cfg.net.get_str("weird") == "a=b"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Darknet(cfg).input_shape == (1, 8, 8)


def test_crlf_files_read_as_lf_and_pjreddie_is_warned():
    text = NET.replace("\n", "\r\n") + "[maxpool]\r\nsize=2\r\nstride=2\r\n"
    cfg = parse_cfg_text(text)
    assert cfg.crlf and cfg.net.get_int("width") == 32
    with pytest.warns(CfgWarning, match="CRLF"):
        Darknet(cfg, flavor="pjreddie")


def test_a_line_without_equals_warns_with_its_line_as_darknet_does():
    with pytest.warns(CfgWarning, match=r"<cfg>:3: no '='"):
        cfg = parse_cfg_text("[net]\nwidth=8\nbogus\n")
    assert cfg.net.keys() == ["width"]


def test_option_before_any_section_is_an_error_with_its_line():
    with pytest.raises(CfgError, match=r"x.cfg:1: option 'width=8' before the first \[section\]"):
        parse_cfg_text("width=8\n[net]\n", "x.cfg")


def test_binary_file_is_refused(tmp_path):
    p = tmp_path / "model.cfg"
    p.write_bytes(b"\x00\x01\x02weights")
    with pytest.raises(CfgError, match="not a text cfg file"):
        read_cfg(p)


def test_bad_number_is_a_bad_value_error_not_atoi_zero():
    cfg = parse_cfg_text(NET + "[convolutional]\nfilters=abc\n", "m.cfg")
    with pytest.raises(BadValueError, match=r"m.cfg:6: \[convolutional #0\] filters=abc: expected an integer"):
        cfg.layers[0].get_int("filters")


def test_list_items_and_trailing_comma():
    sec = parse_cfg_text(NET + "[yolo]\nanchors=10,13,16,30,\nmask=1,,2\n").layers[0]
    assert sec.get_floats("anchors") == [10, 13, 16, 30]
    with pytest.raises(BadValueError, match="empty item"):
        sec.get_ints("mask")


def test_set_replaces_first_occurrence_and_drops_repeats():
    sec = parse_cfg_text(NET + "[yolo]\nclasses=80\nx=1\nclasses=3\n").layers[0]
    sec.set("classes", 44)
    assert [(o.key, o.value) for o in sec.options] == [("classes", "44"), ("x", "1")]
    sec.set("anchors", [1.5, 2.0])
    assert sec.get_str("anchors") == "1.5,2"


@pytest.mark.parametrize("name", sorted(zoo_expected()))
def test_writing_then_reading_gives_the_same_sections_for_every_zoo_cfg(name):
    cfg = read_cfg(ZOO / name)
    again = parse_cfg_text(format_cfg(cfg))
    assert [s.name for s in again.sections] == [s.name for s in cfg.sections]
    for a, b in zip(cfg.sections, again.sections):
        assert [(o.key, o.value) for o in a.options] == [(o.key, o.value) for o in b.options]

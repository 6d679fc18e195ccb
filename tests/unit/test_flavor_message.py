"""One cause, one message: a cfg with keys of the other fork says so once, with the flavour's origin."""
from __future__ import annotations

import struct
import warnings

import pytest

from darknetpy import CfgError, Darknet, asset
from darknetpy.cfg import UnusedKeyWarning

# yolo-fastest-1.1.cfg: 7 AlexeyAB-only [yolo] keys in each of its 2 heads
AB_KEYS = ("scale_x_y", "iou_thresh", "cls_normalizer", "iou_normalizer", "iou_loss", "nms_kind", "beta_nms")


@pytest.fixture()
def pjreddie_weights(tmp_path):
    """The bundled weights with pjreddie's header (version 0.2.0, 64-bit seen): same body."""
    data = asset("weights/yolo-fastest-1.1.weights").read_bytes()
    path = tmp_path / "pj.weights"
    path.write_bytes(struct.pack("<3i", 0, 2, 0) + data[12:])
    return path


def _unused_warnings(*args, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Darknet(*args, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, UnusedKeyWarning)]


def test_flavour_from_the_header_against_the_other_forks_keys_is_one_warning(pjreddie_weights):
    (message,) = _unused_warnings(asset("cfg/yolo-fastest-1.1.cfg"), pjreddie_weights)
    assert "\n" not in message
    assert "14 keys that only AlexeyAB's darknet reads are ignored" in message
    assert all(f"{key} (lines " in message for key in AB_KEYS)
    assert f"read from the header of {pjreddie_weights} (version 0.2.0)" in message
    assert "flavor='alexeyab' (--flavor alexeyab)" in message


def test_a_given_flavour_says_so_and_the_other_fork_reads_the_keys(pjreddie_weights):
    (message,) = _unused_warnings(asset("cfg/yolo-fastest-1.1.cfg"), flavor="pjreddie")
    assert "The flavour is pjreddie's, given" in message
    assert _unused_warnings(asset("cfg/yolo-fastest-1.1.cfg"), pjreddie_weights, flavor="alexeyab") == []


def test_strict_stops_at_the_first_such_key_with_its_line():
    with pytest.raises(CfgError, match=r"yolo-fastest-1.1.cfg:871: \[yolo #121\] scale_x_y=1.0: only AlexeyAB's"):
        Darknet(asset("cfg/yolo-fastest-1.1.cfg"), flavor="pjreddie", strict=True)


def test_other_unused_keys_keep_their_own_line():
    from darknetpy import parse_cfg_text

    text = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nsize=1\nbogus=1\nactivation=linear\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Darknet(parse_cfg_text(text, "t.cfg"))
    (w,) = [w for w in caught if issubclass(w.category, UnusedKeyWarning)]
    assert str(w.message).startswith("t.cfg:8: [convolutional #0] bogus=1: unused key")

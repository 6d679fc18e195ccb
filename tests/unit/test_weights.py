"""The .weights format: headers, byte-exact round trips, partial files, strict length."""
from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch

from darknetpy import Darknet, WeightsError, WeightsHeader, parse_cfg_text, read_header
from darknetpy.flavor import ALEXEYAB, PJREDDIE
from darknetpy.weights import PartialWeightsWarning, save_weights

pytestmark = pytest.mark.unit

CFG = """[net]
width=16
height=16
channels=3
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=6
size=1
stride=1
activation=linear
[connected]
output=5
activation=linear
"""


def randomized(model: Darknet, seed: int = 0) -> Darknet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(torch.rand(t.shape, generator=g) + 0.1 if "variance" in name else torch.randn(t.shape, generator=g))
    return model


def make(flavor: str = "alexeyab", text: str = CFG) -> Darknet:
    return randomized(Darknet(parse_cfg_text(text, "test.cfg"), flavor=flavor))


def floats(model: Darknet) -> int:
    return sum(layer.num_weights() for layer in model.layers)


def test_file_size_is_header_plus_every_array():
    model = make()
    # conv: 4 biases + 3*4 bn + 4*3*3*3; conv2: 6 + 6*4; connected: 5 + 5*(6*8*8)
    assert floats(model) == (4 + 12 + 108) + (6 + 24) + (5 + 5 * 384)
    assert model.weights_bytes() == 20 + 4 * floats(model)


@pytest.mark.parametrize("flavor,version", [("alexeyab", (0, 2, 5)), ("pjreddie", (0, 2, 0))])
def test_save_writes_the_flavour_header_and_load_save_is_byte_exact(tmp_path, flavor, version):
    model = make(flavor)
    model.seen = 64000
    path = tmp_path / "a.weights"
    model.save_weights(path)
    data = path.read_bytes()
    assert struct.unpack_from("<iiiQ", data) == (*version, 64000)
    again = Darknet(parse_cfg_text(CFG), path)
    assert again.flavor.name == flavor  # chosen from the header revision
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    again.save_weights(tmp_path / "b.weights")
    assert (tmp_path / "b.weights").read_bytes() == data


def test_an_old_header_with_32_bit_seen_round_trips(tmp_path):
    model = make("pjreddie")
    body = b"".join(np.asarray(t.detach().numpy(), "<f4").tobytes() for l in model.layers for t in l.weight_tensors())
    path = tmp_path / "old.weights"
    path.write_bytes(struct.pack("<iiiI", 0, 1, 0, 777) + body)
    header = read_header(path)
    assert (header.seen, header.seen_bytes) == (777, 4)
    loaded = Darknet(parse_cfg_text(CFG), path)
    assert loaded.seen == 777
    loaded.save_weights(tmp_path / "again.weights")
    assert (tmp_path / "again.weights").read_bytes() == path.read_bytes()


def test_the_forks_disagree_on_seen_width_for_huge_versions():
    data = struct.pack("<iiiQ", 1001, 2, 0, 5)
    assert WeightsHeader.parse(data, ALEXEYAB).seen_bytes == 8
    assert WeightsHeader.parse(data, PJREDDIE).seen_bytes == 4  # major < 1000 also required (§2.1)
    assert WeightsHeader.parse(data, ALEXEYAB).transpose


def test_transposed_files_store_connected_weights_transposed(tmp_path):
    model = make("alexeyab")
    parts = []
    for layer in model.layers:
        tensors = layer.weight_tensors()
        if layer.section_type == "connected":
            bias, weight = tensors[0], tensors[1]
            tensors = [bias, weight.t().contiguous()]
        parts += [np.asarray(t.detach().numpy(), "<f4").tobytes() for t in tensors]
    path = tmp_path / "t.weights"
    path.write_bytes(struct.pack("<iiiQ", 0, 1001, 0, 0) + b"".join(parts))
    loaded = Darknet(parse_cfg_text(CFG), path, flavor="alexeyab")
    assert torch.equal(loaded.layers[3].block.weight, model.layers[3].block.weight)


def test_cutoff_writes_darknet_partial_and_a_partial_file_loads_with_a_warning(tmp_path):
    model = make("alexeyab")
    model.seen = 123
    full, part = tmp_path / "full.weights", tmp_path / "part.weights"
    model.save_weights(full)
    model.save_weights(part, cutoff=2)
    data = part.read_bytes()
    assert struct.unpack_from("<iiiQ", data) == (0, 2, 5, 0)  # partial: seen = 0
    assert data[20:] == full.read_bytes()[20 : 20 + 4 * (4 + 12 + 108)]
    with pytest.warns(PartialWeightsWarning, match=r"layers 0\.\.1 only .* layers 2\.\.3 keep their initialisation"):
        loaded = Darknet(parse_cfg_text(CFG), part)
    assert torch.equal(loaded.layers[0].weight, model.layers[0].weight)
    assert loaded.load_report.first_missing == 2
    assert not torch.equal(loaded.layers[2].weight, model.layers[2].weight)


def test_a_file_ending_inside_a_layer_names_that_layer(tmp_path):
    model = make()
    path = tmp_path / "cut.weights"
    model.save_weights(path)
    path.write_bytes(path.read_bytes()[: 20 + 4 * (4 + 12 + 108 + 10)])
    with pytest.raises(WeightsError, match=r"ends inside layer 2 \[convolutional\] \(test.cfg:15\): it needs 120 bytes, 40 are left"):
        Darknet(parse_cfg_text(CFG, "test.cfg"), path)


def test_bytes_left_over_are_an_error(tmp_path):
    model = make()
    path = tmp_path / "long.weights"
    model.save_weights(path)
    path.write_bytes(path.read_bytes() + b"\0" * 8)
    with pytest.raises(WeightsError, match="8 bytes are left over after the last layer"):
        Darknet(parse_cfg_text(CFG), path)


def test_cutoff_allows_a_longer_file(tmp_path):
    model = make()
    path = tmp_path / "w.weights"
    model.save_weights(path)
    loaded = Darknet(parse_cfg_text(CFG), path, cutoff=1)
    assert torch.equal(loaded.layers[0].weight, model.layers[0].weight)


def test_weights_of_another_cfg_are_refused(tmp_path):
    path = tmp_path / "w.weights"
    make().save_weights(path)
    other = CFG.replace("output=5", "output=7")
    with pytest.raises(WeightsError, match="ends inside layer 3 \\[connected\\]"):
        Darknet(parse_cfg_text(other), path)


def test_misaligned_bytes_of_the_right_total_size_are_caught_by_the_variances(tmp_path):
    model = make()
    path = tmp_path / "w.weights"
    model.save_weights(path)
    data = bytearray(path.read_bytes())
    body = np.frombuffer(bytes(data[20:]), "<f4").copy()
    body[4:16] = np.roll(body[4:16], 4)  # scales <-> variances shifted: some variances read negative
    path.write_bytes(bytes(data[:20]) + body.tobytes())
    with pytest.raises(WeightsError, match="negative rolling variance"):
        Darknet(parse_cfg_text(CFG), path)


def test_a_size_that_is_not_whole_floats_is_refused(tmp_path):
    path = tmp_path / "w.weights"
    make().save_weights(path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(WeightsError, match="not a whole number of floats"):
        Darknet(parse_cfg_text(CFG), path)


def test_missing_file_and_short_header(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        Darknet(parse_cfg_text(CFG), tmp_path / "nope.weights")
    (tmp_path / "short.weights").write_bytes(b"\0" * 10)
    with pytest.raises(WeightsError, match="too short for a weights header"):
        Darknet(parse_cfg_text(CFG), tmp_path / "short.weights")


def test_dontload_reads_nothing_and_dontloadscales_skips_the_bn_arrays(tmp_path):
    model = make()
    path = tmp_path / "w.weights"
    model.save_weights(path, cutoff=1)  # only layer 0
    text = CFG.replace("activation=leaky", "activation=leaky\ndontloadscales=1", 1)
    skipped = Darknet(parse_cfg_text(text), flavor="alexeyab")
    assert skipped.layers[0].num_weights() == 4 + 108
    text = CFG.replace("activation=leaky", "activation=leaky\ndontload=1", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nothing = Darknet(parse_cfg_text(text), flavor="alexeyab")
    assert nothing.layers[0].num_weights() == 0


def test_an_interrupted_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    model = make()
    path = tmp_path / "w.weights"
    model.save_weights(path)
    before = path.read_bytes()

    def boom(self, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("darknetpy.weights.WeightsWriter.dump", boom)
    with pytest.raises(KeyboardInterrupt):
        save_weights(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights"]

"""`split_images`: 8:2 by default, complete and disjoint, the same under the same seed."""
from __future__ import annotations

import pytest

from darknetpy import DataConfig, DataError, split_images
from darknetpy.data import read_image_list

pytestmark = pytest.mark.unit


def _folder(root, n=10):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"img{i:02d}.jpg").write_bytes(b"")  # only the names matter
    (root / "img00.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "notes.md").write_text("not an image")
    return root


def test_eight_to_two_complete_and_disjoint(tmp_path):
    result = split_images(_folder(tmp_path / "obj"))
    train, valid = read_image_list(result.train_file), read_image_list(result.valid_file)
    assert (len(train), len(valid)) == (8, 2)
    assert set(train).isdisjoint(valid) and {p.name for p in train + valid} == {f"img{i:02d}.jpg" for i in range(10)}
    assert train == sorted(train) and all(p.is_absolute() for p in train)
    assert result.train_file == tmp_path / "train.txt" and result.train == train


def test_the_same_seed_gives_the_same_split(tmp_path):
    first = split_images(_folder(tmp_path / "obj"), tmp_path / "a", seed=7)
    again = split_images(tmp_path / "obj", tmp_path / "b", seed=7)
    other = split_images(tmp_path / "obj", tmp_path / "c", seed=8)
    assert (first.train, first.valid) == (again.train, again.valid)
    assert (tmp_path / "a" / "valid.txt").read_text() == (tmp_path / "b" / "valid.txt").read_text()
    assert other.valid != first.valid


def test_the_split_depends_on_names_only_and_an_added_image_moves_at_most_one(tmp_path):
    a = split_images(_folder(tmp_path / "one" / "obj", 40), tmp_path / "one", seed=3)
    b = split_images(_folder(tmp_path / "two" / "obj", 40), tmp_path / "two", seed=3)
    assert [p.name for p in a.valid] == [p.name for p in b.valid]  # another folder, the same names: the same split
    (tmp_path / "two" / "obj" / "new.jpg").write_bytes(b"")
    c = split_images(tmp_path / "two" / "obj", tmp_path / "two", seed=3)
    old, new = {p.name for p in b.valid}, {p.name for p in c.valid} - {"new.jpg"}
    assert len(old ^ new) <= 1


def test_fractions_and_the_data_file(tmp_path):
    (tmp_path / "obj.names").write_text("cell\nvirus\n")
    result = split_images(_folder(tmp_path / "obj", 5), valid_fraction=0.5, names=tmp_path / "obj.names")
    assert (len(result.train), len(result.valid)) == (2, 3)  # 2.5 valid images: rounded half up
    config = DataConfig.read(result.data_file)
    assert config.classes == 2 and read_image_list(config.path_of("valid")) == result.valid
    assert split_images(tmp_path / "obj", tmp_path / "x", valid_fraction=0.01).valid != []  # at least one of each
    assert split_images(tmp_path / "obj", tmp_path / "y", valid_fraction=0).valid == []


def test_recursive_and_errors(tmp_path):
    _folder(tmp_path / "obj" / "sub", 3)
    with pytest.raises(DataError, match="no images"):
        split_images(tmp_path / "obj")
    assert len(split_images(tmp_path / "obj", recursive=True).train) == 2
    with pytest.raises(DataError, match=r"valid fraction 1\.0 is not in \[0, 1\)"):
        split_images(tmp_path / "obj", valid_fraction=1.0)
    with pytest.raises(DataError, match="not a folder"):
        split_images(tmp_path / "missing")

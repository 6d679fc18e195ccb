"""``detector train``: batch/subdivisions, resume after a crash, DDP (gloo) against one process,
bad labels, start weights for another class count, the NaN message, the log line and chart."""
from __future__ import annotations

import os
import re
import socket
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import darknetpy as dp
from darknetpy.errors import TrainingError
from darknetpy.schedule import learning_rate
from darknetpy.train import TrainOptions, iteration_line, train_detector
from darknetpy.transfer import load_start_weights

from ...conftest import ROOT, SHARED, needs_shared

pytestmark = pytest.mark.unit

TINY_CFG = """[net]
batch={batch}
subdivisions={subdivisions}
width=64
height=64
channels=3
momentum=0.9
decay=0.0005
learning_rate=0.01
burn_in=2
max_batches={max_batches}
policy=steps
steps=3,5
scales=.5,.5

[convolutional]
filters=8
size=3
stride=2
pad=1
{bn}
activation=leaky

[convolutional]
filters=16
size=3
stride=2
pad=1
{bn}
activation=leaky

[convolutional]
filters=21
size=1
stride=1
pad=0
activation=linear

[yolo]
mask=0,1,2
anchors=8,8, 16,16, 32,24
classes=2
num=3
jitter=.1
ignore_thresh=.5
random=0
"""

LINE = re.compile(r"^ (\d+): (\d+\.\d{6}), (\d+\.\d{6}) avg loss, (\d+\.\d{6}) rate, \d+\.\d{6} seconds, (\d+) images, -?\d+\.\d{6} hours left$")


def make_data(folder: Path, n: int = 8, bad: bool = False) -> Path:
    """n synthetic 96x80 images with one or two rectangles each, labels beside them, a .data file."""
    rng = np.random.default_rng(1)
    images = []
    for i in range(n):
        img = np.full((80, 96, 3), 100, np.uint8)
        rows = []
        for _ in range(1 + i % 2):
            cls = int(rng.integers(0, 2))
            w, h = int(rng.integers(16, 40)), int(rng.integers(16, 40))
            x0, y0 = int(rng.integers(0, 96 - w)), int(rng.integers(0, 80 - h))
            img[y0 : y0 + h, x0 : x0 + w] = (200, 40, 40) if cls == 0 else (40, 40, 200)
            rows.append(f"{cls} {(x0 + w / 2) / 96} {(y0 + h / 2) / 80} {w / 96} {h / 80}")
        path = folder / f"img{i}.jpg"
        cv2.imwrite(str(path), img)
        (folder / f"img{i}.txt").write_text("\n".join(rows) + "\n")
        images.append(str(path))
    if bad:
        (folder / "img0.txt").write_text("7 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.3 0.3\n")  # class 7 of 2
        (folder / "img1.txt").unlink()  # a missing label file
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
        images.append(str(folder / "broken.jpg"))
    (folder / "train.txt").write_text("\n".join(images) + "\n")
    (folder / "obj.names").write_text("red\nblue\n")
    data = folder / "obj.data"
    data.write_text(f"classes=2\ntrain={folder / 'train.txt'}\nvalid={folder / 'train.txt'}\nnames={folder / 'obj.names'}\n"
                    f"backup={folder / 'backup'}\nsavelast=2\n")
    return data


def make_cfg(folder: Path, batch=4, subdivisions=1, max_batches=4, bn=True, name="tiny.cfg") -> Path:
    cfg = folder / name
    cfg.write_text(TINY_CFG.format(batch=batch, subdivisions=subdivisions, max_batches=max_batches,
                                   bn="batch_normalize=1" if bn else ""))
    return cfg


def start_weights(folder: Path, cfg: Path) -> Path:
    torch.manual_seed(0)
    model = dp.Darknet(cfg)
    path = folder / "start.weights"
    model.save_weights(path)
    return path


def quiet(**kw) -> TrainOptions:
    lines: list[str] = []
    kw.setdefault("augment", None)
    kw.setdefault("workers", 0)
    options = TrainOptions(progress=False, chart=False, log=lines.append, **kw)
    options.lines = lines  # type: ignore[attr-defined]
    return options


def trained_tensors(cfg: Path, weights: Path) -> list[np.ndarray]:
    model = dp.Darknet(cfg, weights)
    out = []
    for layer in model.layers:
        if layer.section_type == "convolutional":
            out += [layer.weight.detach().numpy().copy(), layer.biases.detach().numpy().copy()]
            if layer.bn is not None:
                out.append(layer.bn.scales.detach().numpy().copy())
    return out


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_batch_and_subdivisions_give_the_same_update(tmp_path, float64):
    """Without batch norm (whose statistics depend on the split), 4 images in 1 pass or in 4 passes
    of 1 give the same weights: gradients summed over the batch, divided by batch. In float64, so
    that float32's summation order (1e-7 of updates up to ~20 here) does not blur the comparison."""
    data = make_data(tmp_path)
    one = make_cfg(tmp_path, 4, 1, 3, bn=False, name="one.cfg")
    four = make_cfg(tmp_path, 4, 4, 3, bn=False, name="four.cfg")
    w0 = start_weights(tmp_path, one)
    r1 = train_detector(data, one, w0, quiet(backup=str(tmp_path / "b1")))
    r4 = train_detector(data, four, w0, quiet(backup=str(tmp_path / "b4")))
    assert r1.iteration == r4.iteration == 3
    a, b = trained_tensors(one, r1.final_weights), trained_tensors(four, r4.final_weights)
    start = trained_tensors(one, w0)
    assert any(not np.array_equal(x, s) for x, s in zip(a, start))  # it did train
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
    # the printed loss is Darknet's cost, a float32 sum over the pass's deltas: 4 sums of 1 image vs 1 of 4
    assert [v for _, v in r1.losses] == pytest.approx([v for _, v in r4.losses], rel=1e-5)


def test_log_lines_are_darknets(tmp_path):
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=3)
    options = quiet()
    result = train_detector(data, cfg, start_weights(tmp_path, cfg), options)
    lines = [line for line in options.lines if LINE.match(line)]
    assert len(lines) == 3
    net = dp.Darknet(cfg).net
    for k, line in enumerate(lines, start=1):
        it, loss, avg, rate, images = LINE.match(line).groups()
        assert int(it) == k and int(images) == 4 * k
        assert float(rate) == pytest.approx(round(learning_rate(net, k), 6), abs=1e-6)
    first, second = (float(LINE.match(lines[i]).group(2)) for i in (0, 1))
    assert float(LINE.match(lines[1]).group(3)) == pytest.approx(0.9 * first + 0.1 * second, abs=2e-6)
    assert result.losses[-1][0] == 3
    assert iteration_line("pjreddie", 5, 1.5, 2.5, 0.001, 0.25, 80, 0.0) == "5: 1.500000, 2.500000 avg, 0.001000 rate, 0.250000 seconds, 80 images"


def test_resume_after_a_crash_continues_iteration_and_rate(tmp_path):
    """A run that dies at iteration 3 leaves _last.weights of iteration 2 (savelast=2), complete; resuming
    from it starts at iteration 3 with the schedule's rate there; -clear starts again at 1."""
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=6)
    w0 = start_weights(tmp_path, cfg)

    class Crash(Exception):
        pass

    def crash(line: str) -> None:
        if line.startswith(" 3:"):
            raise Crash

    options = quiet()
    options.log = crash
    with pytest.raises(Crash):
        train_detector(data, cfg, w0, options)
    last = tmp_path / "backup" / "tiny_last.weights"
    model = dp.Darknet(cfg, last)
    assert model.seen == 2 * 4
    assert last.stat().st_size == model.weights_bytes()
    assert not [p for p in (tmp_path / "backup").iterdir() if p.name.endswith(".tmp")]
    options = quiet()
    result = train_detector(data, cfg, last, options)
    lines = [LINE.match(line) for line in options.lines if LINE.match(line)]
    assert [int(m.group(1)) for m in lines] == [3, 4, 5, 6]
    assert float(lines[0].group(4)) == pytest.approx(round(learning_rate(model.net, 3), 6), abs=1e-6)
    assert result.iteration == 6 and dp.Darknet(cfg, result.final_weights).seen == 6 * 4
    options = quiet(clear=True, max_batches=1)
    train_detector(data, cfg, last, options)
    assert [int(LINE.match(x).group(1)) for x in options.lines if LINE.match(x)] == [1]


def test_bad_labels_and_images_are_reported_once_and_skipped(tmp_path):
    data = make_data(tmp_path, bad=True)
    cfg = make_cfg(tmp_path, max_batches=3)
    options = quiet()
    result = train_detector(data, cfg, start_weights(tmp_path, cfg), options)
    assert result.iteration == 3
    text = "\n".join(options.lines)
    assert text.count("img0.txt") == 1 and "class 7" in text
    assert text.count("img1.txt") == 1
    assert result.final_weights.exists()


def test_nan_loss_stops_with_what_to_check_and_keeps_the_last_weights(tmp_path, monkeypatch):
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=4)
    from darknetpy.loss import base

    real = base.NetworkLoss.__call__
    calls = {"n": 0}

    def poisoned(self, heads, truths, seen=0):
        result = real(self, heads, truths, seen)
        calls["n"] += 1
        if calls["n"] == 3:
            result.cost = float("nan")
        return result

    monkeypatch.setattr(base.NetworkLoss, "__call__", poisoned)
    with pytest.raises(TrainingError) as err:
        train_detector(data, cfg, start_weights(tmp_path, cfg), quiet())
    message = str(err.value)
    assert "iteration 3" in message and "data check" in message and "learning_rate" in message
    assert (tmp_path / "backup" / "tiny_last.weights").exists()  # iteration 2's
    assert dp.Darknet(cfg, tmp_path / "backup" / "tiny_last.weights").seen == 8


def test_chart_png_is_written(tmp_path):
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=2)
    options = quiet()
    options.chart = True
    train_detector(data, cfg, start_weights(tmp_path, cfg), options)
    chart = cv2.imread(str(tmp_path / "backup" / "chart.png"))
    assert chart is not None and chart.shape == (640, 1000, 3)
    assert (chart[:, :, 0] > 150).sum() < chart[:, :, 0].size  # something is drawn


FASTEST = SHARED / "models" / "yolo-fastest"
BCCD_CFG = SHARED / "runs" / "bccd-darknet" / "bccd-fastest.cfg"


@needs_shared("runs/bccd-darknet")
def test_coco_weights_into_a_three_class_cfg():
    """yolo-fastest-1.1.weights (80 classes, recognised by size) into the 3-class BCCD cfg: the two
    convs before the heads are re-initialised and named, every other layer equals the COCO model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dp.Darknet(BCCD_CFG)
        report = load_start_weights(model, ROOT / "weights" / "yolo-fastest-1.1.weights")
        coco = dp.Darknet(ROOT / "cfg" / "yolo-fastest-1.1.cfg", ROOT / "weights" / "yolo-fastest-1.1.weights")
    assert [i for i, _ in report.skipped] == [120, 129]
    assert "24" in report.skipped[0][1] and "255" in report.skipped[0][1]
    assert report.source_cfg.endswith("yolo-fastest-1.1.cfg") and model.seen == 0
    with_weights = [l.index for l in model.layers if l.num_weights()]
    assert sorted(report.loaded) == [i for i in with_weights if i not in (120, 129)]
    for i in report.loaded:
        for a, b in zip(model.layers[i].weight_tensors(), coco.layers[i].weight_tensors()):
            assert torch.equal(a, b)
    text = "\n".join(report.lines())
    assert "layer 120 not loaded" in text and "layer 129 not loaded" in text


@needs_shared("runs/bccd-darknet")
def test_partial_file_and_a_cfg_that_does_not_fit(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dp.Darknet(BCCD_CFG)
        report = load_start_weights(model, SHARED / "runs" / "bccd-darknet" / "yolo-fastest-1.1.conv.109")
    # the file holds layers 0..108; 109..114 (maxpool, route) have no weights, 115 is the first it lacks
    assert report.partial_from == min(l.index for l in model.layers if l.index >= 109 and l.num_weights()) == 115
    assert report.loaded == [l.index for l in model.layers[:109] if l.num_weights()] and report.seen == 0
    cfg = make_cfg(tmp_path)
    bad = tmp_path / "other.weights"
    big_cfg = tmp_path / "big.cfg"
    big_cfg.write_text(cfg.read_text().replace("filters=16", "filters=32"))
    dp.Darknet(big_cfg).save_weights(bad)
    with pytest.raises(dp.WeightsError, match="--weights-cfg"):
        load_start_weights(dp.Darknet(cfg), bad)
    model = dp.Darknet(cfg)
    report = load_start_weights(model, bad, weights_cfg=big_cfg)
    assert [i for i, _ in report.skipped] == [1, 2]  # conv 1 (16 vs 32 filters), conv 2 (16 vs 32 inputs)
    assert report.loaded == [0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, cfg: str, weights: str, backup: str) -> None:
    torch.set_default_dtype(torch.float64)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train_detector(data, cfg, weights, TrainOptions(augment=None, workers=0, progress=False, chart=False,
                                                        backup=backup, device="cpu", log=lambda s: None))
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process(tmp_path, float64):
    """gloo, 2 processes x (batch 4, subdivisions 1) = 1 process x (batch 4, subdivisions 2): each forward
    pass sees the same 2 images, so after 3 iterations the trained tensors agree (the rolling
    statistics are each process's own and are not compared). In float64, as the subdivisions test."""
    data = make_data(tmp_path)
    two = make_cfg(tmp_path, 4, 1, 3, name="two.cfg")
    one = make_cfg(tmp_path, 4, 2, 3, name="one.cfg")
    w0 = start_weights(tmp_path, one)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(data), str(two), str(w0), str(tmp_path / "ddp")), nprocs=2)
    single = train_detector(data, one, w0, quiet(backup=str(tmp_path / "single"), device="cpu"))
    a = trained_tensors(one, single.final_weights)
    b = trained_tensors(two, tmp_path / "ddp" / "two_final.weights")
    assert any(not np.array_equal(x, s) for x, s in zip(a, trained_tensors(one, w0)))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)


def test_freeze_leaves_the_first_layers_untouched(tmp_path):
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=2)
    w0 = start_weights(tmp_path, cfg)
    result = train_detector(data, cfg, w0, quiet(freeze=2))
    before, after = trained_tensors(cfg, w0), trained_tensors(cfg, result.final_weights)
    # layers 0 and 1: weight, biases, scales each; layer 2: weight, biases
    assert all(np.array_equal(a, b) for a, b in zip(before[:6], after[:6]))
    assert not np.array_equal(before[6], after[6]) and not np.array_equal(before[7], after[7])


def test_cli_detector_train(tmp_path, capsys):
    from darknetpy.cli import main

    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=2)
    w0 = start_weights(tmp_path, cfg)
    status = main(["detector", "train", str(data), str(cfg), str(w0), "--augment", "none", "--workers", "0", "--quiet", "-dont_show"])
    out = capsys.readouterr()
    assert status == 0
    assert [int(LINE.match(l).group(1)) for l in out.out.splitlines() if LINE.match(l)] == [1, 2]
    for name in ("tiny_final.weights", "tiny_last.weights", "chart.png"):
        assert (tmp_path / "backup" / name).exists()
    status = main(["detector", "train", str(data), str(tmp_path / "missing.cfg"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "missing.cfg" in err[0]


def test_resize_shares_parameters_and_equals_a_model_built_at_that_size():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = dp.Darknet(ROOT / "cfg" / "yolov3-tiny.cfg").train()
        built = dp.Darknet(ROOT / "cfg" / "yolov3-tiny.cfg", width=320, height=224).train()
    built.load_state_dict(model.state_dict())
    weight = model.layers[0].weight
    model.resize(320, 224)
    assert model.input_shape == (3, 224, 320) and model.layers[0].weight is weight
    x = torch.rand(2, 3, 224, 320)
    for a, b in zip(model.forward_train(x), built.forward_train(x)):
        assert torch.equal(a, b)
    model.resize(416, 416)
    assert model.layers[0].weight is weight and model.forward_train(torch.rand(1, 3, 416, 416))[0].shape[-1] == 13


def test_multi_scale_training_changes_the_input_size(tmp_path):
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=12)
    cfg.write_text(cfg.read_text().replace("random=0", "random=1"))
    options = quiet(show_details=True)
    seen_sizes = []
    real = dp.Darknet.resize

    def spy(self, w, h):
        seen_sizes.append((w, h))
        return real(self, w, h)

    dp.Darknet.resize = spy
    try:
        result = train_detector(data, cfg, start_weights(tmp_path, cfg), options)
    finally:
        dp.Darknet.resize = real
    assert result.iteration == 12
    assert len(set(seen_sizes)) >= 1 and all(w % 32 == 0 and h % 32 == 0 for w, h in seen_sizes)
    assert any("resizing to" in line for line in options.lines)


def test_map_during_training_with_an_untrained_head(tmp_path):
    """-map at the last iteration: images without any detection are scored (AP 0), _best is written,
    and the weights of that iteration were saved before the evaluation."""
    data = make_data(tmp_path)
    cfg = make_cfg(tmp_path, max_batches=2)
    options = quiet(calc_map=True)
    result = train_detector(data, cfg, start_weights(tmp_path, cfg), options)
    assert [it for it, _ in result.maps] == [2] and 0.0 <= result.maps[0][1] <= 1.0
    assert any("mean average precision (mAP@0.50)" in line for line in options.lines)
    assert (tmp_path / "backup" / "tiny_best.weights").exists() and (tmp_path / "backup" / "tiny_last.weights").exists()

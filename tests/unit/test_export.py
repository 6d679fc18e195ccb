"""ONNX export: raw heads and decoded boxes in onnxruntime against PyTorch and darknetpy's decoder.

Needs the optional extra ``export`` (onnx, onnxruntime, onnxscript); skipped without it.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from darknetpy import Darknet, DarknetError, parse_cfg_text, sample_image, write_cfg
from darknetpy.cli import main
from darknetpy.detect import network_boxes
from darknetpy.export import DecodedHeads, RawHeads, check_onnx, export_onnx, onnx_detections, onnx_settings
from darknetpy.image import prepare

from ..conftest import ROOT, SHARED

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.unit

TOL = 1e-4  # acceptance: onnxruntime gives the PyTorch outputs within 1e-4
SHARED_IMAGES = ["eagle.jpg", "giraffe.jpg"]  # after the bundled dog.jpg, where ../shared/images is present


def _fastest() -> Darknet:
    return Darknet(ROOT / "cfg" / "yolo-fastest-1.1.cfg", ROOT / "weights" / "yolo-fastest-1.1.weights").eval()


def _tiny(folder) -> Darknet:
    """yolov4-tiny with random weights and realistic batch-norm statistics, written and read back by darknetpy.

    The statistics are those of a batch of random images (one training-mode pass with momentum 1), so
    every layer's inference output is of the usual scale instead of growing by 1/sqrt(1e-5) per layer.
    """
    cfg = ROOT / "cfg" / "yolov4-tiny.cfg"
    torch.manual_seed(0)
    model = Darknet(cfg)
    bns = [layer.bn for layer in model.layers if getattr(layer, "bn", None) is not None]
    with torch.no_grad():
        for bn in bns:
            bn.scales.uniform_(0.5, 1.5)
            bn.momentum = 1.0
        for layer in model.layers:
            if hasattr(layer, "biases"):
                layer.biases.normal_(0.0, 0.1)
        model.train()
        model(torch.rand(4, *model.input_shape))
    for bn in bns:
        bn.momentum = None
    path = folder / "yolov4-tiny-random.weights"
    model.save_weights(path)
    return Darknet(cfg, path).eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {"yolo-fastest-1.1": _fastest(), "yolov4-tiny": _tiny(tmp_path_factory.mktemp("weights"))}


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """One ONNX file per (model, graph), exported once with the default (dynamo) exporter."""
    folder = tmp_path_factory.mktemp("onnx")
    cache: dict = {}

    def get(name: str, decoded: bool):
        key = (name, decoded)
        if key not in cache:
            path = folder / f"{name}{'-decoded' if decoded else ''}.onnx"
            cache[key] = export_onnx(models[name], path, decoded=decoded)
        return cache[key]

    return get


def _images(model: Darknet, batch: int) -> torch.Tensor:
    """Letterboxed real images: the bundled dog.jpg, then eagle.jpg and giraffe.jpg where ../shared has them."""
    _, h, w = model.input_shape
    paths = [sample_image()] + [SHARED / "images" / n for n in SHARED_IMAGES if (SHARED / "images" / n).exists()]
    return torch.stack([prepare(paths[i % len(paths)], w, h, True)[0] for i in range(batch)])


def _run(report, x: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic
    assert [o.name for o in session.get_outputs()] == list(report.outputs)
    return session.run(None, {"images": x.numpy()})


@pytest.mark.slow  # the dynamo exporter takes 5-20 s per graph
@pytest.mark.parametrize("name", ["yolo-fastest-1.1", "yolov4-tiny"])
def test_raw_heads_graph_gives_the_pytorch_outputs(models, exported, name):
    model = models[name]
    report = exported(name, False)
    assert list(report.outputs) == [f"yolo_{i}" for i in model.head_indices]
    for batch in (1, 3):  # the same file: the batch dimension is dynamic
        x = _images(model, batch)
        with torch.no_grad():
            expected = model(x)
        got = _run(report, x)
        assert [g.shape for g in got] == [tuple(e.shape) for e in expected]
        diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
        print(f"{name} raw batch {batch}: max |onnxruntime - torch| = {diff:.3e}")
        assert diff <= TOL


@pytest.mark.slow  # the dynamo exporter takes 5-20 s per graph
@pytest.mark.parametrize("name", ["yolo-fastest-1.1", "yolov4-tiny"])
def test_decoded_graph_gives_darknets_candidate_boxes(models, exported, name):
    model = models[name]
    report = exported(name, True)
    _, net_h, net_w = model.input_shape
    boxes = sum(layer.n * layer.out_shape[1] * layer.out_shape[2] for layer in model.heads)
    assert report.outputs == {"detections": ["batch", boxes, 4 + 1 + 80]}
    for batch in (1, 3):
        x = _images(model, batch)
        with torch.no_grad():
            heads = model(x)
            expected = DecodedHeads(model).eval()(x)
        (got,) = _run(report, x)
        diff = float(np.abs(got - expected.numpy()).max())
        # darknetpy's get_yolo_detections with no threshold, boxes relative to the network input
        reference = network_boxes(model, heads, [(net_w, net_h)] * batch, thresh=-math.inf, letterbox=False)
        torch_diff = ort_diff = 0.0
        for i, dets in enumerate(reference):
            assert len(dets) == boxes
            rows = torch.cat([dets.boxes, dets.objectness[:, None], dets.probs], dim=1)
            torch_diff = max(torch_diff, float((expected[i] - rows).abs().max()))
            ort_diff = max(ort_diff, float(np.abs(got[i] - rows.numpy()).max()))
        print(
            f"{name} decoded batch {batch}: max |onnxruntime - torch| = {diff:.3e}; vs get_detections: "
            f"torch graph {torch_diff:.3e}, onnxruntime {ort_diff:.3e}"
        )
        assert diff <= TOL
        assert torch_diff <= 1e-6  # the same float32 operations as Yolo.get_detections
        assert ort_diff <= TOL


@pytest.mark.slow  # the dynamo exporter takes 5-20 s per graph
def test_decoded_graph_and_onnx_detections_give_detect(models, exported):
    model = models["yolo-fastest-1.1"]
    image = sample_image()
    report = exported("yolo-fastest-1.1", True)
    settings = onnx_settings(report.path)  # the model's defaults, stored in the file
    assert settings == {"net_size": (320, 320), "thresh": 0.25, "letterbox": False, "nms_kind": "greedynms", "beta_nms": 0.6}
    names = [f"class{i}" for i in range(80)]
    for letterbox in (False, True):
        x, size = prepare(image, 320, 320, letterbox)
        (decoded,) = _run(report, x[None])
        (got,) = onnx_detections(decoded, [size], **{**settings, "letterbox": letterbox}, names=names)
        (expected,) = model.detect(image, letterbox=letterbox, names=names)
        assert "class16" in {d.name for d in got}  # COCO 16: dog
        assert [(d.class_id, d.name) for d in got] == [(d.class_id, d.name) for d in expected]
        for g, e in zip(got, expected):
            a, b = g.to_dict(), e.to_dict()
            assert max(abs(a[k] - b[k]) for k in ("score", "objectness", "x", "y", "w", "h")) <= TOL
            assert max(abs(p - q) for p, q in zip(a["box"], b["box"])) <= TOL * max(size)


def _synthetic(extra: str) -> Darknet:
    cfg = (
        "[net]\nwidth=32\nheight=24\nchannels=3\n"
        "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"
        "[maxpool]\nsize=2\nstride=1\n"
        "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
        "[convolutional]\nfilters=16\nsize=1\nstride=1\nactivation=logistic\n"
        f"[yolo]\nclasses=3\nnum=3\nmask=0,2\nanchors=4,5, 9,7, 20,15\n{extra}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(parse_cfg_text(cfg))
    with torch.no_grad():
        model.layers[0].bn.rolling_variance.uniform_(0.5, 2.0)
        model.layers[0].bn.rolling_mean.normal_(0.0, 0.1)
    return model.eval()


@pytest.mark.parametrize("extra", ["", "scale_x_y=1.05\n", "new_coords=1\nscale_x_y=2.0\n"])
def test_torchscript_exporter_and_yolo_variants(tmp_path, extra):
    model = _synthetic(extra)
    path = tmp_path / "m.onnx"
    report = export_onnx(model, path, decoded=True, exporter="torchscript", check=True, check_batches=(1, 3))
    assert report.max_abs_diff is not None and report.max_abs_diff <= TOL
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        heads = model(x)
    (dets0, dets1) = network_boxes(model, heads, [(32, 24)] * 2, thresh=-math.inf, letterbox=False)
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    for i, dets in enumerate((dets0, dets1)):
        rows = torch.cat([dets.boxes, dets.objectness[:, None], dets.probs], dim=1).numpy()
        assert np.abs(got[i] - rows).max() <= TOL


def test_static_batch_and_raw_graph_of_a_small_model(tmp_path):
    model = _synthetic("")
    report = export_onnx(model, tmp_path / "s.onnx", dynamic_batch=False, batch=2, exporter="torchscript")
    assert report.outputs == {"yolo_4": [2, 16, 12, 16]} and report.input_shape == [2, 3, 24, 32]
    assert check_onnx(model, report.path, batch_sizes=(2,)) <= TOL
    assert model.training is False


def test_export_restores_the_training_flag(tmp_path):
    model = _synthetic("").train()
    export_onnx(model, tmp_path / "t.onnx", exporter="torchscript")
    assert model.training is True


def test_export_sets_an_inference_plan_aside(tmp_path):
    model = _synthetic("")
    if not hasattr(model, "optimize_for_inference"):
        pytest.skip("no Darknet.optimize_for_inference")
    model.optimize_for_inference()
    report = export_onnx(model, tmp_path / "p.onnx", decoded=True, exporter="torchscript", check=True)
    assert report.max_abs_diff <= TOL
    assert model.inference_plan is not None  # still attached afterwards


def test_decoded_export_refuses_heads_it_cannot_decode():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Darknet(ROOT / "cfg" / "yolov2-tiny.cfg")
    with pytest.raises(DarknetError, match=r"\[region\].*\[yolo\] heads only"):
        DecodedHeads(model)
    assert RawHeads(model).output_names() == [f"region_{model.head_indices[0]}"]


def test_unknown_exporter_is_an_error(tmp_path):
    with pytest.raises(DarknetError, match="unknown exporter"):
        export_onnx(_synthetic(""), tmp_path / "x.onnx", exporter="tflite")


def test_cli_export(tmp_path, capsys):
    cfg = tmp_path / "m.cfg"
    weights = tmp_path / "m.weights"
    model = _synthetic("")
    write_cfg(model.cfg, cfg)
    model.save_weights(weights)
    out = tmp_path / "m.onnx"
    status = main(["export", "--format", "onnx", str(cfg), str(weights), "-o", str(out), "--decoded", "--exporter", "torchscript"])
    assert status == 0 and out.exists()
    line = capsys.readouterr().out.strip()
    assert "decoded boxes" in line and "detections [batch, 384, 8]" in line and "max |diff|" in line
    assert main(["export", "--format", "onnx", str(cfg), str(tmp_path / "missing.weights"), "-o", str(out)]) == 2

"""ONNX export of a :class:`~darknetpy.model.Darknet` network, with a dynamic batch dimension.

Two graphs, both taking ``images``: ``(batch, C, H, W)`` float32, RGB in [0, 1], already resized or
letterboxed to the network size (what ``model(x)`` takes):

- **raw heads** (``decoded=False``): one output per head, exactly ``model(x)``, i.e. Darknet's
  ``l.output`` of each ``[yolo]``/``[region]``... layer, named ``<section>_<layer index>``
  (``yolo_30``, ``yolo_37``...), shaped ``(batch, n·(classes+5), h, w)``; a network without heads
  has one output ``output``, its last layer.
- **decoded** (``decoded=True``, ``[yolo]`` heads only): one output ``detections`` shaped
  ``(batch, boxes, 4 + 1 + classes)``: every candidate box of ``get_yolo_detections`` before any
  threshold, in Darknet's order (heads in layer order; in a head, cell by cell row-major, the
  mask's anchors inside a cell). Columns: ``x, y, w, h`` (box centre and size relative to the
  network input width/height, with the head's anchors, ``scale_x_y`` and ``new_coords`` applied),
  ``objectness``, then ``objectness·P(class)`` for each class (Darknet's ``prob``; nothing zeroed).

Outside the graph stay what depends on the image or the request: the resize/letterbox of the
input, the correction of boxes from network to image coordinates (``correct_yolo_boxes``), the
threshold and NMS. :func:`onnx_detections` does those with darknetpy's own code, so
``onnx_detections(session.run(...)[0], sizes, **onnx_settings(path))`` gives what
:meth:`Darknet.detect` gives. The file's metadata (``metadata_props``, onnxruntime's
``custom_metadata_map``) carries what that needs: ``darknetpy.net_width/net_height``,
``darknetpy.letter_box``, ``darknetpy.thresh``, ``darknetpy.nms_kind``, ``darknetpy.beta_nms``,
``darknetpy.names`` (JSON), ``darknetpy.graph`` and ``darknetpy.layout``.

Exporter: torch 2.13's default, the ``torch.export``-based ("dynamo") exporter, which needs
``onnxscript``. It is the exporter PyTorch maintains; the TorchScript exporter still works
(``exporter="torchscript"``, no onnxscript needed, several times faster to export) but warns that it
will be removed. Both give graphs equal to the PyTorch outputs within a few 1e-6 on the bundled
model and on yolov4-tiny (``tests/unit/test_export.py``). The ONNX packages are the optional extra
``export`` (``pip install 'darknetpy[export]'``).
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .boxes import Detections, correct_boxes
from .errors import DarknetError

if TYPE_CHECKING:
    from .detect import Detection
    from .model import Darknet

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "INPUT_NAME",
    "DECODED_NAME",
    "ExportReport",
    "RawHeads",
    "DecodedHeads",
    "export_onnx",
    "check_onnx",
    "onnx_detections",
    "onnx_settings",
]

DEFAULT_OPSET = 18  # the opset torch's ONNX functions are written for; onnxruntime >= 1.14 runs it
EXPORTERS = ("dynamo", "torchscript")
INPUT_NAME = "images"
DECODED_NAME = "detections"
_EXTRA_HINT = "pip install 'darknetpy[export]'"


class RawHeads(nn.Module):
    """``model(x)`` as a tuple (an exportable signature): every head's ``l.output``."""

    def __init__(self, model: "Darknet") -> None:
        super().__init__()
        self.model = model

    def output_names(self) -> list[str]:
        heads = self.model.heads
        return [f"{layer.section_type}_{layer.index}" for layer in heads] if heads else ["output"]

    def forward(self, x: Tensor) -> "tuple[Tensor, ...]":
        out = self.model(x)
        return tuple(out) if isinstance(out, list) else (out,)


class DecodedHeads(nn.Module):
    """``model(x)`` followed by ``get_yolo_detections`` without thresholds, for every image at once.

    Returns ``(batch, boxes, 4 + 1 + classes)``: ``x, y, w, h`` relative to the network input,
    objectness, ``objectness·class``. The maths follows :meth:`darknetpy.layers.yolo.Yolo.get_detections`
    operation for operation (``exp`` of w/h in double, as Darknet's C promotes it).
    """

    def __init__(self, model: "Darknet") -> None:
        super().__init__()
        self.model = model
        heads = model.heads
        if not heads:
            raise DarknetError(f"{model.cfg.path}: the network has no detection head to decode (export the raw graph)")
        other = [layer for layer in heads if layer.section_type != "yolo"]
        if other:
            layer = other[0]
            raise DarknetError(
                f"layer {layer.index} [{layer.section_type}]: the decoded ONNX graph supports [yolo] heads only "
                "(export the raw heads graph and decode it outside)"
            )
        classes = {layer.classes for layer in heads}
        if len(classes) != 1:
            raise DarknetError(f"the [yolo] heads disagree on classes ({sorted(classes)}): one decoded array cannot hold them")
        self.classes = classes.pop()
        _, self.net_h, self.net_w = model.input_shape
        self.specs: list[tuple[int, int, int, int, bool]] = []  # (n, h, w, classes+5, new_coords)
        for k, layer in enumerate(heads):
            o = layer.options
            _, h, w = layer.out_shape
            self.specs.append((layer.n, h, w, layer.classes + 5, bool(o.new_coords)))
            # broadcast over (batch, h, w, n): the candidate's column, row and anchor
            self.register_buffer(f"cols{k}", torch.arange(w, dtype=torch.float32).view(1, 1, w, 1), persistent=False)
            self.register_buffer(f"rows{k}", torch.arange(h, dtype=torch.float32).view(1, h, 1, 1), persistent=False)
            aw = torch.tensor([o.anchors[2 * m] for m in o.mask], dtype=torch.float64).view(1, 1, 1, -1)
            ah = torch.tensor([o.anchors[2 * m + 1] for m in o.mask], dtype=torch.float64).view(1, 1, 1, -1)
            self.register_buffer(f"anchor_w{k}", aw, persistent=False)
            self.register_buffer(f"anchor_h{k}", ah, persistent=False)

    @property
    def boxes(self) -> int:
        """Candidate boxes per image (``Σ h·w·n`` over the heads)."""
        return sum(n * h * w for n, h, w, _, _ in self.specs)

    def output_names(self) -> list[str]:
        return [DECODED_NAME]

    def decode(self, outputs: Sequence[Tensor]) -> Tensor:
        """The decoded candidates of the heads' outputs (``model(x)``)."""
        parts = []
        for k, (out, (n, h, w, per_anchor, new_coords)) in enumerate(zip(outputs, self.specs)):
            v = out.reshape(-1, n, per_anchor, h, w).permute(0, 3, 4, 1, 2)  # (batch, h, w, n, 5+C)
            cols, rows = getattr(self, f"cols{k}"), getattr(self, f"rows{k}")
            aw, ah = getattr(self, f"anchor_w{k}"), getattr(self, f"anchor_h{k}")
            x = (cols + v[..., 0]) / w
            y = (rows + v[..., 1]) / h
            if new_coords:
                bw = v[..., 2] * v[..., 2] * 4 * aw.float() / self.net_w
                bh = v[..., 3] * v[..., 3] * 4 * ah.float() / self.net_h
            else:
                bw = (torch.exp(v[..., 2].double()) * aw / self.net_w).float()
                bh = (torch.exp(v[..., 3].double()) * ah / self.net_h).float()
            obj = v[..., 4]
            prob = obj.unsqueeze(-1) * v[..., 5:]
            rows_out = torch.cat([torch.stack([x, y, bw, bh, obj], dim=-1), prob], dim=-1)
            parts.append(rows_out.reshape(-1, h * w * n, per_anchor))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.model(x))


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote (and, when checked, how close onnxruntime is to PyTorch)."""

    path: Path
    exporter: str
    opset: int
    decoded: bool
    dynamic_batch: bool
    input_name: str
    input_shape: list
    outputs: dict = field(default_factory=dict)  # name -> shape ("batch" for the dynamic dimension)
    max_abs_diff: float | None = None  # onnxruntime vs PyTorch over checked_batches
    checked_batches: tuple[int, ...] = ()

    def __str__(self) -> str:
        def shape(s: list) -> str:
            return "[" + ", ".join(str(v) for v in s) + "]"

        outs = ", ".join(f"{k} {shape(v)}" for k, v in self.outputs.items())
        text = (
            f"{self.path}: ONNX opset {self.opset} ({self.exporter} exporter, "
            f"{'decoded boxes' if self.decoded else 'raw heads'}), input {self.input_name} {shape(self.input_shape)}, outputs {outs}"
        )
        if self.max_abs_diff is not None:
            batches = ", ".join(str(b) for b in self.checked_batches)
            text += f"; onnxruntime vs PyTorch max |diff| {self.max_abs_diff:.2e} (batch {batches})"
        return text


def _require(module: str, why: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DarknetError(f"{why} needs the Python package {module}: {_EXTRA_HINT}") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress chatter and deprecation notices (errors still raise)."""
    names = ("torch.onnx", "torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes", "onnxscript")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*training mode.*")
            warnings.filterwarnings("ignore", message="Constant folding")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _plain_forward(model: "Darknet") -> Iterator[None]:
    """The layer-by-layer forward: an inference plan (:meth:`Darknet.optimize_for_inference`) runs fused
    in-place kernels that neither exporter can trace, so it is set aside while exporting and checking."""
    plan = getattr(model, "inference_plan", None)
    if plan is not None:
        model.inference_plan = None
    try:
        yield
    finally:
        if plan is not None:
            model.inference_plan = plan


def _wrapper(model: "Darknet", decoded: bool) -> "RawHeads | DecodedHeads":
    return DecodedHeads(model) if decoded else RawHeads(model)


def _example(model: "Darknet", batch: int) -> Tensor:
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    c, h, w = model.input_shape
    shape = (batch, c, h, w) if c and h and w else (batch, model.net.inputs)
    g = torch.Generator().manual_seed(0)
    return torch.rand(shape, generator=g).to(device)


def export_onnx(
    model: "Darknet",
    path: "str | os.PathLike",
    decoded: bool = False,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    batch: int = 1,
    exporter: str = "dynamo",
    check: bool = False,
    check_batches: Sequence[int] = (1, 2),
) -> ExportReport:
    """Write ``model`` as an ONNX file: the raw heads graph, or with ``decoded`` the candidate boxes.

    ``dynamic_batch`` makes the first dimension of the input and outputs free (otherwise it is
    ``batch``). ``exporter`` is ``"dynamo"`` (torch's default, needs onnxscript) or
    ``"torchscript"`` (deprecated by PyTorch, faster). With ``check`` the file is run in
    onnxruntime on random inputs of ``check_batches`` images and compared with PyTorch
    (:attr:`ExportReport.max_abs_diff`). The model is exported in inference mode; its own
    training flag is restored afterwards.
    """
    if exporter not in EXPORTERS:
        raise DarknetError(f"unknown exporter {exporter!r}; use {' or '.join(EXPORTERS)}")
    if exporter == "dynamo":
        _require("onnxscript", "the dynamo ONNX exporter")
        _require("onnx", "ONNX export")
    if opset < 11:
        raise DarknetError(f"opset {opset} is too old (the graph needs opset 11 or later; {DEFAULT_OPSET} is the default)")
    if not dynamic_batch and batch < 1:
        raise DarknetError(f"batch must be at least 1, got {batch}")
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise DarknetError(f"{path}: the folder {path.parent} does not exist")
    was_training = model.training
    model.eval()
    wrapper = _wrapper(model, decoded).eval()
    names = wrapper.output_names()
    # batch 1 would let torch.export specialise the dimension to 1: trace with 2 when it is dynamic
    x = _example(model, 2 if dynamic_batch else batch)
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1_800_000_000  # protobuf's 2 GB
    try:
        with _quiet(), torch.no_grad(), _plain_forward(model):
            if exporter == "dynamo":
                dynamic = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic_batch else None
                torch.onnx.export(
                    wrapper, (x,), str(path), dynamo=True, input_names=[INPUT_NAME], output_names=names,
                    dynamic_shapes=dynamic, opset_version=opset, external_data=large, optimize=True, verbose=False,
                )
            else:
                axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]} if dynamic_batch else None
                torch.onnx.export(
                    wrapper, (x,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=names,
                    dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
                )
            out = wrapper(x)
            shapes = [list(t.shape) for t in (out if isinstance(out, tuple) else (out,))]
        _write_metadata(path, model, decoded, large)
    except DarknetError:
        raise
    except Exception as err:  # the exporters raise many kinds; report one located line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DarknetError(f"{path}: ONNX export ({exporter}) of {model.cfg.path} failed: {type(err).__name__}: {first}") from err
    finally:
        model.train(was_training)
    for s in shapes:
        if dynamic_batch:
            s[0] = "batch"
    in_shape = list(x.shape)
    if dynamic_batch:
        in_shape[0] = "batch"
    report = ExportReport(path, exporter, opset, decoded, dynamic_batch, INPUT_NAME, in_shape, dict(zip(names, shapes)))
    if check:
        batches = tuple(check_batches) if dynamic_batch else (batch,)
        report.max_abs_diff = check_onnx(model, path, decoded, batches)
        report.checked_batches = batches
    return report


_LAYOUT = (
    "detections[batch, box, 4 + 1 + classes] = x, y, w, h (centre and size relative to the network input), "
    "objectness, objectness*P(class) per class; before threshold, letterbox correction and NMS"
)


def _settings(model: "Darknet", decoded: bool) -> dict[str, str]:
    import json

    from . import __version__
    from .detect import nms_settings, default_letterbox

    kind, beta = nms_settings(model)
    _, h, w = model.input_shape
    props = {
        "darknetpy.version": __version__,
        "darknetpy.cfg": str(model.cfg.path).replace("\\", "/").rsplit("/", 1)[-1],
        "darknetpy.flavor": model.flavor.name,
        "darknetpy.graph": "decoded" if decoded else "raw",
        "darknetpy.net_width": str(w),
        "darknetpy.net_height": str(h),
        "darknetpy.letter_box": "1" if default_letterbox(model) else "0",
        "darknetpy.thresh": repr(float(model.flavor.detect_thresh)),
        "darknetpy.nms_kind": str(kind),
        "darknetpy.beta_nms": repr(float(beta)),
    }
    if decoded:
        props["darknetpy.layout"] = _LAYOUT
    if model.names:
        props["darknetpy.names"] = json.dumps(list(model.names))
    return props


def _write_metadata(path: Path, model: "Darknet", decoded: bool, large: bool) -> None:
    """Store the post-processing settings in the file (skipped without the onnx package or for external data)."""
    if large:
        return
    try:
        import onnx
    except ImportError:
        return
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, _settings(model, decoded))
    onnx.save(proto, str(path))


def onnx_settings(path: "str | os.PathLike") -> dict:
    """The keyword arguments of :func:`onnx_detections` stored in an exported file's metadata.

    ``net_size``, ``thresh``, ``letterbox``, ``nms_kind``, ``beta_nms`` and (when the model had class
    names) ``names``: the model's defaults, as :meth:`Darknet.detect` would use them.
    """
    import json

    onnx = _require("onnx", "reading ONNX metadata")
    proto = onnx.load(str(path), load_external_data=False)  # type: ignore[attr-defined]
    props = {p.key: p.value for p in proto.metadata_props}
    if "darknetpy.net_width" not in props:
        raise DarknetError(f"{path}: no darknetpy metadata (not written by darknetpy.export_onnx)")
    out = {
        "net_size": (int(props["darknetpy.net_width"]), int(props["darknetpy.net_height"])),
        "thresh": float(props["darknetpy.thresh"]),
        "letterbox": props["darknetpy.letter_box"] == "1",
        "nms_kind": props["darknetpy.nms_kind"],
        "beta_nms": float(props["darknetpy.beta_nms"]),
    }
    if "darknetpy.names" in props:
        out["names"] = json.loads(props["darknetpy.names"])
    return out


def check_onnx(model: "Darknet", path: "str | os.PathLike", decoded: bool = False, batch_sizes: Sequence[int] = (1, 2), inputs: Tensor | None = None) -> float:
    """Max absolute difference between onnxruntime running ``path`` and PyTorch, over every output.

    ``inputs`` (``(N, C, H, W)``) is used as given; otherwise random images for each of ``batch_sizes``.
    """
    ort = _require("onnxruntime", "checking an ONNX file")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    input_name = session.get_inputs()[0].name
    was_training = model.training
    model.eval()
    wrapper = _wrapper(model, decoded).eval()
    worst = 0.0
    try:
        batches = [inputs] if inputs is not None else [_example(model, b) for b in batch_sizes]
        for x in batches:
            with torch.no_grad(), _plain_forward(model):
                expected = wrapper(x)
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = session.run(None, {input_name: x.detach().cpu().float().numpy()})
            if len(got) != len(expected):
                raise DarknetError(f"{path}: {len(got)} outputs, PyTorch gives {len(expected)}")
            for g, e in zip(got, expected):
                if tuple(g.shape) != tuple(e.shape):
                    raise DarknetError(f"{path}: output of shape {g.shape}, PyTorch gives {tuple(e.shape)}")
                worst = max(worst, float(np.abs(g.astype(np.float64) - e.detach().cpu().double().numpy()).max(initial=0.0)))
    finally:
        model.train(was_training)
    return worst


def onnx_detections(
    decoded: "np.ndarray | Tensor",
    image_sizes: Sequence[tuple[int, int]],
    net_size: tuple[int, int],
    thresh: float = 0.25,
    nms: float = 0.45,
    letterbox: bool = False,
    names: Sequence[str] | None = None,
    nms_kind: str = "default",
    beta_nms: float = 0.6,
) -> "list[list[Detection]]":
    """Darknet's detections from the decoded graph's output, per image (darknetpy's threshold and NMS).

    ``decoded``: ``(batch, boxes, 5 + classes)`` as the decoded graph returns it; ``image_sizes``:
    the original ``(width, height)`` of each image; ``net_size``: the network ``(width, height)``;
    ``letterbox``: whether the inputs were letterboxed (pjreddie always, AlexeyAB with ``letter_box=1``,
    see :func:`darknetpy.detect.default_letterbox`). Same steps as :func:`darknetpy.detect.detect`:
    objectness ``> thresh``, probabilities ``<= thresh`` zeroed, ``correct_yolo_boxes``, NMS
    (``nms=0``: none), then one :class:`Detection` per box and class above ``thresh``, best first.
    """
    from .detect import detections_to_list
    from .nms import nms as run_nms

    data = torch.as_tensor(np.asarray(decoded) if not isinstance(decoded, Tensor) else decoded).float().cpu()
    if data.dim() != 3 or data.shape[2] < 6:
        raise DarknetError(f"expected the decoded output (batch, boxes, 5 + classes), got {tuple(data.shape)}")
    if data.shape[0] != len(image_sizes):
        raise DarknetError(f"{data.shape[0]} images in the output, {len(image_sizes)} image sizes given")
    net_w, net_h = net_size
    results = []
    for rows, (image_w, image_h) in zip(data, image_sizes):
        obj = rows[:, 4]
        keep = obj > thresh
        rows = rows[keep]
        probs = rows[:, 5:]
        probs = torch.where(probs > thresh, probs, torch.zeros_like(probs))
        boxes = correct_boxes(rows[:, :4], image_w, image_h, net_w, net_h, letterbox)
        dets = Detections(boxes, rows[:, 4], probs)
        if nms > 0:
            dets = run_nms(dets, nms, nms_kind, beta_nms)
        results.append(detections_to_list(dets, (image_w, image_h), thresh, names))
    return results

"""Cross-check against OpenCV's Darknet importer (``cv2.dnn.readNetFromDarknet``).

OpenCV is an independent reading of the same two files: its own cfg parser, its own weights walk,
its own kernels. For every zoo cfg that OpenCV can load and darknetpy can build, this module

1. writes a copy of the cfg at a small input size (:func:`pick_size`: the smallest multiple of 32
   from 64 up whose maps all stay at least 4×4), with the Darknet defaults that OpenCV reads
   differently written out (:func:`small_cfg`: ``[maxpool]`` stride/size/padding, ``[upsample]`` and
   ``[reorg]`` stride), which changes nothing for Darknet;
2. builds ``Darknet`` from it with seeded random weights and realistic batch-norm statistics
   (:func:`randomize`) and writes them with ``save_weights``;
3. derives OpenCV's weights file from those bytes (:func:`opencv_weights`), only where OpenCV's
   formulas differ from Darknet's, so that OpenCV computes Darknet's function (our model and our
   file keep Darknet's semantics):

   - batch norm: OpenCV divides by ``sqrt(var + 1e-6)``; AlexeyAB by ``sqrt(var + 1e-5)``, pjreddie's
     CPU code by ``sqrt(var) + 1e-6`` (darknet-reference.md §3.1, §9). OpenCV is given
     ``var' = var + 1e-5 - 1e-6`` (AlexeyAB) or ``var' = (sqrt(var) + 1e-6)^2 - 1e-6`` (pjreddie),
     computed in double, so that its ``sqrt(var' + 1e-6)`` is Darknet's divisor;
   - ``[connected]`` with batch norm: Darknet stores ``biases, weights, scales, mean, variance``;
     OpenCV reads ``biases, scales, mean, variance, weights`` (the convolution's order), so the OpenCV
     file has them moved. No zoo cfg has one; :func:`test_connected_batchnorm_order` checks it;
4. runs the same random NCHW input (OpenCV takes a Darknet net's blob as is: no scaling, no channel
   swap) and compares, per Darknet layer, ``l.output`` with the OpenCV layer that holds it
   (:func:`darknet_outputs`), the conv before each ``[yolo]``/``[region]`` included; then OpenCV's
   normal output path (fusion on): the last layer, or its decoded ``[yolo]``/``[region]`` rows against
   the rows recomputed from our head output (§9, :func:`yolo_rows`, :func:`region_rows`).

Where OpenCV differs from Darknet and the difference is handled here rather than compared:

- ``[cost]``: OpenCV makes it an identity; Darknet's ``l.output`` is zeros at inference (no truth), so
  OpenCV's output is compared with the cost layer's input;
- keys OpenCV ignores although they change Darknet's forward (``dilation``, ``xnor``, softmax
  ``temperature``, reorg ``flatten``...): the cfg is skipped (:data:`_IGNORED_BY_OPENCV`), as are
  pjreddie shortcuts between maps of different sizes (OpenCV's Eltwise needs equal sizes), softmax over
  a map with more than one pixel (OpenCV normalises per pixel over the channels) and ``[crop]``
  without ``noadjust`` (OpenCV 4.x adds a layer for the ``2x-1`` that its weights reader does not
  count, so each later layer gets the weights of the one before: its forward fails, ``conv_2`` having
  no weights);
- Winograd convolution is switched off in OpenCV: an approximation whose error is OpenCV's own;
- fusion is switched off for the per-layer outputs: with it on, OpenCV writes a conv whose output
  feeds a concat straight into the concat's buffer, and the blob it returns for that conv is stale
  (garbage, e.g. yolov4 layer 2 returns values of 1e30; the concat itself is right);
- rounding-level differences are left to the tolerance: OpenCV's leaky is ``0.1f*x`` where pjreddie
  rounds ``.1*x`` from double, its mish/swish/logistic are other formulas, it folds batch norm into the
  conv weights, sums in other orders, and adds the H·W values of a global avgpool one by one in
  float32 (as Darknet does; torch sums pairwise, more exactly).

Tolerance, per compared tensor and relative to its largest magnitude:
``max|ours - opencv| <= K_NOISE · max(noise, EPS32)``, where ``noise`` is float32's own rounding of this
network at that layer, measured: ``max|ours32 - ours64| / max|ours64|`` with the same model run in
float64 (the exact function). Two correct float32 implementations both sit at about that distance
from the exact values, so they differ by up to about twice it. Measured over the zoo (8091 checks,
decoded rows included): median 1.1×, 99% below 2.1×, largest 3.7× (decoded w,h of a region head,
which OpenCV computes on its fused path). ``K_NOISE = 5`` leaves room for another CPU's summation
order (4 holds on the machine this was measured on, with a 9% margin). The noise is taken as at
least that of the layer's inputs (rounding upstream does not go away), and at least
``EPS32·sqrt(H·W)`` for a global avgpool (the error of a one-by-one float32 sum, which torch's
pairwise sum does not make).

A fixed tolerance cannot work: the noise of these random networks grows with depth, from 3e-7 at
the first conv to 1e-3..3e-3 at the end of the deepest detectors (ours and OpenCV's alike; at 2×2
maps it reaches 1e-2, hence :func:`pick_size`). A wrong formula shows far above the noise of the
layer where it first acts: :func:`test_the_comparison_sees_a_wrong_epsilon` gives OpenCV Darknet's
own variances, and the first batch-normalised layer is off by 3e-2 (AlexeyAB, eps 1e-5 against
1e-6) and 4e-4 (pjreddie, eps outside against inside the sqrt) with tolerances near 1e-6.
"""
from __future__ import annotations

import copy
import math
import re
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from darknetpy import Darknet, DarknetError, parse_cfg_text, read_cfg, write_cfg
from darknetpy.cfg import CfgFile
from darknetpy.layers.batchnorm import BatchNormParams
from darknetpy.summary import shape_model

from ..conftest import ZOO, zoo_expected, zoo_flavor

cv2 = pytest.importorskip("cv2")

@pytest.fixture()
def scratch():
    """A folder deleted as soon as the test ends: the random weights files of big cfgs are
    hundreds of MB each (pytest's tmp_path would keep three runs of them)."""
    with tempfile.TemporaryDirectory(prefix="darknetpy-opencv-") as folder:
        yield Path(folder)


pytestmark = pytest.mark.parity

EXPECTED = zoo_expected()
CASES = sorted(n for n, e in EXPECTED.items() if e["darknet"] == "ok")

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7
K_NOISE = 5.0  # tolerance = K_NOISE × max(float32 rounding noise there, EPS32); see above
OPENCV_BN_EPS = 1e-6  # darknet_io.cpp: bn_param.set<float>("eps", 1E-6)
SIZES = (64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512)
MAX_SIZE = 256

# Keys OpenCV's importer does not read although they change Darknet's forward (darknet-reference.md
# §9 "silently ignored"), with their neutral value (None: any value). A cfg using one is skipped.
_IGNORED_BY_OPENCV = {
    "convolutional": {"dilation": 1, "stride_x": None, "stride_y": None, "antialiasing": 0, "share_index": None,
                      "xnor": 0, "binary": 0},
    "maxpool": {"stride_x": None, "stride_y": None, "maxpool_depth": 0, "antialiasing": 0, "out_channels": None},
    "shortcut": {"weights_type": "none", "weights_normalization": "none"},
    "scale_channels": {"scale_wh": 0},
    "softmax": {"temperature": 1},
    "upsample": {"scale": 1},
    "reorg": {"flatten": 0, "extra": 0, "reverse": 0},
    "region": {"background": 0},
}
# OpenCV names the output of Darknet layer i `<type>_<i>`, except activations (and crop's
# scale), which it names after the already incremented counter: `leaky_<i+1>`.
_POST_INCREMENT = {"leaky", "relu", "swish", "mish", "logistic", "tanh", "adjust_crop"}


# ---- the cfg ------------------------------------------------------------------------------------
def opencv_cfg_error(path: Path) -> str | None:
    """OpenCV's parse error for a cfg, or None when it reads it."""
    try:
        cv2.dnn.readNetFromDarknet(str(path))
    except cv2.error as err:
        lines = [l for l in str(err).splitlines() if "error:" in l] or [str(err)]
        return re.sub(r"^.*error: ", "", lines[-1]).strip()
    return None


def ignored_keys(cfg: CfgFile) -> list[str]:
    """Keys of the cfg that change Darknet's forward but that OpenCV ignores (§9)."""
    found = []
    for sec in cfg.layers:
        name = {"conv": "convolutional", "max": "maxpool", "soft": "softmax"}.get(sec.name, sec.name)
        for key, neutral in _IGNORED_BY_OPENCV.get(name, {}).items():
            if key in sec and (neutral is None or sec.get_str(key) not in (str(neutral), f"{neutral}.0")):
                found.append(f"[{sec.name}] {key}={sec.get_str(key)} (line {sec.line})")
        if name == "shortcut" and "," in (sec.get_str("from") or ""):
            found.append(f"[shortcut] from={sec.get_str('from')} (OpenCV reads the first layer only; line {sec.line})")
    return found


def small_cfg(cfg: CfgFile, size: int) -> CfgFile:
    """A copy at ``size``×``size``, with the Darknet defaults OpenCV reads differently written out.

    Writing a key with Darknet's own default value changes nothing for Darknet (or for us), and makes
    OpenCV read Darknet's value: ``[maxpool]`` stride 1 / size=stride / padding=size-1 (OpenCV: 2 / 2),
    ``[upsample]`` stride 2 (OpenCV: 1), ``[reorg]`` stride 1 (OpenCV: 2).
    """
    out = cfg.copy()
    out.net.set("width", size)
    out.net.set("height", size)
    out.net.remove("inputs")
    for sec in out.layers:
        if sec.name in ("maxpool", "max"):
            stride = sec.get_int("stride", 1)
            kernel = sec.get_int("size", stride)
            sec.set("stride", stride)
            sec.set("size", kernel)
            sec.set("padding", sec.get_int("padding", kernel - 1))
        elif sec.name == "upsample":
            sec.set("stride", sec.get_int("stride", 2))
        elif sec.name == "reorg":
            sec.set("stride", sec.get_int("stride", 1))
    return out


def build_quietly(cfg: CfgFile, flavor: str, meta: bool = False) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if meta:
            return shape_model(cfg, flavor)
        return Darknet(cfg, flavor=flavor)


def _smallest_map(model: Darknet) -> int:
    """The smallest h or w of any layer output (layers whose input is already 1×1 are left out)."""
    return min(
        (min(l.out_shape[1:]) for l in model.layers
         if l.section_type in ("convolutional", "maxpool", "route", "shortcut", "upsample", "reorg", "yolo", "region")
         and min(l.in_shape[1:]) >= 2),
        default=0,
    )


def pick_size(cfg: CfgFile, flavor: str) -> int:
    """The smallest size in :data:`SIZES` (up to :data:`MAX_SIZE`) that keeps every map at least 4×4.

    Smaller maps still build, but at 2×2 a random network becomes so ill-conditioned that float32
    rounding alone reaches 1e-2 of its outputs (measured, yolov4 at 64: ours against ours in double),
    which would make every tolerance loose. Where 4×4 would need more than MAX_SIZE (a stride-128
    net), the smallest size with 2×2 maps is used. (A layer whose input is already 1×1, after a
    global avgpool or a connected layer, is exempt.)
    """
    last: Exception | None = None
    fallback = None
    for size in SIZES:
        try:
            model = build_quietly(small_cfg(cfg, size), flavor, meta=True)
        except DarknetError as err:
            last = err
            continue
        smallest = _smallest_map(model)
        if smallest >= 4 and size <= MAX_SIZE:
            return size
        if smallest >= 2 and fallback is None:
            fallback = size
        if size >= MAX_SIZE and fallback is not None:
            return fallback
    if fallback is not None:
        return fallback
    raise last if last is not None else ValueError("no size fits")


def opencv_shape_problem(model: Darknet) -> str | None:
    """A structure OpenCV's layers cannot run although it parses the cfg, or None."""
    for layer in model.layers:
        if layer.section_type == "shortcut":
            for i in layer.sources:
                if model.layers[i].out_shape[1:] != layer.in_shape[1:]:
                    return (f"layer {layer.index} [shortcut] adds a {model.layers[i].out_shape[1:]} map to a "
                            f"{layer.in_shape[1:]} one (pjreddie samples; OpenCV's Eltwise needs equal sizes)")
        if layer.section_type == "softmax":
            c, h, w = layer.in_shape
            if h * w > 1:
                return (f"layer {layer.index} [softmax] over {c}x{h}x{w}: Darknet normalises over all "
                        f"{c * h * w} values, OpenCV over the channels at each pixel")
        if layer.num_weights() and layer.section_type not in ("convolutional", "connected"):
            return f"layer {layer.index} [{layer.section_type}] has weights, which OpenCV does not read"
    return None


# ---- weights ------------------------------------------------------------------------------------
def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def randomize(model: Darknet, x: torch.Tensor, seed: int) -> None:
    """Seeded random biases, scales and batch-norm statistics, in place (weights: ``reset_parameters``).

    The statistics are set while ``x`` runs through the net, from the output each ``BatchNormParams``
    is about to normalise: ``rolling_variance = ms·U(0.7, 1.4)`` where ``ms`` is the channel's mean
    square (floored at 1e-4 of the layer's average), ``rolling_mean = 0.1·sqrt(ms)·N(0,1)``,
    ``scales = U(0.8, 1.2)``; biases are ``N(0, 0.1)``. So every layer's output stays of order 1 over
    any depth, with positive variances and small means, as in a trained net. (The channel's variance
    and mean instead would make ``x - mean`` a cancellation on the tiny maps of these sizes.)

    As in trained nets, some channels are nearly dead: in every batch-normalised layer, 1 + 5% of the
    filters are scaled by 10^U(-3.5,-1.5), so their variance is 1e-7..1e-3 and the batch-norm epsilon
    matters there (1e-5 against 1e-6 is a 5% to 95% change of the output): a wrong epsilon, or one
    on the wrong side of the sqrt, cannot hide in the rounding noise.
    """
    g = torch.Generator().manual_seed(seed)

    def stats(module: BatchNormParams, args: tuple) -> None:
        y = args[0]
        dims = [0] + list(range(2, y.dim()))
        ms = (y.double() * y.double()).mean(dim=dims)
        ms = ms.clamp_min(1e-4 * float(ms.mean()) + 1e-12)
        n = ms.numel()
        module.rolling_variance.copy_(ms * torch.empty(n, dtype=torch.float64).uniform_(0.7, 1.4, generator=g))
        module.rolling_mean.copy_(0.1 * ms.sqrt() * torch.randn(n, dtype=torch.float64, generator=g))
        module.scales.copy_(torch.empty(n).uniform_(0.8, 1.2, generator=g))

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("biases"):
                p.normal_(0.0, 0.1, generator=g)
        for layer in model.layers:
            owner = getattr(layer, "block", layer)
            if getattr(owner, "bn", None) is None or not hasattr(owner, "weight"):
                continue
            w = owner.weight
            n = w.shape[0]
            quiet = torch.randperm(n, generator=g)[: 1 + n // 20]
            w[quiet] *= (10 ** torch.empty(len(quiet)).uniform_(-3.5, -1.5, generator=g)).view(-1, *([1] * (w.dim() - 1)))
        hooks = [m.register_forward_pre_hook(stats) for m in model.modules() if isinstance(m, BatchNormParams)]
        try:
            model(x)
        finally:
            for h in hooks:
                h.remove()


def opencv_weights(model: Darknet, darknet_file: Path, out: Path, eps: bool = True, reorder: bool = True) -> None:
    """OpenCV's weights file from the bytes ``save_weights`` wrote (see the module docstring, 3).

    ``eps=False`` leaves the variances as Darknet's and ``reorder=False`` a [connected]'s tensors in
    Darknet's order (to check that the comparison sees the difference).
    """
    buf = bytearray(darknet_file.read_bytes())
    header = model.header.size if model.header is not None else 20
    body = np.frombuffer(buf, dtype="<f4", offset=header)  # a writable view of buf
    pos = 0
    for layer in model.layers:
        need = layer.num_weights()
        bn = getattr(getattr(layer, "block", layer), "bn", None)
        if need and bn is not None:
            n = bn.scales.numel()
            part = body[pos : pos + need]
            if layer.section_type == "connected" and reorder:  # Darknet: b, W, s, m, v -> OpenCV: b, s, m, v, W
                part[:] = np.concatenate([part[:n], part[need - 3 * n :], part[n : need - 3 * n]])
            if eps and (reorder or layer.section_type != "connected"):
                var = part[3 * n : 4 * n].astype(np.float64)
                if model.flavor.bn_eps_inside_sqrt:  # sqrt(var' + 1e-6) = sqrt(var + eps)
                    var = var + (model.flavor.bn_eps - OPENCV_BN_EPS)
                else:  # sqrt(var' + 1e-6) = sqrt(var) + eps
                    var = (np.sqrt(var) + model.flavor.bn_eps) ** 2 - OPENCV_BN_EPS
                part[3 * n : 4 * n] = var.astype(np.float32)
        pos += need
    assert pos == body.size, f"{darknet_file}: {body.size} floats, the layers hold {pos}"
    out.write_bytes(buf)


# ---- OpenCV -------------------------------------------------------------------------------------
def darknet_outputs(net) -> dict[int, str]:
    """Darknet layer index -> name of the OpenCV layer that holds its output.

    OpenCV's importer turns Darknet layer ``i`` into a few consecutive layers (``conv_i``, ``bn_i``,
    ``leaky_{i+1}``; ``permute_i``, ``yolo_i``; ``crop_i``, ``adjust_crop_{i+1}``...); the last of them
    holds ``l.output``. A region head is named ``detection_out`` and follows its ``permute_i``.
    """
    out: dict[int, str] = {}
    key = -1
    for name in net.getLayerNames():
        m = re.match(r"(.+)_(\d+)$", name)
        if m:
            key = int(m.group(2)) - (1 if m.group(1) in _POST_INCREMENT else 0)
        out[key] = name
    return out


def opencv_net(cfg_path: Path, weights_path: Path):
    net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(weights_path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableWinograd(False)  # an approximate conv; its error is OpenCV's own, not Darknet's
    return net


# ---- decoding (§9: layers/region_layer.cpp) ---------------------------------------------------
def _grid(h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of OpenCV's decoded row ``(y·W + x)·n + a`` (float32: numpy keeps float32 math)."""
    return (np.tile(np.repeat(np.arange(w), n), h).astype(np.float32),
            np.repeat(np.arange(h), w * n).astype(np.float32))


def yolo_rows(layer, out: torch.Tensor, net_w: int, net_h: int) -> np.ndarray:
    """OpenCV's decoded ``[yolo]`` rows ``[x, y, w, h, obj, obj·cls]`` from our head output (batch 1), in
    the output's precision (float32 as OpenCV, or double for the exact rows), before OpenCV's threshold
    on ``obj·cls`` (applied by the caller).

    x = (col + our x)/W (ours is already ``σ·S - (S-1)/2``); w = ``e^tw·a_w/net_w``, or ``tw²·4·a_w/net_w``
    with ``new_coords``; anchors in input pixels.
    """
    n, per = layer.n, layer.classes + 5
    _, _, h, w = out.shape
    v = out.detach().view(n, per, h, w).permute(2, 3, 0, 1).reshape(h * w * n, per).numpy()
    cols, rows = _grid(h, w, n)
    anchors = np.array([layer.options.anchor(m) for m in layer.options.mask], dtype=v.dtype)
    aw, ah = np.tile(anchors[:, 0], h * w), np.tile(anchors[:, 1], h * w)
    dec = np.empty_like(v)
    dec[:, 0] = (cols + v[:, 0]) / w
    dec[:, 1] = (rows + v[:, 1]) / h
    if layer.options.new_coords:
        dec[:, 2] = v[:, 2] ** 2 * 4 * aw / net_w
        dec[:, 3] = v[:, 3] ** 2 * 4 * ah / net_h
    else:
        dec[:, 2] = np.exp(v[:, 2]) * aw / net_w
        dec[:, 3] = np.exp(v[:, 3]) * ah / net_h
    dec[:, 4] = v[:, 4]
    dec[:, 5:] = v[:, 4:5] * v[:, 5:]
    return dec


def region_rows(layer, out: torch.Tensor) -> np.ndarray:
    """OpenCV's decoded ``[region]`` rows from our head output (either fork's layout, via ``entries``).

    x = (col + σ(tx))/W (pjreddie's output already holds σ(tx), AlexeyAB's the raw tx); w = ``e^tw·a_w/W``
    (anchors in grid cells); obj = σ; then ``obj·softmax(cls)``, thresholded by the caller.
    """
    o = layer.options
    e = layer.entries(out.detach())[0]  # (n, size, H, W)
    n, size, h, w = e.shape
    v = e.permute(2, 3, 0, 1).reshape(h * w * n, size).numpy().copy()
    one = v.dtype.type(1)
    if not o.xy_activated:
        v[:, 0:2] = one / (one + np.exp(-v[:, 0:2]))
    cols, rows = _grid(h, w, n)
    anchors = np.array([o.anchor(a) for a in range(n)], dtype=v.dtype)
    aw, ah = np.tile(anchors[:, 0], h * w), np.tile(anchors[:, 1], h * w)
    dec = np.empty((h * w * n, 5 + o.classes), dtype=v.dtype)
    dec[:, 0] = (cols + v[:, 0]) / w
    dec[:, 1] = (rows + v[:, 1]) / h
    dec[:, 2] = np.exp(v[:, 2]) * aw / w
    dec[:, 3] = np.exp(v[:, 3]) * ah / h
    dec[:, 4] = v[:, 4]
    dec[:, 5:] = v[:, 4:5] * v[:, 5 : 5 + o.classes]
    return dec


# ---- the comparison -----------------------------------------------------------------------------
@dataclass
class Check:
    what: str  # "layer 12 [convolutional]", "yolo 30 w,h", ...
    err: float  # max|ours - opencv| / max|ours|
    noise: float  # float32 rounding there (see the module docstring)
    left_out: int = 0  # thresholded values within the noise of the threshold, not compared

    @property
    def tol(self) -> float:
        return K_NOISE * max(self.noise, EPS32)

    @property
    def ok(self) -> bool:
        return self.err <= self.tol  # False for NaN

    @property
    def ratio(self) -> float:
        return self.err / max(self.noise, EPS32)

    def __str__(self) -> str:
        return (f"{self.what}: max|ours-opencv| = {self.err:.3g}·max|ours|, tolerance {self.tol:.3g} "
                f"({K_NOISE:g}× float32 noise {self.noise:.2g})")


@dataclass
class Result:
    name: str
    size: int
    checks: list[Check] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # Darknet layers OpenCV does not expose

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def relative_error(ours: np.ndarray, theirs: np.ndarray, keep: np.ndarray | None = None) -> float:
    """``max|ours - theirs| / max|ours|`` (the difference over ``keep`` only, when given)."""
    ours = np.asarray(ours, dtype=np.float64)
    diff = np.abs(ours - np.asarray(theirs, dtype=np.float64).reshape(ours.shape))
    if keep is not None:
        diff = np.where(keep, diff, 0.0)
    scale = float(np.abs(ours).max())
    return float(diff.max()) / scale if scale > 0 else float(diff.max())


def skip_reason(name: str) -> str | None:
    path = ZOO / name
    err = opencv_cfg_error(path)
    if err:
        return f"OpenCV cannot load it: {err}"
    cfg = read_cfg(path)
    ignored = ignored_keys(cfg)
    if ignored:
        return "OpenCV ignores keys that change the forward: " + "; ".join(ignored[:3])
    if any(sec.name == "crop" and not sec.get_int("noadjust", 0) for sec in cfg.layers):
        return ("[crop] without noadjust: OpenCV adds a layer for the 2x-1 (adjust_crop) that its weights reader "
                "does not count, so each later layer gets the weights of the one before (its forward fails: conv_2 "
                "has no weights)")
    return None


@dataclass
class Prepared:
    name: str
    size: int
    small: CfgFile
    model: Darknet
    x: torch.Tensor
    cfg_path: Path
    darknet_weights: Path


def prepare_cfg(name: str, cfg: CfgFile, flavor: str, size: int, tmp: Path) -> Prepared:
    """Our model of ``cfg`` at ``size`` with its random weights, the input, and the written files."""
    small = small_cfg(cfg, size)
    cfg_path, weights = tmp / "net.cfg", tmp / "net.weights"
    write_cfg(small, cfg_path)
    seed = seed_of(name)
    torch.manual_seed(seed)  # reset_parameters draws from the global generator
    model = build_quietly(read_cfg(cfg_path), flavor).eval()
    problem = opencv_shape_problem(model)
    if problem:
        pytest.skip(problem)
    c, h, w = model.input_shape
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed + 1))
    randomize(model, x, seed + 2)
    model.save_weights(weights)
    return Prepared(name, size, small, model, x, cfg_path, weights)


def prepare(name: str, tmp: Path) -> Prepared:
    """:func:`prepare_cfg` for a zoo cfg at its :func:`pick_size` (or pytest.skip with the reason)."""
    reason = skip_reason(name)
    if reason:
        pytest.skip(reason)
    flavor = zoo_flavor(name)
    cfg = read_cfg(ZOO / name)
    try:
        size = pick_size(cfg, flavor)
    except DarknetError as err:
        pytest.skip(f"darknetpy cannot build it: {str(err).split(': ', 1)[-1][:160]}")
    return prepare_cfg(name, cfg, flavor, size, tmp)


def _inputs(model: Darknet, i: int) -> tuple[int, ...]:
    layer = model.layers[i]
    if layer.section_type == "route":
        return tuple(layer.sources)
    return ((i - 1,) if i > 0 else ()) + tuple(layer.sources)


def float32_noise(model: Darknet, trace: list, exact: list) -> list[float]:
    """Per layer: ``max|ours32 - ours64| / max|ours64|``, at least that of its inputs, and at least
    ``EPS32·sqrt(H·W)`` for a global avgpool (module docstring)."""
    noise: list[float] = []
    for i, layer in enumerate(model.layers):
        own = relative_error(exact[i].numpy(), trace[i].numpy())
        if layer.section_type == "avgpool":
            own = max(own, EPS32 * math.sqrt(layer.in_shape[1] * layer.in_shape[2]))
        noise.append(max([own] + [noise[j] for j in _inputs(model, i)]))
    return noise


def _compare_decoded(result: Result, what: str, ours: np.ndarray, ref: np.ndarray, theirs: np.ndarray,
                     thresh: float) -> None:
    """Column groups of decoded rows; OpenCV zeroes ``obj·cls <= thresh`` (values within the noise of the
    threshold could go either way and are left out)."""
    assert ours.shape == theirs.shape, f"{what}: ours {ours.shape}, OpenCV {theirs.shape}"
    for cols, part in ((slice(0, 2), "x,y"), (slice(2, 4), "w,h"), (slice(4, 5), "obj"), (slice(5, None), "obj·cls")):
        o, r, t = ours[:, cols], ref[:, cols], theirs[:, cols]
        noise = relative_error(r, o)
        keep = None
        if part == "obj·cls":
            keep = np.abs(o - thresh) > K_NOISE * max(noise, EPS32) * np.abs(o).max()
            o = np.where(o > thresh, o, 0.0)
        result.checks.append(Check(f"{what} {part}", relative_error(o, t, keep), noise,
                                   0 if keep is None else int((~keep).sum())))


def compare(p: Prepared, opencv_file: Path, decoded: bool = True) -> Result:
    """Run both and compare every layer OpenCV exposes, then OpenCV's own default output path."""
    model, x = p.model, p.x
    _, h, w = model.input_shape
    with torch.inference_mode():
        trace = model.trace(x)
        exact = copy.deepcopy(model).double().trace(x.double())  # the exact function, for the noise
    noise = float32_noise(model, trace, exact)
    heads = {l.index for l in model.layers if l.is_head}
    result = Result(p.name, p.size)

    def ours_at(i: int) -> int:  # Darknet's l.output of a [cost] is zeros; OpenCV's is its input
        return i - 1 if model.layers[i].section_type == "cost" else i

    # 1. every layer (fusion off, see the module docstring)
    net = opencv_net(p.cfg_path, opencv_file)
    net.enableFusion(False)
    names = darknet_outputs(net)
    wanted = [i for i in range(len(model.layers)) if i not in heads and i in names]
    result.missing = [i for i in range(len(model.layers)) if i not in heads and i not in names]
    net.setInput(x.numpy())
    for i, theirs in zip(wanted, net.forward([names[i] for i in wanted])):
        j = ours_at(i)
        ours = trace[j].numpy()
        what = f"layer {i} [{model.layers[i].section_type}]"
        assert ours.size == theirs.size, f"{what}: ours {ours.shape}, OpenCV {theirs.shape}"
        result.checks.append(Check(what, relative_error(ours, theirs), noise[j]))
    if not decoded:
        return result

    # 2. OpenCV's normal path (fusion on) to its output layers: the last layer, or decoded head rows
    net = opencv_net(p.cfg_path, opencv_file)
    outputs = list(net.getUnconnectedOutLayersNames())
    net.setInput(x.numpy())
    by_name = {v: k for k, v in names.items()}
    for name, theirs in zip(outputs, net.forward(outputs)):
        i = by_name[name]
        layer, sec = model.layers[i], p.small.layers[i]
        if layer.section_type == "yolo":
            thresh = sec.get_float("thresh", 0.2) if "thresh" in sec else 0.2  # OpenCV's default
            _compare_decoded(result, f"yolo {i}", yolo_rows(layer, trace[i], w, h), yolo_rows(layer, exact[i], w, h),
                             theirs, thresh)
        elif layer.section_type == "region":
            thresh = sec.get_float("thresh", 0.001) if "thresh" in sec else 0.001  # OpenCV's default
            _compare_decoded(result, f"region {i}", region_rows(layer, trace[i]), region_rows(layer, exact[i]),
                             theirs, thresh)
        else:
            j = ours_at(i)
            result.checks.append(Check(f"output {i} [{layer.section_type}] (fused)",
                                       relative_error(trace[j].numpy(), theirs), noise[j]))
    return result


def opencv_file_for(p: Prepared, tmp: Path, eps: bool = True) -> Path:
    out = tmp / ("opencv.weights" if eps else "opencv-raw-variance.weights")
    opencv_weights(p.model, p.darknet_weights, out, eps=eps)
    return out


# ---- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_outputs_match_opencv(name, scratch):
    p = prepare(name, scratch)
    result = compare(p, opencv_file_for(p, scratch))
    assert not result.missing, f"OpenCV exposes no output for layers {result.missing}"
    compared = {c.what.split(" [")[0] for c in result.checks}
    assert all(f"layer {l.index}" in compared for l in p.model.layers if not l.is_head)  # the conv before each head too
    assert any(c.what.startswith(("yolo", "region", "output")) for c in result.checks), "OpenCV's output path not compared"
    failures = result.failures()
    assert not failures, f"{name} at {p.size}x{p.size}: " + "; ".join(map(str, failures[:5]))


@pytest.mark.parametrize("name", ["alexeyab/yolov3-tiny.cfg", "pjreddie/yolov3-tiny.cfg"])
def test_the_comparison_sees_a_wrong_epsilon(name, scratch):
    """OpenCV given Darknet's own variances computes with its eps (1e-6, inside the sqrt): the first
    batch-normalised layer must fail the tolerance, by far (the quiet channels of :func:`randomize`)."""
    p = prepare(name, scratch)
    result = compare(p, opencv_file_for(p, scratch, eps=False), decoded=False)
    first = result.checks[0]
    assert first.what == "layer 0 [convolutional]" and p.model.layers[0].bn is not None
    assert first.err > 100 * first.tol, str(first)


_CONNECTED_CFG = """
[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[connected]
batch_normalize=1
output=24
activation=leaky

[connected]
output=10
activation=linear

[softmax]
"""


@pytest.mark.parametrize("flavor", ["alexeyab", "pjreddie"])
def test_connected_batchnorm_order(flavor, scratch):
    """Darknet writes a batch-normalised [connected] as b, W, s, m, v and OpenCV reads b, s, m, v, W: with the
    reorder of :func:`opencv_weights` every layer matches; without it OpenCV reads the wrong tensors."""
    cfg = parse_cfg_text(_CONNECTED_CFG, "connected.cfg")
    p = prepare_cfg(f"connected-{flavor}", cfg, flavor, 16, scratch)
    result = compare(p, opencv_file_for(p, scratch))
    assert [c.what for c in result.checks][:3] == ["layer 0 [convolutional]", "layer 1 [connected]", "layer 2 [connected]"]
    assert not result.failures(), "; ".join(map(str, result.failures()))
    # the same bytes without the reorder: OpenCV takes part of W for the scales, mean and variance
    plain = scratch / "plain.weights"
    opencv_weights(p.model, p.darknet_weights, plain, reorder=False)
    bad = compare(p, plain, decoded=False)
    assert bad.checks[0].ok and not bad.checks[1].ok, "; ".join(map(str, bad.checks[:2]))

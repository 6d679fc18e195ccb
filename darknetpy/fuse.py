"""A fast inference path: batch norm folded into the conv weights, channels-last, fused activations.

:func:`optimize_for_inference` (also :meth:`darknetpy.Darknet.optimize_for_inference`) attaches an
:class:`InferencePlan` to a model. The model's modules and parameters are not touched: the plan
keeps *derived* tensors beside them and a flat list of precomputed steps, and ``model(x)`` /
``model.trace(x)`` run those steps instead of the modules when all of these hold:

- the model and every sub-module are in eval mode;
- autograd is off (``torch.no_grad()`` or ``torch.inference_mode()``): the fused weights are
  constants, so a forward that could be differentiated always runs the real modules;
- the plan is fresh: every parameter and rolling statistic it was derived from is still the
  module's tensor object, at the same address, with the same version counter. An in-place change
  (``load_weights``, ``load_state_dict``, an optimizer step, ``copy_``), a replacement (``.data =``,
  a new ``nn.Parameter``), ``.to()``/``.half()`` or ``train()`` makes it stale, and a stale plan is
  rebuilt on the next fast forward. The plan holds the tensors it was built from, so their memory
  cannot be reused by a replacement at the same address.

So training mode always runs Darknet's real batch norm (batch statistics, rolling updates), and
``save_weights`` writes the untouched parameters: the same bytes as before.

The steps (AlexeyAB's ``fuse_conv_batchnorm``, darknet-reference.md §3.1):

- **conv + batch norm** folded once in double, ``W' = W·γ/σ``, ``b' = β − μ·γ/σ`` with the flavour's
  ``σ`` (AlexeyAB ``sqrt(v + 1e-5)``, pjreddie ``sqrt(v) + 1e-6``), then cast to the compute dtype.
  With oneDNN (CPU) the weights are pre-packed once and each conv is one oneDNN primitive with the
  bias and a ``leaky``/``relu``/``linear`` activation fused (bit-identical to applying them after,
  checked at build); other activations are applied in place on the conv's fresh output. Small
  1x1 convs (at most 32x32 pixels) run as one ``addmm`` on the NHWC data instead, whose fixed cost
  is lower than a oneDNN primitive's. A ``linear`` conv read only by a ``[shortcut]`` (through
  ``[dropout]``) adds the shortcut's input too (``conv + b + from``: the same float32 additions as
  the unfused ``prev + from``).
- **maxpool** without indices (CPU ``max_pool2d`` always computes them) and without a ``-inf`` pad:
  ``size == stride`` windows are the maximum of strided views; other stride-1 windows on large or
  asymmetrically padded inputs (yolov3-tiny's 2/1) a separable maximum over the in-image taps
  (max is exact in any order); small symmetric ones (the SPP pools) one ``max_pool2d``.
- **route** concatenates, or hands on a single input / a channel-group view; **shortcut** adds in
  place into the previous output when nothing later reads it; **dropout** is the identity;
  **upsample** is ``upsample_nearest2d``; **yolo** applies ``forward_yolo_layer`` in place on one
  contiguous copy (the same operations as ``layers.yolo.yolo_activate``, checked bit for bit at
  build).
- every other layer (and every other head: ``[region]``...) runs its own ``forward`` on contiguous
  tensors of the model's dtype. Under bfloat16 the convs that feed a head run in the model's dtype,
  so the raw head values (``exp`` of w, h) are not rounded to bfloat16.
"""
from __future__ import annotations

import operator
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import activate

__all__ = ["optimize_for_inference", "InferencePlan", "fold_batchnorm", "bf16_supported"]

_CL = torch.channels_last
# activations oneDNN applies inside the conv primitive bit-identically to activations.ACTIVATIONS
_FUSED_ACTIVATIONS = {"linear": ("none", []), "relu": ("relu", []), "leaky": ("leaky_relu", [0.1])}
# in-place torch forms that round exactly as activations.ACTIVATIONS does
_INPLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_,
    "leaky": lambda y: F.leaky_relu_(y, 0.1),
    "revleaky": lambda y: F.leaky_relu_(y, 0.1),
    "logistic": torch.sigmoid_,
    "tanh": torch.tanh_,
    "mish": lambda y: F.mish(y, inplace=True),
    "relu6": lambda y: y.clamp_(0, 6),
    "hardtan": lambda y: y.clamp_(-1, 1),
}
_get_version = operator.attrgetter("_version")
_get_training = operator.attrgetter("training")
_data_ptr = Tensor.data_ptr
_dict_get = dict.get


def bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - an old or odd build: say no
        return False


def fold_batchnorm(layer) -> tuple[Tensor, Tensor]:
    """``(weight, bias)`` in float64 of a ``[convolutional]`` with its batch norm folded in.

    AlexeyAB ``fuse_conv_batchnorm``: ``W' = W·γ/σ``, ``b' = β − γ·μ/σ`` in double, ``σ`` as the
    layer's flavour computes it (:meth:`BatchNormParams.fold`). Without batch norm ``(W, biases)``.
    """
    w = layer.weight.detach().to(torch.float64)
    if layer.bn is None:
        return w, layer.biases.detach().to(torch.float64)
    mult, offset = layer.bn.fold(layer.biases)
    return w * mult.to(w.device).view(-1, 1, 1, 1), offset.to(w.device)


def optimize_for_inference(
    model,
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
    *,
    use_onednn: bool | None = None,
):
    """Attach a fast inference path to ``model`` (a :class:`~darknetpy.Darknet`); returns ``model``.

    Args:
        dtype: compute dtype: ``None`` (the model's, normally float32), ``torch.bfloat16`` or
            ``torch.float16``. Inputs are cast on entry, heads (and the convs feeding them) run in
            the model's dtype and outputs come back in it. bfloat16 is fast only where oneDNN has
            native support (:func:`bf16_supported`); elsewhere it runs, slowly.
        channels_last: keep activations NHWC between layers (oneDNN's fast layout on CPU).
        use_onednn: pre-packed oneDNN convolutions with fused bias/activation (default: on CPU for
            float32/bfloat16 when available); ``False`` uses ``F.conv2d`` plus in-place activations
            (also what runs on other devices).

    Nothing of the model changes (parameters, ``state_dict``, ``save_weights``, training). The plan
    runs in eval mode with autograd off and is rebuilt whenever what it was derived from changes;
    ``model.inference_plan = None`` removes it.
    """
    if dtype is not None and dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, float64, bfloat16 or float16, not {dtype}")
    model._inference_plan = InferencePlan(dtype=dtype, channels_last=channels_last, use_onednn=use_onednn)
    return model


class _Conv:
    """One folded convolution: compute-dtype weight (and its oneDNN packing), bias, geometry."""

    __slots__ = ("weight", "bias", "packed", "gemm", "stride", "padding", "dilation", "groups")

    def __init__(self, layer, dtype, bias_dtype, memory_format, onednn: bool, device) -> None:
        w64, b64 = fold_batchnorm(layer)
        self.weight = w64.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)
        self.bias = b64.to(device=device, dtype=bias_dtype)
        self.stride = [layer.stride_y, layer.stride_x]
        self.padding = [layer.padding * layer.dilation] * 2
        self.dilation = [layer.dilation] * 2
        self.groups = layer.groups
        self.packed = self.weight
        self.gemm = None
        c, h, w = layer.in_shape
        n = layer.n
        if (
            onednn
            and dtype == torch.float32
            and memory_format == _CL
            and layer.size == 1
            and self.stride == [1, 1]
            and self.padding == [0, 0]
            and self.groups == 1
            and n >= _GEMM_MIN_FILTERS
            and h * w <= _GEMM_MAX_PIXELS
            and c * n * h * w <= _GEMM_MAX_MACS
        ):
            # a 1x1 conv on NHWC data is a matrix product; MKL's GEMM starts faster than a
            # oneDNN primitive, which wins only on the larger ones (measured, bench/README.md)
            self.gemm = self.weight.reshape(n, c).t().contiguous()
        if onednn:
            c, h, w = layer.in_shape
            try:
                self.packed = torch.ops.mkldnn._reorder_convolution_weight(
                    self.weight, self.padding, self.stride, self.dilation, self.groups, [1, c, h, w]
                )
            except Exception:  # noqa: BLE001 - the unpacked weight works too, a little slower
                self.packed = self.weight


class InferencePlan:
    """The fused steps of one model, built lazily and rebuilt when stale. Not an ``nn.Module``."""

    def __init__(self, dtype=None, channels_last=True, use_onednn=None) -> None:
        self.dtype = dtype
        self.channels_last = channels_last
        self.use_onednn = use_onednn
        self.release()

    def __repr__(self) -> str:
        state = "built" if self._built else "not built"
        return f"InferencePlan(dtype={self.dtype}, channels_last={self.channels_last}, {state})"

    # ---- state ---------------------------------------------------------------------------
    def release(self) -> None:
        """Drop the derived tensors and steps; the next fast forward builds them again."""
        self._built = False
        self._steps: list = []
        self._trace_steps: list = []
        self._enter: Callable[[Tensor], Tensor] = _same
        self._std: Callable = _same
        self._returned: list[int] = []
        self._tracked: list[Tensor] = []
        self._dicts: list[dict] = []
        self._names: list[str] = []
        self._versions: list[int] = []
        self._ptrs: list[int] = []
        self._modules: list[nn.Module] = []
        self.info: dict = {}

    def __getstate__(self) -> dict:  # pickle / deepcopy: the options only, rebuilt on use
        return {"dtype": self.dtype, "channels_last": self.channels_last, "use_onednn": self.use_onednn}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __deepcopy__(self, memo) -> "InferencePlan":
        return InferencePlan(**self.__getstate__())

    def usable(self, model) -> bool:
        """Eval mode everywhere and autograd off."""
        if model.training or torch.is_grad_enabled():
            return False
        if self._built:
            return not any(map(_get_training, self._modules))
        return not any(m.training for m in model.modules())

    def fresh(self) -> bool:
        """Every tracked tensor is still the module's, at the same address and version."""
        return (
            self._built
            and all(map(operator.is_, map(_dict_get, self._dicts, self._names), self._tracked))
            and list(map(_data_ptr, self._tracked)) == self._ptrs
            and list(map(_get_version, self._tracked)) == self._versions
        )

    def _track(self, module: nn.Module, name: str) -> None:
        store = module._parameters if name in module._parameters else module._buffers
        t = store.get(name)
        if t is not None:
            self._dicts.append(store)
            self._names.append(name)
            self._tracked.append(t)

    # ---- running -------------------------------------------------------------------------
    def forward(self, model, x: Tensor, keep_all: bool = False) -> list:
        """Every layer's output slot (``None`` where not kept), as ``Darknet._run`` returns it.

        The slots the model hands out (heads, its output, everything with ``keep_all``) are
        contiguous tensors of the model's dtype; the others stay in the plan's format."""
        if not self.fresh():
            self.build(model)
        if keep_all:
            cache = self._run(self._trace_steps, x)
            return [self._std(t) for t in cache]
        cache = self._run(self._steps, x)
        for i in self._returned:
            cache[i] = self._std(cache[i])
        return cache

    def _run(self, steps: list, x: Tensor) -> list:
        cache: list = [None] * len(steps)
        x = self._enter(x)
        i = 0
        for fn, keep in steps:
            x = fn(x, cache)
            if keep:
                cache[i] = x
            i += 1
        cache[-1] = x
        return cache

    # ---- building ------------------------------------------------------------------------
    def build(self, model) -> None:
        """Fold every conv and precompute the steps (done on the first fast forward)."""
        self.release()
        layers = list(model.layers)
        n = len(layers)
        params = [p for p in model.parameters() if p.is_floating_point()]
        base = params[0].dtype if params else torch.float32
        device = params[0].device if params else torch.device("cpu")
        dt = self.dtype or base
        if base == torch.float64:
            dt = base  # a float64 model stays exact
        onednn = self.use_onednn
        if onednn is None:
            onednn = device.type == "cpu" and dt in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()
        onednn = bool(onednn) and _onednn_works(dt)
        fmt = _CL if self.channels_last else torch.contiguous_format
        fast, std = _Convert(dt, fmt), _Convert(base, torch.contiguous_format)

        kinds = [_kind(layer, layers) for layer in layers]
        # outputs in the ordinary format (contiguous, model dtype, maybe flat): an ordinary layer's,
        # handed on by identities. Only convs convert such inputs; other steps on them run ordinarily.
        plain_out = [False] * n
        for i, layer in enumerate(layers):
            inputs = list(layer.sources) + ([i - 1] if i > 0 and kinds[i] != "route" else [])
            if kinds[i] in ("maxpool", "route", "shortcut", "upsample", "yolo") and any(plain_out[r] for r in inputs):
                kinds[i] = "fallback"
            plain_out[i] = kinds[i] in ("fallback", "yolo") or (kinds[i] == "identity" and i > 0 and plain_out[i - 1])
        readers: list[list[int]] = [[] for _ in range(n)]  # layers reading layer i's output
        for j, layer in enumerate(layers):
            if j > 0:
                readers[j - 1].append(j)
            for s in layer.sources:
                readers[s].append(j)
        returned = set(model.head_indices) | {model.output_index}
        # convs whose output only heads read run in the model's dtype (no bfloat16 head logits)
        head_conv = [
            kinds[i] == "conv" and dt != base and bool(readers[i]) and i not in returned and all(layers[j].is_head for j in readers[i])
            for i in range(n)
        ]
        convs = {}
        for i, layer in enumerate(layers):
            if kinds[i] == "conv":
                wd = base if head_conv[i] else dt
                convs[i] = _Conv(layer, wd, wd, fmt, onednn, device)

        def entry(i: int):
            """The conversion conv ``i`` needs on its input: from an ordinary layer's output, or
            from the compute dtype to the model's for a conv feeding a head."""
            if (i > 0 and plain_out[i - 1]) or head_conv[i]:
                return _Convert(base if head_conv[i] else dt, fmt)
            return None

        self._steps = self._make_steps(layers, kinds, plain_out, readers, returned, convs, entry, std, onednn, True)
        self._trace_steps = self._make_steps(layers, kinds, plain_out, readers, returned, convs, entry, std, onednn, False)
        keep = set(model._keep)
        self._steps = [(fn, i in keep) for i, fn in enumerate(self._steps)]
        self._trace_steps = [(fn, True) for fn in self._trace_steps]
        self._enter = fast if (self.channels_last or dt != base) and (n and kinds[0] != "fallback") else _same
        self._modules = list(model.modules())
        self._std = std
        self._returned = sorted(returned | {n - 1})
        for i, layer in enumerate(layers):
            if kinds[i] == "conv":
                self._track(layer, "weight")
                self._track(layer, "biases")
                if layer.bn is not None:
                    for name in ("scales", "rolling_mean", "rolling_variance"):
                        self._track(layer.bn, name)
        self._ptrs = list(map(_data_ptr, self._tracked))
        self._versions = list(map(_get_version, self._tracked))
        self.info.setdefault("fused_adds", 0)
        self.info.setdefault("inplace_adds", 0)
        self.info.update(
            dtype=dt,
            model_dtype=base,
            onednn=onednn,
            channels_last=self.channels_last,
            ordinary_layers=[i for i in range(n) if kinds[i] == "fallback"],
            head_convs=[i for i in range(n) if head_conv[i]],
        )
        self._built = True

    def _make_steps(self, layers, kinds, plain_out, readers, returned, convs, entry, std, onednn, optimize: bool) -> list:
        """One callable per layer. ``optimize`` allows in-place adds and conv+add fusion (not for trace)."""
        n = len(layers)
        # alias roots: which layer's tensor each output is (dropout and a single route hand it on)
        root = list(range(n))
        owned = [kinds[i] in ("conv", "maxpool", "upsample", "shortcut") for i in range(n)]
        for i, layer in enumerate(layers):
            if kinds[i] == "identity" and i > 0:
                root[i], owned[i] = root[i - 1], owned[root[i - 1]]
            elif kinds[i] == "route":
                if len(layer.sources) == 1:  # the input itself, or a view of its channel group
                    root[i], owned[i] = root[layer.sources[0]], owned[root[layer.sources[0]]]
                else:
                    owned[i] = True  # a concatenation is a new tensor
            elif kinds[i] == "upsample" and layer.stride == 1:
                root[i], owned[i] = root[i - 1], owned[root[i - 1]]

        def dead_after(i: int, r: int) -> bool:
            """No layer after ``i`` reads tensor ``r`` (under any alias), and it is not returned."""
            for k in range(n):
                if root[k] == r and (k in returned or any(j > i for j in readers[k])):
                    return False
            return True

        def alias(i: int, r: int) -> None:
            """Layer ``i``'s output is now tensor ``r`` (written in place), and so is every later alias of it."""
            for k in range(i, n):
                if root[k] == i:
                    root[k] = r

        steps: list = []
        fused_add: dict[int, int] = {}  # shortcut index -> conv index that already added its input
        for i, layer in enumerate(layers):
            kind = kinds[i]
            if kind == "conv":
                target = _fusable_shortcut(i, layers, kinds, plain_out, readers, root, returned) if optimize and onednn else None
                if target is not None:
                    fused_add[target] = i
                    if optimize:
                        self.info["fused_adds"] = self.info.get("fused_adds", 0) + 1
                    steps.append(_conv_add_step(convs[i], layer, layers[target].sources[0], entry(i)))
                else:
                    steps.append(_conv_step(convs[i], layer, onednn, entry(i)))
            elif kind == "identity":
                steps.append(_identity)
            elif kind == "maxpool":
                steps.append(_maxpool_step(layer))
            elif kind == "route":
                steps.append(_route_step(layer))
            elif kind == "upsample":
                steps.append(_upsample_step(layer))
            elif kind == "shortcut":
                r = root[i - 1]
                if i in fused_add:
                    steps.append(_activation_step(layer.activation))
                    alias(i, r)
                    continue
                inplace = (
                    optimize
                    and owned[r]
                    and all(root[s] != r for s in layer.sources)
                    and dead_after(i, r)
                )
                steps.append(_shortcut_step(layer, inplace))
                if inplace:
                    alias(i, r)
                    self.info["inplace_adds"] = self.info.get("inplace_adds", 0) + 1
            elif kind == "yolo":
                steps.append(_yolo_step(layer, std.dtype) if _yolo_step_agrees(layer, std.dtype) else _fallback_step(layer, std))
            else:
                steps.append(_fallback_step(layer, std))
        return steps


# ---- conversions --------------------------------------------------------------------------
def _same(x: Tensor) -> Tensor:
    return x


def _identity(x, cache):
    return x


class _Convert:
    """To a dtype and (for images) a memory format; a no-op when the tensor already is."""

    __slots__ = ("dtype", "memory_format")

    def __init__(self, dtype, memory_format) -> None:
        self.dtype, self.memory_format = dtype, memory_format

    def __call__(self, x):
        if x is None:
            return None
        if x.dim() != 4:
            return x.to(self.dtype).contiguous()
        return x.to(dtype=self.dtype).contiguous(memory_format=self.memory_format)


# ---- which layers the plan runs itself ----------------------------------------------------
def _kind(layer, layers) -> str:
    t = layer.section_type
    if t == "convolutional":
        plain = not (layer.binary or layer.xnor or layer.antialiasing) and all(v > 0 for v in layer.in_shape)
        return "conv" if plain else "fallback"
    if t == "dropout":
        return "identity"
    if t == "maxpool" and not getattr(layer, "average", False):
        return "maxpool" if not (layer.maxpool_depth or layer.antialiasing) else "fallback"
    if t == "route":
        return "route" if layer._channels and all(v > 0 for v in layer.out_shape) else "fallback"
    if t == "shortcut":
        plain = layer.weights is None and (layer.multilayer or (layer.alpha, layer.beta) == (1.0, 1.0))
        same = all(layers[s].out_shape == layer.in_shape for s in layer.sources) and all(v > 0 for v in layer.out_shape)
        return "shortcut" if plain and same else "fallback"
    if t == "upsample":
        return "upsample" if not layer.reverse and layer.scale == 1.0 else "fallback"
    if t == "yolo" and type(layer).__name__ == "Yolo" and layer.in_shape[0] == layer.n * (layer.classes + 5):
        return "yolo"
    return "fallback"


def _onednn_works(dtype) -> bool:
    """oneDNN's fused conv ops exist here and (float32) give exactly F.conv2d's values."""
    key = str(dtype)
    if key not in _ONEDNN_OK:
        ok = False
        try:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, 4, 6, 6, generator=g).to(dtype).contiguous(memory_format=_CL)
            w = torch.randn(8, 4, 3, 3, generator=g).to(dtype).contiguous(memory_format=_CL)
            other = torch.randn(1, 8, 6, 6, generator=g).to(dtype).contiguous(memory_format=_CL)
            b = torch.randn(8, generator=g)
            bias = b.to(dtype)
            with torch.inference_mode():
                packed = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [1, 1], [1, 1], 1, [1, 4, 6, 6])
                y = torch.ops.mkldnn._convolution_pointwise(x, packed, bias, [1, 1], [1, 1], [1, 1], 1, "leaky_relu", [0.1], "")
                z = torch.ops.mkldnn._convolution_pointwise.binary(x, other, packed, bias, [1, 1], [1, 1], [1, 1], 1, "add", None, None, [], "")
                plain = torch.ops.mkldnn._convolution_pointwise(x, packed, bias, [1, 1], [1, 1], [1, 1], 1, "none", [], "")
                ref = F.conv2d(x.float(), w.float(), b, 1, 1)
                if dtype == torch.float32:
                    # the fused activation and addition round exactly as when applied afterwards
                    ok = torch.equal(y, F.leaky_relu(plain, 0.1)) and torch.equal(z, plain + other)
                    ok = ok and bool((plain - ref).abs().max() <= 1e-5 * ref.abs().max())
                else:  # bfloat16 rounds once after the fused ops instead of after each
                    scale = float(ref.abs().max())
                    ok = y.dtype == dtype and z.dtype == dtype
                    ok = ok and bool((y.float() - F.leaky_relu(ref, 0.1)).abs().max() <= 2e-2 * scale)
                    ok = ok and bool((z.float() - (ref + other.float())).abs().max() <= 2e-2 * scale)
        except Exception:  # noqa: BLE001 - no oneDNN, or the private API changed: F.conv2d it is
            ok = False
        _ONEDNN_OK[key] = ok
    return _ONEDNN_OK[key]


_ONEDNN_OK: dict[str, bool] = {}
# 1x1 convs with at least this many filters, at most this many pixels and multiply-adds per image
# run as torch.addmm (MKL) instead of a oneDNN primitive, whose ~30 us fixed cost per call
# dominates small layers (measured per layer on Yolo-Fastest, 2 threads: 15-25 us saved on the
# 20x20 and 10x10 ones; no gain at 40x40, a loss at 80x80 and above)
_GEMM_MIN_FILTERS = 16
_GEMM_MAX_PIXELS = 1024
_GEMM_MAX_MACS = 8_000_000


# ---- steps: each is fn(x, cache) -> Tensor ------------------------------------------------
def _conv_step(conv: _Conv, layer, onednn: bool, enter=None):
    shape = tuple(layer.in_shape)
    act = layer.activation
    weight, bias, packed = conv.weight, conv.bias, conv.packed
    stride, padding, dilation, groups = conv.stride, conv.padding, conv.dilation, conv.groups
    op = torch.ops.mkldnn._convolution_pointwise.default

    if conv.gemm is not None:
        return _gemm_step(conv, layer, enter)

    if onednn and act in _FUSED_ACTIVATIONS:
        attr, scalars = _FUSED_ACTIVATIONS[act]
        if enter is None:
            return lambda x, cache: op(x, packed, bias, padding, stride, dilation, groups, attr, scalars, "")

        def run(x, cache):
            return op(enter(x.reshape(x.shape[0], *shape)), packed, bias, padding, stride, dilation, groups, attr, scalars, "")

        return run

    post = _INPLACE_ACTIVATIONS.get(act) or (lambda y, _a=act: activate(y, _a))
    if act == "linear":
        post = _same

    def conv_fn(x):
        if onednn:
            return op(x, packed, bias, padding, stride, dilation, groups, "none", [], "")
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    def run2(x, cache):
        if enter is not None:
            x = enter(x.reshape(x.shape[0], *shape))
        return post(conv_fn(x))

    return run2


def _gemm_step(conv: _Conv, layer, enter=None, source: int | None = None):
    """A 1x1 stride-1 conv on channels-last data as ``addmm``: ``(N·H·W, C) @ (C, n) + b``, the
    activation in place, viewed back as a channels-last ``(N, n, H, W)`` tensor. With ``source``,
    the ``[shortcut]`` input is added after the bias, as ``conv + b`` then ``+ from`` rounds."""
    c, h, w = layer.in_shape
    n = layer.n
    wt, bias = conv.gemm, conv.bias
    act = layer.activation
    post = _same if act == "linear" else _INPLACE_ACTIVATIONS.get(act) or (lambda y, _a=act: activate(y, _a))

    def run(x, cache):
        if enter is not None:
            x = enter(x.reshape(x.shape[0], c, h, w))
        b = x.shape[0]
        y = torch.addmm(bias, x.permute(0, 2, 3, 1).reshape(-1, c), wt)
        if source is not None:
            y.add_(cache[source].to(y.dtype).permute(0, 2, 3, 1).reshape(-1, n))
        return post(y).view(b, h, w, n).permute(0, 3, 1, 2)

    return run


def _conv_add_step(conv: _Conv, layer, source: int, enter=None):
    """``conv(x) + b + cache[source]`` in one oneDNN primitive: what a linear conv, then a
    ``[shortcut]`` of it and ``source`` computes (``prev + from``, the same float additions)."""
    shape = tuple(layer.in_shape)
    packed, bias = conv.packed, conv.bias
    stride, padding, dilation, groups = conv.stride, conv.padding, conv.dilation, conv.groups
    op = torch.ops.mkldnn._convolution_pointwise.binary
    if conv.gemm is not None:
        return _gemm_step(conv, layer, enter, source)

    def run(x, cache):
        if enter is not None:
            x = enter(x.reshape(x.shape[0], *shape))
        other = cache[source]
        if other.dtype != x.dtype or not other.is_contiguous(memory_format=_CL):
            other = other.to(dtype=x.dtype).contiguous(memory_format=_CL)
        return op(x, other, packed, bias, padding, stride, dilation, groups, "add", None, None, [], "")

    return run


def _fusable_shortcut(i: int, layers, kinds, plain_out, readers, root, returned) -> int | None:
    """The ``[shortcut]`` that alone reads linear conv ``i`` (through identities), if any."""
    if layers[i].activation != "linear" or i in returned:
        return None
    k = i
    while True:
        if readers[k] != [k + 1] or k in returned:
            return None
        k += 1
        if kinds[k] == "identity":
            continue
        if kinds[k] != "shortcut" or len(layers[k].sources) != 1:
            return None
        src = layers[k].sources[0]
        return k if root[src] != root[i] and not plain_out[src] else None


def _activation_step(act: str):
    if act == "linear":
        return _identity
    post = _INPLACE_ACTIVATIONS.get(act) or (lambda y, _a=act: activate(y, _a))
    return lambda x, cache: post(x)


def _shortcut_step(layer, inplace: bool):
    act = layer.activation
    sources = layer.sources
    post = _same if act == "linear" else _INPLACE_ACTIVATIONS.get(act) or (lambda y, _a=act: activate(y, _a))
    first, rest = sources[0], sources[1:]

    def run(x, cache):
        if inplace:
            out = x.add_(cache[first])
        else:
            out = x + cache[first]
        for s in rest:
            out.add_(cache[s])
        return post(out)

    return run


def _maxpool_step(layer):
    from .layers.maxpool import darknet_pad

    k, sx, sy = layer.size, layer.stride_x, layer.stride_y
    _, h, w = layer.in_shape
    _, out_h, out_w = layer.out_shape
    left, right, top, bottom = darknet_pad(layer.padding)
    # only what the windows reach counts (the right/bottom pad is often never read)
    right = max(0, min(right, (out_w - 1) * sx + k - left - w))
    bottom = max(0, min(bottom, (out_h - 1) * sy + k - top - h))

    if k == sx == sy and k in (2, 3) and not (left or right or top or bottom) and out_h * k == h and out_w * k == w:
        # non-overlapping windows inside the image: the maximum of strided views, rows then columns

        def run(x, cache):
            r = torch.maximum(x[:, :, 0::k], x[:, :, 1::k])
            if k == 3:
                torch.maximum(r, x[:, :, 2::k], out=r)
            y = torch.maximum(r[:, :, :, 0::k], r[:, :, :, 1::k])
            if k == 3:
                torch.maximum(y, r[:, :, :, 2::k], out=y)
            return y

        return run

    symmetric = left == right and top == bottom and left == top and left <= k // 2
    big = layer.in_shape[0] * h * w >= 65536
    if sx == sy == 1 and out_w <= w and out_h <= h and (big or not symmetric):
        # stride 1: separable, along the width then the height, over the in-image taps only
        def run1(x, cache):
            return _sliding_max(_sliding_max(x, k, left, 3, w, out_w), k, top, 2, h, out_h)

        return run1

    def run2(x, cache):
        if symmetric:
            return F.max_pool2d(x, k, (sy, sx), left)
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), k, (sy, sx))

    return run2


def _sliding_max(x: Tensor, k: int, before: int, dim: int, size: int, out: int) -> Tensor:
    """Output ``j`` = max of ``x[j - before + t]``, ``0 <= t < k``, over the taps inside ``[0, size)``.

    Needs ``out <= size`` so that tap ``j`` itself is always inside (the start value)."""
    y = x.narrow(dim, 0, out).clone(memory_format=torch.preserve_format)
    for t in range(k):
        off = t - before
        if off == 0:
            continue
        lo, hi = max(0, -off), min(out, size - off)
        if hi > lo:
            dst = y.narrow(dim, lo, hi - lo)
            torch.maximum(dst, x.narrow(dim, lo + off, hi - lo), out=dst)
    return y


def _route_step(layer):
    sources = layer.sources
    groups, gid = layer.groups, layer.group_id

    def part(t: Tensor) -> Tensor:
        if groups == 1:
            return t
        size = t.shape[1] // groups
        return t.narrow(1, gid * size, size)

    if len(sources) == 1:
        s = sources[0]
        if groups == 1:
            return lambda x, cache: cache[s]
        return lambda x, cache: part(cache[s])

    def run(x, cache):
        return torch.cat([part(cache[s]) for s in sources], dim=1)

    return run


def _upsample_step(layer):
    s = layer.stride
    if s == 1:
        return _identity
    scales = [float(s), float(s)]
    # F.interpolate(x, scale_factor=s, mode="nearest") without its Python-side checks
    return lambda x, cache: torch._C._nn.upsample_nearest2d(x, None, scales)


def _yolo_step(layer, dtype):
    """``[yolo]``'s ``forward_yolo_layer`` (layers.yolo.yolo_activate) in place on one contiguous copy
    of its input: the same element-wise operations, so the same values, with fewer passes."""
    n, per = layer.n, layer.classes + 5
    s = layer.options.scale_x_y
    new_coords = layer.options.new_coords
    shift = (s - 1) / 2

    def run(x, cache):
        y = x.to(dtype=dtype, memory_format=torch.contiguous_format, copy=True)
        b, _, h, w = y.shape
        v = y.view(b, n, per, h, w)
        if not new_coords:
            v[:, :, :2].sigmoid_()
            v[:, :, 4:].sigmoid_()
        if s != 1.0:
            v[:, :, :2].mul_(s).sub_(shift)
        return y

    return run


def _yolo_step_agrees(layer, dtype) -> bool:
    """The layer's own forward and :func:`_yolo_step` give the same bits (checked at build, so a
    change to ``yolo_activate`` cannot make them drift apart silently)."""
    g = torch.Generator().manual_seed(layer.index)
    c = layer.in_shape[0]
    x = (torch.rand(2, c, 3, 7, generator=g, dtype=torch.float64) * 16 - 8).to(dtype)
    saved = layer.in_shape
    try:
        layer.in_shape = (c, 3, 7)
        expected = layer.forward(x, [])
        got = _yolo_step(layer, dtype)(x.contiguous(memory_format=_CL), [])
        return got.dtype == expected.dtype and torch.equal(got, expected)
    except Exception:  # noqa: BLE001 - anything unexpected: use the layer itself
        return False
    finally:
        layer.in_shape = saved


def _fallback_step(layer, std: _Convert):
    """Any other layer (heads included): its own ``forward`` on contiguous model-dtype tensors."""
    sources = layer.sources
    call = layer.forward
    if not sources:
        return lambda x, cache: call(std(x), cache)

    def run(x, cache):
        view = list(cache)
        for s in sources:
            view[s] = std(cache[s])
        return call(std(x), view)

    return run

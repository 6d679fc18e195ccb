"""The :class:`Darknet` module: a cfg built layer by layer, Darknet's way.

Darknet: ``src/parser.c:parse_network_cfg`` (the build loop), ``src/network.c:forward_network``.
Layer ``i`` here is Darknet's layer ``i``; each is built from the shape Darknet passes on
(``l.out_c/out_h/out_w``, ``l.outputs``), so shapes and weight sizes are Darknet's.
"""
from __future__ import annotations

import difflib
import os
import warnings

from torch import Tensor, nn

from . import layers as _layers  # noqa: F401  (registers every section family)
from .cfg import CfgFile, CfgWarning, Section, UnusedKeyWarning, read_cfg
from .errors import CfgError, DarknetError, FlavorError, UnknownSectionError
from .flavor import ALEXEYAB, FlavorSpec, get_flavor
from .layers.base import BuildContext, DarknetLayer, Shape
from .net import NetOptions
from .registry import lookup, registered_sections
from .zoo import find_file
from .weights import LoadReport, WeightsHeader, load_weights, read_header, save_weights, weights_bytes

__all__ = ["Darknet", "build_layers"]


class Darknet(nn.Module):
    """A Darknet network from its cfg (and optionally its weights) as a ``torch.nn.Module``.

    Args:
        cfg: path of a ``.cfg`` file, or a parsed :class:`~darknetpy.cfg.CfgFile`.
        weights: optional ``.weights`` file to load (``cutoff`` limits it to the first layers).
        flavor: ``"alexeyab"`` or ``"pjreddie"``; by default taken from the weights header
            (revision 5 is AlexeyAB's, 0 pjreddie's), else AlexeyAB.
        width, height: override the ``[net]`` input size (Darknet's ``resize_network``).
        strict: unknown or repeated keys are errors instead of warnings.

    ``model(x)`` takes ``(N, C, H, W)`` RGB in [0, 1] and returns the list of head outputs
    (``[yolo]``, ``[region]``...) as Darknet's ``l.output``, or for a network without heads the
    output of its last layer (a trailing ``[cost]`` is skipped, as ``get_network_output`` does).
    """

    def __init__(
        self,
        cfg: "str | os.PathLike | CfgFile",
        weights: "str | os.PathLike | None" = None,
        *,
        flavor: "str | FlavorSpec | None" = None,
        width: int | None = None,
        height: int | None = None,
        strict: bool = False,
        cutoff: int | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg.copy() if isinstance(cfg, CfgFile) else read_cfg(cfg)
        if weights is not None:
            weights = find_file(weights)
        header = read_header(weights) if weights is not None else None
        if flavor is not None:
            self.flavor, flavor_source = get_flavor(flavor), "given"
        elif header is not None:
            self.flavor = header.flavor
            flavor_source = f"read from the header of {os.fspath(weights)} (version {header.major}.{header.minor}.{header.revision})"
        else:
            self.flavor, flavor_source = ALEXEYAB, "the default (no weights to read it from)"
        if self.cfg.crlf and not self.flavor.strips_cr:
            warnings.warn(
                f"{self.cfg.path}: has CRLF line ends, which pjreddie's darknet does not read; read here as LF",
                CfgWarning,
                stacklevel=2,
            )
        if width is not None or height is not None:
            net_sec = self.cfg.net
            if width is not None:
                net_sec.set("width", width)
            if height is not None:
                net_sec.set("height", height)
            net_sec.remove("inputs")
        self.net, built = build_layers(self.cfg, self.flavor, strict=strict, flavor_source=flavor_source)
        self.layers = nn.ModuleList(built)
        self.header: WeightsHeader | None = None
        self.seen: int = 0
        self.load_report: LoadReport | None = None
        self.names: list[str] | None = None  # class names used by detect()
        self._keep = frozenset(i for layer in built for i in layer.sources) | frozenset(self.head_indices)
        self._inference_plan = None  # see optimize_for_inference()
        if weights is not None:
            report = self.load_weights(weights, cutoff=cutoff)
            start = report.first_missing
            self.reset_parameters(start if start is not None else len(self.layers))
        else:
            self.reset_parameters()

    # ---- structure ----------------------------------------------------------------------
    @property
    def input_shape(self) -> Shape:
        """(channels, height, width) of the network input."""
        return (self.net.channels, self.net.height, self.net.width)

    @property
    def head_indices(self) -> list[int]:
        return [layer.index for layer in self.layers if layer.is_head]

    @property
    def heads(self) -> list[DarknetLayer]:
        return [layer for layer in self.layers if layer.is_head]

    @property
    def output_index(self) -> int:
        """Darknet's ``get_network_output``: the last layer that is not a ``[cost]``."""
        i = len(self.layers) - 1
        while i > 0 and self.layers[i].section_type == "cost":
            i -= 1
        return i

    def reset_parameters(self, start: int = 0) -> None:
        """Darknet's initialisation (§5.4) for layers ``start..``, and dontload layers."""
        for layer in self.layers:
            if layer.index >= start or layer.dontload:
                layer.reset_parameters()

    def emulate_darknet_sums(self, enabled: bool = True) -> "Darknet":
        """Training-mode batch norm sums its statistics in float32 one value at a time, as Darknet's
        CPU code does (see :func:`darknetpy.layers.batchnorm.sequential_statistics`). Slow; for parity checks."""
        from .layers.batchnorm import BatchNormParams

        for module in self.modules():
            if isinstance(module, BatchNormParams):
                module.sequential_sums = enabled
        return self

    def resize(self, width: int, height: int) -> "Darknet":
        """Take ``width x height`` input from now on (Darknet's ``resize_network``, for multi-scale
        training). The layers are rebuilt for the new size and share this model's parameters and
        buffers (an optimiser keeps working); layers whose size is fixed ([connected], [local])
        refuse a new size here. Build a new loss afterwards (heads scale anchors by the input size).
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise DarknetError(f"input size must be positive, got {width}x{height}")
        if (width, height) == (self.net.width, self.net.height):
            return self
        sized = self.__dict__.setdefault("_sized_layers", {})
        sized[(self.net.width, self.net.height)] = self.layers
        layers = sized.get((width, height))
        if layers is None:
            cfg = self.cfg.copy()
            cfg.net.set("width", width)
            cfg.net.set("height", height)
            cfg.net.remove("inputs")
            with warnings.catch_warnings():  # the cfg's keys were reported when the model was built
                warnings.simplefilter("ignore", UnusedKeyWarning)
                _, built = build_layers(cfg, self.flavor)
            layers = nn.ModuleList(built)
            for old, new in zip(self.layers, layers):
                if old.num_weights() and old.weight_tensors() and new.weight_tensors() and [
                    t.shape for t in old.weight_tensors()
                ] != [t.shape for t in new.weight_tensors()]:
                    raise DarknetError(f"layer {old.index} [{old.section_type}] has a fixed input size: the network cannot be resized")
                mods_new, mods_old = dict(new.named_modules()), dict(old.named_modules())
                for name, module in mods_new.items():
                    source = mods_old[name]
                    for key in list(module._parameters):
                        module._parameters[key] = source._parameters[key]
                    for key in list(module._buffers):
                        module._buffers[key] = source._buffers[key]
        for old, new in zip(self.layers, layers):  # what may have changed since the build
            if hasattr(old, "p"):
                new.p = old.p
        layers.train(self.training)
        self.layers = layers
        self.net.width, self.net.height = width, height
        self.net.inputs = width * height * self.net.channels
        self._release_plan()
        return self

    def reset_state(self) -> "Darknet":
        """Zero the hidden state of every recurrent layer ([rnn], [gru], [lstm], [crnn]...)."""
        for layer in self.layers:
            if hasattr(layer, "reset_state"):
                layer.reset_state()
        return self

    def set_dropout(self, p: float | None) -> "Darknet":
        """Set the probability of every ``[dropout]`` layer (``None`` restores the cfg's)."""
        for layer in self.layers:
            if layer.section_type == "dropout":
                layer.p = layer.cfg_p if p is None else p
        return self

    # ---- forward ------------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> Tensor:
        c, h, w = self.input_shape
        if c and h and w:
            if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
                raise DarknetError(f"the network takes (N, {c}, {h}, {w}) input, got {tuple(x.shape)}")
        elif x.dim() != 2 or x.shape[1] != self.net.inputs:
            raise DarknetError(f"the network takes (N, {self.net.inputs}) input, got {tuple(x.shape)}")
        return x

    def _run(self, x: Tensor, keep_all: bool, keep: frozenset[int] | None = None) -> list[Tensor | None]:
        x = self._check_input(x)
        plan = self.__dict__.get("_inference_plan")
        if keep is None and plan is not None and plan.usable(self):
            return plan.forward(self, x, keep_all)
        cache: list[Tensor | None] = [None] * len(self.layers)
        keep = self._keep if keep is None else keep
        for i, layer in enumerate(self.layers):
            x = layer(x, cache)
            if keep_all or i in keep:
                cache[i] = x
        if not keep_all:
            cache[-1] = x
        return cache

    def forward(self, x: Tensor) -> "list[Tensor] | Tensor":
        cache = self._run(x, keep_all=False)
        heads = self.head_indices
        if heads:
            return [cache[i] for i in heads]  # type: ignore[misc]
        out = cache[self.output_index]
        if out is None:  # a trailing [cost]: run again keeping everything
            out = self._run(x, keep_all=True)[self.output_index]
        return out  # type: ignore[return-value]

    def forward_train(self, x: Tensor) -> list[Tensor]:
        """The input of every head (the raw output of the layer before it), for the losses.

        Darknet computes a head's deltas from its input ``z``; the head's own activations are part of
        the loss (:mod:`darknetpy.loss`). Use in training mode.
        """
        cache = self._run(x, keep_all=False, keep=self._keep | frozenset(i - 1 for i in self.head_indices))
        return [cache[i - 1] for i in self.head_indices]  # type: ignore[misc]

    def trace(self, x: Tensor) -> list[Tensor]:
        """Every layer's output (Darknet's ``l.output`` of each layer), in layer order."""
        return self._run(x, keep_all=True)  # type: ignore[return-value]

    # ---- fast inference -----------------------------------------------------------------
    def optimize_for_inference(self, dtype=None, channels_last: bool = True, **kwargs) -> "Darknet":
        """Batch norm folded into the convs (in double), channels-last, fused activations; see
        :func:`darknetpy.fuse.optimize_for_inference`. Used in eval mode with autograd off."""
        from .fuse import optimize_for_inference

        return optimize_for_inference(self, dtype=dtype, channels_last=channels_last, **kwargs)

    @property
    def inference_plan(self):
        """The :class:`~darknetpy.fuse.InferencePlan` attached by :meth:`optimize_for_inference`, or None."""
        return self.__dict__.get("_inference_plan")

    @inference_plan.setter
    def inference_plan(self, plan) -> None:
        self.__dict__["_inference_plan"] = plan

    def _release_plan(self) -> None:
        plan = self.__dict__.get("_inference_plan")
        if plan is not None:
            plan.release()

    def train(self, mode: bool = True) -> "Darknet":
        if mode:
            self._release_plan()  # training runs the real batch norm; the fused copy goes
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._release_plan()  # .to(), .half(), .cuda()...: derived tensors are rebuilt
        return super()._apply(fn, *args, **kwargs)

    # ---- detection ----------------------------------------------------------------------
    def detect(self, images, thresh: float | None = None, nms: float = 0.45, **kwargs):
        """Darknet's detections for one image or a list; see :func:`darknetpy.detect.detect`."""
        from .detect import detect

        return detect(self, images, thresh=thresh, nms=nms, **kwargs)

    # ---- weights ------------------------------------------------------------------------
    def load_weights(self, path: "str | os.PathLike", cutoff: int | None = None) -> LoadReport:
        """Load a Darknet ``.weights`` file (layers ``0..cutoff-1``); see :func:`darknetpy.weights.load_weights`."""
        self._release_plan()
        return load_weights(self, path, cutoff)

    def save_weights(self, path: "str | os.PathLike", cutoff: int | None = None) -> None:
        """Save as Darknet does; with ``cutoff`` the bytes of ``darknet partial`` (``seen`` 0)."""
        save_weights(self, path, cutoff)

    def weights_bytes(self, cutoff: int | None = None) -> int:
        """Size in bytes of the .weights file Darknet writes for this network."""
        return weights_bytes(self, cutoff)

    def extra_repr(self) -> str:
        c, h, w = self.input_shape
        return f"cfg={self.cfg.path!r}, flavor={self.flavor.name}, input={c}x{h}x{w}"


def build_layers(
    cfg: CfgFile, flavor: FlavorSpec, strict: bool = False, flavor_source: str | None = None
) -> tuple[NetOptions, list[DarknetLayer]]:
    """Build every layer of a parsed cfg (Darknet's ``parse_network_cfg`` loop).

    Keys that only the other fork reads are reported in one warning, which says where the flavour
    came from (``flavor_source``) and how to choose the other one.
    """
    if not cfg.sections:
        raise DarknetError(f"{cfg.path}: no sections")
    net = NetOptions.from_section(cfg.net, flavor)
    foreign: list[tuple[str, int | None]] = []  # (key, line) read only by the other fork
    foreign += _report_unused(cfg.net, "net", flavor, strict)
    if not cfg.layers:
        raise cfg.net.error("the cfg has no layers after [net]")
    shape: Shape = (net.channels, net.height, net.width)
    inputs = net.inputs
    built: list[DarknetLayer] = []
    for index, sec in enumerate(cfg.layers):
        cls = _layer_class(sec, flavor)
        ctx = BuildContext(flavor, net, index, shape, inputs, built, net.mini_batch * net.time_steps)
        layer = cls(sec, ctx)
        foreign += _report_unused(sec, layer.section_type, flavor, strict)
        built.append(layer)
        shape, inputs = layer.next_shape, layer.next_inputs
    if flavor.rejects_no_spatial_layer and not any(l.in_shape[1] > 1 and l.in_shape[2] > 1 for l in built):
        # Not a rule about the layers: parse_network_cfg's avg_outputs printout divides by zero.
        warnings.warn(
            f"{cfg.net.where()}: no layer gets an input larger than 1x1: {flavor.title}'s darknet stops on this cfg "
            "with a floating point exception (its parse_network_cfg divides by the number of such layers); built here",
            CfgWarning,
            stacklevel=3,
        )
    if foreign:
        warnings.warn(_foreign_keys_message(cfg, flavor, foreign, flavor_source), UnusedKeyWarning, stacklevel=3)
    return net, built


def _foreign_keys_message(cfg: CfgFile, flavor: FlavorSpec, foreign: list[tuple[str, int | None]], source: str | None) -> str:
    """One line for every key of the other fork: which keys, where, the flavour, why, how to change it."""
    lines: dict[str, list[str]] = {}
    for key, line in foreign:
        lines.setdefault(key, []).append(str(line) if line is not None else "?")
    where = "; ".join(f"{key} (line{'s' if len(at) > 1 else ''} {', '.join(at)})" for key, at in lines.items())
    other = "pjreddie" if flavor.name == "alexeyab" else "alexeyab"
    why = f", {source}" if source else ""
    many = len(foreign) > 1
    them = "them" if many else "it"
    return (
        f"{cfg.path if cfg.path is not None else '<cfg>'}: {len(foreign)} key{'s' if many else ''} that only {flavor.other_title}'s darknet reads "
        f"{'are' if many else 'is'} ignored, as {flavor.title}'s darknet ignores {them}: {where}. "
        f"The flavour is {flavor.title}'s{why}; to read {them} use flavor='{other}' (--flavor {other})"
    )


def _layer_class(sec: Section, flavor: FlavorSpec) -> type:
    cls = lookup(sec.name)
    if cls is not None and flavor.knows_section(sec.name):
        return cls
    if sec.name in flavor.other_sections:
        raise FlavorError(
            f"[{sec.name}] is a section of {flavor.other_title}'s darknet only; {flavor.title}'s does not know it "
            f"(use flavor='{'pjreddie' if flavor.name == 'alexeyab' else 'alexeyab'}')",
            path=sec.path,
            line=sec.line,
            index=sec.index,
        )
    if sec.name in ("net", "network"):
        raise UnknownSectionError("a second [net] section: [net] must be the first section only", path=sec.path, line=sec.line, index=sec.index)
    names = sorted(n for n in registered_sections() if flavor.knows_section(n))
    close = difflib.get_close_matches(sec.name, names, n=3)
    hint = f"; did you mean {', '.join('[' + c + ']' for c in close)}?" if close else ""
    raise UnknownSectionError(
        f"unknown section [{sec.name}] (Darknet would insert an empty layer and break){hint}",
        path=sec.path,
        line=sec.line,
        index=sec.index,
    )


def _report_unused(sec: Section, kind: str, flavor: FlavorSpec, strict: bool) -> list[tuple[str, int | None]]:
    """Darknet's ``option_unused``: warn once per key it would print as ``Unused field``. Keys that
    only the other fork reads are returned as (key, line), for one warning about the flavour."""
    foreign = []
    for opt in sec.unused():
        if sec.find(opt.key, mark=False) is not opt:
            reason = "repeated key; Darknet uses the first one"
        elif flavor.other_knows(kind, opt.key):
            reason = f"only {flavor.other_title}'s darknet reads this key; {flavor.title}'s ignores it"
            if not strict:
                foreign.append((opt.key, opt.line))
                continue
        else:
            reason = "unused key (Darknet prints 'Unused field')"
        err = CfgError(reason, path=sec.path, line=opt.line, section=sec.name, index=sec.index, key=opt.key, value=opt.value)
        if strict:
            raise err
        warnings.warn(str(err), UnusedKeyWarning, stacklevel=4)
    return foreign

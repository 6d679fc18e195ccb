"""What every detection loss shares: truths, per-head results, the registry and the network loss.

Darknet computes each head's ``l.delta`` (minus the gradient of its loss with respect to the head's
input ``z``, the raw output of the conv before it) and ``*l.cost``; the network cost is the mean of
the heads' costs (``src/network.c:get_network_cost``). Here every head loss returns a differentiable
``loss`` (summed over everything, no mean) whose gradient with respect to ``z`` is ``-delta``, the
``delta`` itself (detached, for the cost and the checks), Darknet's ``cost`` and its log line.
darknet-reference.md §4.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DarknetError

if TYPE_CHECKING:
    from ..layers.base import DarknetLayer
    from ..model import Darknet

__all__ = [
    "HeadLoss",
    "HeadLossResult",
    "LossResult",
    "NetworkLoss",
    "available_losses",
    "normalize_truths",
    "register_loss",
]

Truths = list[Tensor]  # per image: (N, 5) rows of class, x, y, w, h relative to the network input


def normalize_truths(truths: object, batch: int) -> Truths:
    """Truth boxes per image as ``(N, 5)`` float tensors ``class, x, y, w, h``.

    Accepts a list (one entry per image) of ``(N, 5)`` arrays, tensors or lists of rows, or a padded
    ``(B, M, 5+)`` array in Darknet's buffer layout (``x, y, w, h, class``... is *not* accepted: the
    column order here is the label files' ``class x y w h``); rows are taken up to the first with
    ``x == 0``, as Darknet's loops stop there.
    """
    if isinstance(truths, (Tensor, np.ndarray)) and np.ndim(truths) == 3:
        truths = list(truths)
    if not isinstance(truths, Sequence) or len(truths) != batch:
        raise DarknetError(f"give one list of truth boxes per image: {batch} images")
    out = []
    for t in truths:
        rows = torch.as_tensor(np.asarray(t, dtype=np.float32)).reshape(-1, np.shape(t)[-1] if np.size(t) else 5)
        if rows.numel() and rows.shape[1] < 5:
            raise DarknetError("a truth row is class, x, y, w, h")
        rows = rows[:, :5]
        stop = torch.nonzero(rows[:, 1] == 0)
        if len(stop):
            rows = rows[: int(stop[0])]
        out.append(rows)
    return out


@dataclass
class HeadLossResult:
    """One head's loss for a batch."""

    loss: Tensor  # differentiable, summed over the batch
    delta: Tensor  # Darknet's l.delta (minus the gradient of loss w.r.t. z), detached, shape of z
    cost: float  # Darknet's *l.cost
    stats: dict[str, float] = field(default_factory=dict)  # avg_iou, count, ... for the log line
    line: str = ""  # Darknet's per-layer training line


class HeadLoss:
    """Base of a head's loss: built once for a layer, called with the head's input and the truths.

    Contract: minus the gradient of ``loss`` with respect to ``z`` is ``delta``, unless the class sets
    ``delta_is_gradient = False`` (pjreddie's region loss: its CPU backward sends nothing, so the
    gradient is the GPU one while ``delta`` stays the CPU ``l.delta`` that the cost is made of).
    """

    name: ClassVar[str] = ""
    delta_is_gradient: ClassVar[bool] = True

    def __init__(self, layer: "DarknetLayer", model: "Darknet") -> None:
        self.layer = layer
        self.flavor = model.flavor
        self.net = model.net
        _, self.net_h, self.net_w = model.input_shape

    def __call__(self, z: Tensor, truths: Truths, seen: int = 0) -> HeadLossResult:
        raise NotImplementedError


_LOSSES: dict[tuple[str, str, str | None], type[HeadLoss]] = {}


def register_loss(name: str, section: str, flavor: str | None = None) -> Callable[[type[HeadLoss]], type[HeadLoss]]:
    """Class decorator: the loss ``name`` of heads of type ``section`` (for one fork, or both)."""

    def decorate(cls: type[HeadLoss]) -> type[HeadLoss]:
        key = (name, section, flavor)
        if key in _LOSSES:
            raise ValueError(f"loss {key} registered twice")
        _LOSSES[key] = cls
        cls.name = name
        return cls

    return decorate


def available_losses() -> list[str]:
    """The loss names that can be selected."""
    return sorted({name for name, _, _ in _LOSSES})


def missing_loss(model: "Darknet", name: str) -> str:
    """The heads of ``model`` that loss ``name`` does not cover yet, as text ("" when none)."""
    flavor = model.flavor.name
    missing = {f"[{l.section_type}] ({flavor})" for l in model.heads if not any(k in _LOSSES for k in ((name, l.section_type, flavor), (name, l.section_type, None)))}
    return ", ".join(sorted(missing))


def _loss_class(name: str, layer: "DarknetLayer", flavor: str) -> type[HeadLoss]:
    for key in ((name, layer.section_type, flavor), (name, layer.section_type, None)):
        if key in _LOSSES:
            return _LOSSES[key]
    known = [f"{n} ({s}{', ' + f if f else ''})" for n, s, f in sorted(_LOSSES, key=str) if n == name]
    if not known:
        raise DarknetError(f"unknown loss {name!r}; available: {', '.join(available_losses())}")
    raise DarknetError(f"loss {name!r} has no {flavor} form for [{layer.section_type}] (layer {layer.index}); it covers {', '.join(known)}")


@dataclass
class LossResult:
    """The network's loss for a batch: the sum of the heads' (to backpropagate) and Darknet's cost."""

    loss: Tensor
    cost: float  # Darknet's network cost: the mean of the heads' costs
    heads: list[HeadLossResult]

    def lines(self) -> list[str]:
        return [h.line for h in self.heads]


class NetworkLoss:
    """The loss of every head of ``model`` (``name``: ``darknet`` is the flavour's own)."""

    def __init__(self, model: "Darknet", name: str = "darknet") -> None:
        if not model.heads:
            raise DarknetError("this network has no detection heads to compute a loss for")
        self.name = name
        self.heads = [_loss_class(name, layer, model.flavor.name)(layer, model) for layer in model.heads]

    def __call__(self, head_inputs: Sequence[Tensor], truths: object, seen: int = 0) -> LossResult:
        """``head_inputs`` from :meth:`Darknet.forward_train`; ``truths`` per image (see :func:`normalize_truths`)."""
        if len(head_inputs) != len(self.heads):
            raise DarknetError(f"{len(head_inputs)} head inputs for {len(self.heads)} heads")
        batch = head_inputs[0].shape[0]
        truths = normalize_truths(truths, batch)
        results = [head(z, truths, seen) for head, z in zip(self.heads, head_inputs)]
        loss = torch.stack([r.loss for r in results]).sum()
        cost = sum(r.cost for r in results) / len(results)
        return LossResult(loss, cost, results)

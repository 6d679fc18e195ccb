"""Darknet's weight update as a torch optimiser: parameter groups, SGD or Adam, per-layer rates, clip.

Darknet: ``src/convolutional_layer.c:update_convolutional_layer``, ``src/connected_layer.c:update_connected_layer``,
AlexeyAB ``src/shortcut_layer.c:update_shortcut_layer``, ``src/blas_kernels.cu:adam_update_gpu``
(darknet-reference.md §5.3). With ``B`` images per update (:func:`darknetpy.schedule.images_per_update`)
Darknet does, per layer, with ``η = rate·learning_rate_scale``::

    weight_updates += -decay·B·W;  W += η/B·weight_updates;  weight_updates *= momentum
    biases += η/B·bias_updates;    bias_updates *= momentum        (scales likewise; no decay)

which is ``torch.optim.SGD(lr=η, momentum, dampening=0, nesterov=False)`` with ``weight_decay=decay`` on
the weights only, **when the gradient fed to torch is (Σ over the B images of ∂L/∂θ)/B**: per
sub-batch call ``(loss_sum / B).backward()`` and step once per ``B`` images.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .schedule import images_per_update

if TYPE_CHECKING:
    from .model import Darknet

__all__ = ["first_updated_layer", "param_groups", "build_optimizer", "set_learning_rate", "clip_weights"]

_DECAYED = frozenset({"weight", "weights"})  # conv/connected/deconv/local/crnn blocks, AB [shortcut]/[implicit]
_NOT_DECAYED = frozenset({"biases", "scales"})  # biases (β with batch norm) and batch-norm γ
_CLIPPED_SECTIONS = frozenset({"convolutional", "implicit"})


def first_updated_layer(model: "Darknet", freeze: int = 0) -> int:
    """Index of the first layer whose parameters are updated; every layer before it is frozen.

    - ``freeze``: the first ``freeze`` layers (``--freeze N``).
    - ``stopbackward``: the layers before the last layer that has it. AlexeyAB marks them
      ``train=0`` (``parse_network_cfg_custom``, only for ``stopbackward=1``: larger values stop the
      backward pass up to that iteration only). pjreddie's ``backward_network`` merely stops there (any
      non-zero value); its earlier layers still decay and apply momentum with a zero gradient —
      leaving them out is a simplification. The ``stopbackward`` layer itself stays in the optimiser:
      Darknet updates it although its own backward does not run (detach its output to match).
    - AlexeyAB ``train_only_bn``: that layer and all before it (``set_train_only_bn``); the GPU
      update skips them (``update_network_gpu``), so only their batch-norm statistics move.
    """
    ab = model.flavor.name == "alexeyab"
    cut = max(0, int(freeze))
    stops = [layer.index for layer in model.layers if (layer.stopbackward == 1 if ab else layer.stopbackward)]
    if stops:
        cut = max(cut, stops[-1])
    if ab:
        bn_only = [layer.index for layer in model.layers if layer.train_only_bn]
        if bn_only:
            cut = max(cut, bn_only[-1] + 1)
    return min(cut, len(model.layers))


def _decays(name: str, layer: nn.Module) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _DECAYED:
        return True
    if leaf in _NOT_DECAYED:
        return False
    raise ValueError(
        f"layer {getattr(layer, 'index', '?')} [{getattr(layer, 'section_type', '?')}]: parameter {name!r} is "
        "neither a weight nor a bias/scale; darknetpy.optim does not know whether Darknet decays it"
    )


def param_groups(model: "Darknet", freeze: int = 0) -> list[dict]:
    """Parameter groups for a torch optimiser, Darknet's way.

    Each group has ``params``, ``weight_decay`` (``net.decay`` for weights, 0 for biases and batch-norm
    scales; under ``adam`` every parameter is decayed, as ``adam_update_gpu`` is called with ``decay``
    for biases and scales too) and ``lr_scale`` (the layer's ``learning_rate=`` key), for
    :func:`set_learning_rate`. Layers with the same scale and decay share a group.

    Parameters of the layers before :func:`first_updated_layer` are left out and get
    ``requires_grad_(False)``; the others get ``requires_grad_(True)``. A parameter held by several
    layers (AlexeyAB ``share_index``) appears once, with the scale of the first updated layer holding it,
    and stays trainable if any updated layer holds it.

    Raises:
        ValueError: a layer has a parameter that is neither a weight nor a bias/scale.
    """
    net = model.net
    cut = first_updated_layer(model, freeze)
    groups: dict[tuple[float, float], dict] = {}
    kept: set[int] = set()
    for layer in model.layers[cut:]:
        scale = float(layer.learning_rate_scale)
        for name, p in layer.named_parameters():
            if id(p) in kept:
                continue
            kept.add(id(p))
            decay = float(net.decay) if (net.adam or _decays(name, layer)) else 0.0
            group = groups.setdefault((scale, decay), {"params": [], "weight_decay": decay, "lr_scale": scale})
            group["params"].append(p)
            p.requires_grad_(True)
    for layer in model.layers[:cut]:
        for p in layer.parameters():
            if id(p) not in kept:
                p.requires_grad_(False)
    return list(groups.values())


def build_optimizer(model: "Darknet", freeze: int = 0) -> torch.optim.Optimizer:
    """SGD with Darknet's momentum and decay, or Adam when ``[net] adam=1``; see :func:`param_groups`.

    - SGD: ``momentum=net.momentum``, ``dampening=0``, ``nesterov=False``. Equal to Darknet's update
      for the mean gradient (module docstring).
    - Adam: ``betas=(B1, B2)``, ``eps=net.eps/B`` with ``B`` = :func:`~darknetpy.schedule.images_per_update`.
      ``adam_update_gpu`` runs Adam on ``d = Σ-gradient-ascent − decay·B·W`` = ``−B·(ḡ + decay·W)``,
      so its ``m̂/(√v̂+eps)`` is torch's ``m̂/(√v̂+eps/B)`` on ``ḡ`` with L2 ``weight_decay=decay``.
      Darknet's Adam exists only on the GPU (the CPU update ignores ``adam``); its step count is
      pjreddie's ``net->t`` (1 at the first update) and AlexeyAB's current batch (the same when
      training starts from ``seen=0``).

    Every group starts at ``lr = net.learning_rate·lr_scale``; call :func:`set_learning_rate` with
    :func:`darknetpy.schedule.learning_rate` before each step (burn-in starts far lower).

    Raises:
        ValueError: no layer is left to train.
    """
    net = model.net
    groups = param_groups(model, freeze)
    if not groups:
        raise ValueError(f"nothing to train: all {len(model.layers)} layers are frozen or have no parameters")
    for group in groups:
        group["lr"] = float(net.learning_rate) * group["lr_scale"]
    if net.adam:
        eps = float(net.eps) / images_per_update(net)
        return torch.optim.Adam(groups, lr=float(net.learning_rate), betas=(float(net.b1), float(net.b2)), eps=eps)
    return torch.optim.SGD(
        groups, lr=float(net.learning_rate), momentum=float(net.momentum), dampening=0.0, nesterov=False
    )


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's rate to ``lr·lr_scale`` (Darknet's ``a.learning_rate·l.learning_rate_scale``)."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr) * float(group.get("lr_scale", 1.0))


@torch.no_grad()
def clip_weights(model: "Darknet") -> None:
    """Clamp weights to ``±clip`` after an update, as Darknet's GPU update does (``constrain_gpu``).

    The limit is pjreddie's ``[net] clip`` (copied to every layer) or AlexeyAB's per-layer ``clip=``;
    0 means none. It applies to the weights of ``[convolutional]`` layers (both forks'
    ``update_convolutional_layer_gpu``) and ``[implicit]`` (AlexeyAB), not to biases or scales, and only
    to weights being trained (``requires_grad``). Darknet's CPU update never clips.
    """
    net_clip = float(model.net.clip) if model.flavor.name == "pjreddie" else 0.0
    for layer in model.layers:
        if layer.section_type not in _CLIPPED_SECTIONS:
            continue
        limit = net_clip or float(getattr(layer, "clip", 0.0))
        if not limit:
            continue
        for name, p in layer.named_parameters():
            if p.requires_grad and name.rsplit(".", 1)[-1] in _DECAYED:
                p.clamp_(-limit, limit)

"""Darknet's activation functions by cfg name.

Darknet: ``src/activations.c``/``activations.h`` (darknet-reference.md §1.6, §3.2). The
``normalize_channels*`` family works across channels, so it needs an image tensor (B, C, H, W).
Deliberate difference: ``relu6`` is ``min(max(x, 0), 6)`` as on Darknet's GPU; AlexeyAB's CPU
``activate()`` has no relu6 case and outputs 0.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .cfg import Section
from .errors import BadValueError
from .flavor import FlavorSpec

__all__ = ["ACTIVATIONS", "AB_ONLY_ACTIVATIONS", "NOT_IN_ACTIVATE_ARRAY", "activate", "activation_from_section"]


def _stair(x: Tensor) -> Tensor:
    n = torch.floor(x)
    half = torch.floor(x / 2)
    odd = torch.remainder(n, 2) != 0
    return torch.where(odd, (x - n) + half, half)


def _plse(x: Tensor) -> Tensor:
    return torch.where(x < -4, 0.01 * (x + 4), torch.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5))


def _lhtan(x: Tensor) -> Tensor:
    return torch.where(x < 0, 0.001 * x, torch.where(x > 1, 0.001 * (x - 1) + 1, x))


def _hard_mish(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, torch.where(x > -2, x * x / 2 + x, torch.zeros_like(x)))


def _gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.tanh(0.797885 * x + 0.035677 * x * x * x))


def _normalize_channels(x: Tensor) -> Tensor:
    pos = x.clamp_min(0)
    total = 0.0001 + pos.sum(dim=1, keepdim=True)
    return torch.where(x > 0, x / total, torch.zeros_like(x))


def _normalize_channels_softmax(x: Tensor, use_max: bool) -> Tensor:
    shift = x.amax(dim=1, keepdim=True) if use_max else torch.zeros_like(x[:, :1])
    e = torch.exp(x - shift)
    return e / (0.0001 + e.sum(dim=1, keepdim=True))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "logistic": torch.sigmoid,
    "loggy": lambda x: 2 * torch.sigmoid(x) - 1,
    "relu": F.relu,
    "elu": lambda x: torch.where(x >= 0, x, torch.expm1(x)),
    "selu": lambda x: torch.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * torch.expm1(x)),
    "relie": lambda x: torch.where(x > 0, x, 0.01 * x),
    "plse": _plse,
    "hardtan": lambda x: x.clamp(-1, 1),
    "lhtan": _lhtan,
    "ramp": lambda x: x * (x > 0) + 0.1 * x,
    "leaky": lambda x: F.leaky_relu(x, 0.1),
    "tanh": torch.tanh,
    "stair": _stair,
    # AlexeyAB only
    "swish": lambda x: x * torch.sigmoid(x),
    "mish": F.mish,
    "hard_mish": _hard_mish,
    "relu6": lambda x: x.clamp(0, 6),
    "gelu": _gelu,
    "revleaky": lambda x: F.leaky_relu(x, 0.1),
    "normalize_channels": _normalize_channels,
    "normalize_channels_softmax": lambda x: _normalize_channels_softmax(x, False),
    "normalize_channels_softmax_maxval": lambda x: _normalize_channels_softmax(x, True),
}
AB_ONLY_ACTIVATIONS = frozenset(
    "swish mish hard_mish relu6 gelu revleaky normalize_channels normalize_channels_softmax "
    "normalize_channels_softmax_maxval".split()
)
CHANNEL_ACTIVATIONS = frozenset(
    "normalize_channels normalize_channels_softmax normalize_channels_softmax_maxval".split()
)
# §1.6: only the conv and shortcut forwards apply these (dedicated code); Darknet's generic
# activate_array() has no case for them and outputs 0.
NOT_IN_ACTIVATE_ARRAY = frozenset("swish mish hard_mish".split()) | CHANNEL_ACTIVATIONS


def activate(x: Tensor, name: str) -> Tensor:
    """Apply the activation called ``name`` (a key of :data:`ACTIVATIONS`)."""
    if name == "linear":
        return x
    return ACTIVATIONS[name](x)


def activation_from_section(
    sec: Section, flavor: FlavorSpec, default: str = "logistic", key: str = "activation", generic: bool = False
) -> str:
    """Read and check an activation name. Darknet falls back to relu on an unknown name; we refuse it.

    ``generic``: the layer's forward uses Darknet's generic ``activate_array`` (every layer but conv
    and shortcut), which outputs zeros for swish, mish, hard_mish and normalize_channels*: refused.
    """
    name = sec.get_str(key, default)
    if name not in ACTIVATIONS:
        raise sec.error(f"unknown activation; known: {', '.join(sorted(ACTIVATIONS))}", key, BadValueError)
    if name in AB_ONLY_ACTIVATIONS and flavor.name == "pjreddie":
        from .errors import FlavorError

        raise sec.error(
            "is an AlexeyAB activation: pjreddie's darknet would silently use relu (load with flavor='alexeyab')",
            key,
            FlavorError,
        )
    if generic and name in NOT_IN_ACTIVATE_ARRAY:
        raise sec.error(
            f"Darknet's generic activate_array() (used by [{sec.name}]) has no case for {name} and would output "
            "zeros; only [convolutional] and [shortcut] apply it",
            key,
            BadValueError,
        )
    return name

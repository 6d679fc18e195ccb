"""Darknet's learning-rate schedule and update counter.

Darknet: ``src/network.c:get_current_rate``, ``get_current_batch`` (darknet-reference.md §5.1, §5.2).
The rate is computed in C's mixed float/double arithmetic and returned as a ``float``; this module
does the same, so the value (and Darknet's ``%f`` print of it) is reproduced to the bit.
"""
from __future__ import annotations

import math
import random as _random

import numpy as np

from .net import NetOptions

__all__ = ["learning_rate", "current_batch", "images_per_update"]

_f32 = np.float32
_SIZE_T = 2**64
_PI = 3.14159265  # AlexeyAB's sgdr literal (not M_PI)


def _pow(x: float, y: float) -> float:
    """C's ``pow`` in double: inf/nan instead of Python's exceptions."""
    with np.errstate(all="ignore"):
        return float(np.power(np.float64(x), np.float64(y)))


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    if b == 0:
        raise ValueError("division by zero in the learning-rate policy (Darknet stops with SIGFPE)")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def images_per_update(net: NetOptions) -> int:
    """Images in one weight update as Darknet counts them: ``net->batch·subdivisions``.

    ``net->batch`` is the cfg's ``batch/subdivisions`` (integer division) times ``time_steps``
    (§1.3), so a cfg with ``batch=10, subdivisions=4`` updates on 8 images, not 10. This is
    ``update_args.batch`` (the ``B`` of §5.3) and the divisor of :func:`current_batch`.
    """
    return net.mini_batch * max(1, net.time_steps) * max(1, net.subdivisions)


def current_batch(seen: int, net: NetOptions) -> int:
    """Darknet's ``get_current_batch``: ``seen / (net->batch·subdivisions)``.

    ``seen`` grows by ``net->batch`` per forward pass before the update runs, so this is already 1
    during the first update and equals the iteration number printed in the training log.
    """
    return int(seen) // images_per_update(net)


def learning_rate(
    net: NetOptions, batch_num: int, rng: _random.Random | None = None, *, flavor: str | None = None
) -> float:
    """The rate Darknet uses (and prints) at update ``batch_num``: ``get_current_rate``.

    Args:
        net: the ``[net]`` options (``learning_rate``, ``policy``, ``burn_in``, ``power``, ...).
        batch_num: :func:`current_batch` of the update (1 for the first).
        rng: source of ``U(0,1)`` for ``policy=random`` (Darknet's ``rand()``); the module's if None.
        flavor: ``"pjreddie"`` makes ``batch_num - step`` of ``policy=sigmoid`` unsigned (``size_t``),
            as pjreddie's code does: before ``step`` the rate is then 0 for ``gamma > 0``. Other
            policies agree between the forks (``sgdr`` exists only in AlexeyAB's).

    Returns:
        The rate as Darknet's float (a float32 value), before the layer's ``learning_rate`` scale.

    Raises:
        ValueError: where Darknet would crash or hang (``step=0``; ``sgdr_cycle <= 0``).
    """
    b = int(batch_num)
    lr = _f32(net.learning_rate)
    with np.errstate(all="ignore"):
        if b < net.burn_in:
            rate = float(lr) * _pow(float(_f32(b) / _f32(net.burn_in)), float(_f32(net.power)))
        elif net.policy == "step":
            rate = float(lr) * _pow(float(_f32(net.scale)), _c_div(b, net.step))
        elif net.policy == "steps":
            r = lr
            for step, scale in zip(net.steps, net.scales):
                if step > b:
                    break
                r = _f32(r * _f32(scale))
            rate = float(r)
        elif net.policy == "exp":
            rate = float(lr) * _pow(float(_f32(net.gamma)), b)
        elif net.policy == "poly":
            rate = float(lr) * _pow(float(_f32(1) - _f32(b) / _f32(net.max_batches)), float(_f32(net.power)))
        elif net.policy == "random":
            u = _f32((rng or _random).random())  # rand_uniform(0,1) returns a float
            rate = float(lr) * _pow(float(u), float(_f32(net.power)))
        elif net.policy == "sigmoid":
            diff = b - net.step
            if flavor == "pjreddie" and diff < 0:
                diff += _SIZE_T
            x = float(_f32(net.gamma) * _f32(diff))
            rate = float(lr) * (1.0 / (1.0 + float(np.exp(np.float64(x)))))
        elif net.policy == "sgdr":
            rate = _sgdr(net, b, lr)
        else:  # constant, and Darknet's "Policy is weird!" fallback
            rate = float(lr)
        return float(_f32(rate))


def _sgdr(net: NetOptions, b: int, lr: np.float32) -> float:
    """AlexeyAB's SGDR: cosine from ``lr`` to ``learning_rate_min`` over cycles that grow ``sgdr_mult``-fold.

    A cycle ``[start, start+cycle]`` includes its end (``while (start + cycle < b)``), so the rate
    reaches ``learning_rate_min`` at ``b = start+cycle`` and restarts at ``b = start+cycle+1``.
    ``steps``/``scales``/``seq_scales`` do not enter (``seq_scales`` only scales sequential subdivisions).
    """
    cycle, start = int(net.sgdr_cycle), 0
    if cycle <= 0:
        raise ValueError(f"policy=sgdr needs sgdr_cycle > 0 (got {cycle}); Darknet loops forever")
    while start + cycle < b:
        start += cycle
        cycle *= int(net.sgdr_mult)
        if cycle <= 0:
            raise ValueError(f"policy=sgdr needs sgdr_mult >= 1 (got {net.sgdr_mult}); Darknet loops forever")
    lr_min = _f32(net.learning_rate_min)
    angle = float(_f32(b - start)) * _PI / cycle
    return float(lr_min) + 0.5 * float(lr - lr_min) * (1.0 + math.cos(angle))

"""The ``loss`` and ``grad`` checks of :mod:`darknetpy.verify`.

``loss``: each head's ``train_in_<i>`` (the input Darknet's head saw in training mode) with the case's
truth boxes goes through this port's loss; minus the gradient with respect to that input must equal
``train_delta_<i>`` and the costs ``train_costs``. ``grad``: Darknet's deltas are backpropagated from
a training-mode forward of the case's input into the conv feeding each head, whose gradients must
equal minus ``train_wgrad_*``/``train_bgrad_*``/``train_sgrad_*`` (Darknet's ``*_updates``).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import NetworkLoss

__all__ = ["verify_loss", "verify_grad"]


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    err = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()) if ref.size else 0.0
    return err / scale if scale > 0 else err


def _seen(case, model) -> int:
    # shared/golden/README.md: AlexeyAB cases were run with seen = 64000
    return int(case.info.get("seen", 64000 if case.flavor == "alexeyab" else model.seen))


def _truths_as_read(case, model) -> np.ndarray:
    """The case's truth boxes as the reference's yolo layers read them, rows ``class x y w h``.

    The AlexeyAB dumps were made with the boxes written 5 floats apart (``x y w h class``,
    pjreddie's layout) into a truth buffer that AlexeyAB reads 6 apart (``l.truth_size = 4 + 2``,
    the 6th a track id: ``src/yolo_layer.c:make_yolo_layer``; its own loader
    ``src/data.c:fill_truth_detection`` writes 6). Read that way the deltas, costs and log lines of
    both AlexeyAB cases match bit for bit; read as given, the anchors differ (8 positives instead of
    Darknet's 5 on yolo-fastest layer 121). Only AlexeyAB ``[yolo]`` reads 6 apart; ``case.json``
    may set ``truth_written_stride`` and ``truth_read_stride``.
    """
    rows = np.asarray(case.info["truth"], dtype=np.float32).reshape(-1, 5)
    ab_yolo = case.flavor == "alexeyab" and all(h.section_type == "yolo" for h in model.heads)
    written = int(case.info.get("truth_written_stride", 5))
    read = int(case.info.get("truth_read_stride", 6 if ab_yolo else 5))
    if (written, read) == (5, 5):
        return rows
    slots = max(getattr(getattr(h, "options", None), "max_boxes", 200) for h in model.heads)
    buf = np.zeros(slots * max(read, written), np.float32)
    layout = np.zeros((len(rows), written), np.float32)
    layout[:, :5] = rows[:, [1, 2, 3, 4, 0]]
    buf[: layout.size] = layout.reshape(-1)
    got = buf[: slots * read].reshape(slots, read)[:, :5]
    return got[:, [4, 0, 1, 2, 3]]


def verify_loss(case, tolerances: dict):
    """Deltas from ``train_in_*`` and the truths, and the costs."""
    from ..verify import FAILED, PASSED, SKIPPED, CheckResult
    from .base import missing_loss

    exp = case.expected()
    model = case.model(train=True)
    heads = model.heads
    missing = missing_loss(model, "darknet")
    if missing:
        return CheckResult(case.name, "loss", SKIPPED, detail=f"no Darknet loss for {missing} yet")
    zs = [torch.from_numpy(exp[f"train_in_{h.index}"]).view(1, *h.in_shape).clone().requires_grad_(True) for h in heads]
    truths = _truths_as_read(case, model)
    misread = not np.array_equal(truths, np.asarray(case.info["truth"], dtype=np.float32).reshape(-1, 5))
    network_loss = NetworkLoss(model, "darknet")
    result = network_loss(zs, [truths], seen=_seen(case, model))
    result.loss.backward()
    worst, where, details = 0.0, "", []
    for head, z, r, fn in zip(heads, zs, result.heads, network_loss.heads):
        ref = exp[f"train_delta_{head.index}"]
        err_delta = _rel(r.delta.reshape(-1).numpy(), ref)
        err = _rel(-z.grad.reshape(-1).numpy(), ref) if fn.delta_is_gradient else err_delta
        if max(err, err_delta) >= worst:
            worst, where = max(err, err_delta), f"train_delta_{head.index}"
    tol, cost_tol = tolerances["loss"], tolerances["cost"]
    costs = case.info.get("train_costs", {})
    cost_errors = []
    for head, r in zip(heads, result.heads):
        want = costs.get(str(head.index))
        if want is not None:
            cost_errors.append(abs(r.cost - want) / max(abs(want), 1e-12))
            details.append(f"cost {r.cost:.6g} (Darknet {want:.6g})")
    total = case.info.get("train_total_cost")
    if total is not None:
        cost_errors.append(abs(result.cost - total) / max(abs(total), 1e-12))
    ok = worst <= tol and all(e <= cost_tol for e in cost_errors)
    detail = f"{len(heads)} heads, worst {where}; " + ", ".join(details)
    if misread:
        detail += "; truths as the dump's Darknet read them (written 5 floats apart, read 6 apart)" + (f"; max cost err {max(cost_errors):.1e}" if cost_errors else "")
    return CheckResult(case.name, "loss", PASSED if ok else FAILED, worst, tol, detail)


def verify_grad(case, tolerances: dict):
    """Darknet's head deltas backpropagated into the conv feeding each head."""
    from ..verify import FAILED, PASSED, CheckResult

    exp = case.expected()
    model = case.model(train=True).emulate_darknet_sums().set_dropout(0.0)
    x = torch.from_numpy(exp["input"])
    zs = model.forward_train(x)
    deltas = [torch.from_numpy(exp[f"train_delta_{h.index}"]).view_as(z) for h, z in zip(model.heads, zs)]
    torch.autograd.backward(zs, grad_tensors=[-d for d in deltas])
    worst, where, count = 0.0, "", 0
    for key in sorted(k for k in exp if k.startswith(("train_wgrad_", "train_bgrad_", "train_sgrad_"))):
        kind, index = key.split("_")[1], int(key.rsplit("_", 1)[1])
        conv = model.layers[index]
        tensor = {"wgrad": conv.weight, "bgrad": conv.biases, "sgrad": conv.bn.scales if conv.bn is not None else None}[kind]
        if tensor is None or tensor.grad is None:
            return CheckResult(case.name, "grad", FAILED, detail=f"{key}: layer {index} has no such gradient here")
        err = _rel(-tensor.grad.reshape(-1).numpy(), exp[key])
        count += 1
        if err >= worst:
            worst, where = err, key
    tol = tolerances["grad"]
    return CheckResult(case.name, "grad", PASSED if worst <= tol else FAILED, worst, tol, f"{count} arrays, worst {where}")

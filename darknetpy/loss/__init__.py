"""Detection losses: Darknet's own (per fork) and other published ones, selectable by name.

``NetworkLoss(model, name)`` computes every head's loss from :meth:`Darknet.forward_train`'s head
inputs and the truth boxes; see :mod:`darknetpy.loss.base`.
"""
from .base import HeadLoss, HeadLossResult, LossResult, NetworkLoss, available_losses, normalize_truths, register_loss
from .verify import verify_grad, verify_loss

__all__ = [
    "HeadLoss",
    "HeadLossResult",
    "LossResult",
    "NetworkLoss",
    "available_losses",
    "normalize_truths",
    "register_loss",
    "verify_grad",
    "verify_loss",
]

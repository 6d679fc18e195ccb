"""Detection losses: Darknet's own (per fork) and other published ones, selectable by name.

``NetworkLoss(model, name)`` computes every head's loss from :meth:`Darknet.forward_train`'s head
inputs and the truth boxes; see :mod:`darknetpy.loss.base`.
"""
from .base import HeadLoss, HeadLossResult, LossResult, NetworkLoss, available_losses, normalize_truths, register_loss
from .verify import verify_grad, verify_loss
from . import gaussian_yolo, region, ultralytics  # noqa: F401  (register the [region], [Gaussian_yolo] and YOLOv5 losses)
from . import darknet_ciou, yolo_alexeyab, yolo_pjreddie  # noqa: F401  (register the [yolo] losses)

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

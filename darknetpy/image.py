"""Images in and out: loading, Darknet's resize and letterbox, drawing boxes.

Darknet: ``src/image.c:resize_image`` (separable bilinear with ``(in-1)/(out-1)`` scaling: the
corners map onto corners), ``letterbox_image`` (keep the aspect ratio, pad with 0.5, centred),
``load_image_color`` (RGB, float in [0, 1]). pjreddie always letterboxes for detection; AlexeyAB
stretches with ``resize_image`` unless ``letter_box=1`` or ``-letter_box`` (darknet-reference.md §7.1).
JPEG files are decoded by default as Darknet's CPU builds do, with stb_image's arithmetic
(:mod:`darknetpy.jpeg`: the same pixels, so the same probabilities); ``decoder="opencv"`` is ~40x
faster and differs by a few grey levels on some pixels (libjpeg-turbo). Other formats use OpenCV.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
from torch import Tensor

from .errors import DataError

__all__ = ["ImageLike", "decode_image", "load_image", "to_tensor", "resize_image", "letterbox_image", "letterbox_size", "prepare", "draw_detections", "save_image"]

ImageLike = Union[str, os.PathLike, np.ndarray, Tensor, "PIL.Image.Image"]  # noqa: F821


JPEG_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif"}


def decode_image(data: bytes, decoder: str = "stb", name: str = "image") -> np.ndarray:
    """Encoded image bytes as ``(H, W, 3)`` uint8 RGB; a :class:`DataError` naming ``name`` if they do not decode.

    ``decoder="stb"`` decodes JPEGs exactly as Darknet's stb_image (no EXIF rotation), other formats
    with OpenCV; ``"opencv"`` uses OpenCV for everything (faster; EXIF orientation applied).
    """
    if decoder not in ("stb", "opencv"):
        raise DataError(f"unknown image decoder {decoder!r} (use 'stb' or 'opencv')")
    if decoder == "stb" and data[:2] == b"\xff\xd8":
        from .jpeg import decode_jpeg

        return decode_jpeg(data, name)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise DataError(f"{name}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_image(path: "str | os.PathLike", decoder: str = "stb") -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (see :func:`decode_image`); ``data/dog.jpg`` that is
    not here is the bundled sample."""
    from .zoo import find_file

    p = find_file(path)
    try:
        data = p.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(f"{p}: image not found") from None
    return decode_image(data, decoder, os.fspath(p))


def to_tensor(image: ImageLike) -> Tensor:
    """Any supported image to ``(3, H, W)`` float32 RGB in [0, 1].

    Paths are decoded; numpy arrays are ``(H, W, 3)`` RGB (uint8 0..255 or float 0..1); PIL images
    are converted to RGB; tensors are ``(3, H, W)`` floats in [0, 1] (or uint8) and used as they are.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Tensor):
        t = image
        if t.dim() != 3 or t.shape[0] != 3:
            raise DataError(f"an image tensor must be (3, H, W), got {tuple(t.shape)}")
        return t.float().div(255) if t.dtype == torch.uint8 else t.float()
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image.convert("RGB"))
        except AttributeError:
            raise DataError(f"unsupported image type {type(image).__name__}") from None
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"an image array must be (H, W, 3) RGB, got {image.shape}")
    image = image[:, :, :3]
    image = np.ascontiguousarray(image) if image.flags.writeable else np.array(image)
    t = torch.from_numpy(image).permute(2, 0, 1)
    return t.float().div(255) if image.dtype == np.uint8 else t.float()


def _axis_weights(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source index, next index and weight per output position (float32 maths, as in C)."""
    if n_out == 1 or n_in == 1:
        scale = torch.tensor(0.0)
    else:
        scale = torch.tensor(n_in - 1, dtype=torch.float32) / torch.tensor(n_out - 1, dtype=torch.float32)
    s = torch.arange(n_out, dtype=torch.float32) * scale
    i = s.floor().long().clamp(max=n_in - 1)
    d = s - i.float()
    i1 = (i + 1).clamp(max=n_in - 1)
    return i.to(device), i1.to(device), d.to(device)


def resize_image(image: Tensor, width: int, height: int) -> Tensor:
    """Darknet's ``resize_image`` of a ``(3, H, W)`` or ``(N, 3, H, W)`` float image.

    Horizontal pass ``(1-dx)·p[ix] + dx·p[ix+1]`` with ``sx = c·(w_in-1)/(w_out-1)`` (the last
    column copies the last input column), then vertical ``(1-dy)·row[iy] + dy·row[iy+1]``.
    """
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    _, _, h, w = x.shape
    if (h, w) == (height, width):
        return image.clone()
    ix, ix1, dx = _axis_weights(w, width, x.device)
    if w > 1:
        dx = torch.where(torch.arange(width, device=x.device) == width - 1, torch.zeros_like(dx), dx)
        ix = torch.where(torch.arange(width, device=x.device) == width - 1, torch.full_like(ix, w - 1), ix)
    part = (1 - dx) * x[..., ix] + dx * x[..., ix1]
    iy, iy1, dy = _axis_weights(h, height, x.device)
    dy = dy.view(-1, 1)
    out = (1 - dy) * part[..., iy, :]
    last = torch.arange(height, device=x.device) == height - 1
    add = dy * part[..., iy1, :]
    if h > 1:
        add = torch.where(last.view(-1, 1), torch.zeros_like(add), add)
        out = out + add
    return out.squeeze(0) if squeeze else out


def letterbox_size(image_w: int, image_h: int, net_w: int, net_h: int) -> tuple[int, int]:
    """(new_w, new_h) of the resized image inside the letterbox (C integer maths)."""
    if net_w / image_w < net_h / image_h:
        return net_w, (image_h * net_w) // image_w
    return (image_w * net_h) // image_h, net_h


def letterbox_image(image: Tensor, width: int, height: int) -> Tensor:
    """Darknet's ``letterbox_image``: resize keeping the aspect ratio, centre on a 0.5 canvas."""
    _, h, w = image.shape
    new_w, new_h = letterbox_size(w, h, width, height)
    resized = resize_image(image, new_w, new_h)
    canvas = torch.full((3, height, width), 0.5, dtype=image.dtype, device=image.device)
    dx, dy = (width - new_w) // 2, (height - new_h) // 2
    canvas[:, dy : dy + new_h, dx : dx + new_w] = resized
    return canvas


def prepare(image: ImageLike, width: int, height: int, letterbox: bool) -> tuple[Tensor, tuple[int, int]]:
    """The network input ``(3, height, width)`` of one image and the original (w, h)."""
    t = to_tensor(image)
    size = (t.shape[2], t.shape[1])
    sized = letterbox_image(t, width, height) if letterbox else resize_image(t, width, height)
    return sized, size


def draw_detections(image: np.ndarray, detections: "list", classes: int) -> np.ndarray:
    """Boxes and labels on a copy of an ``(H, W, 3)`` uint8 RGB image, as ``draw_detections`` does:
    one box per detection box, labelled with every class above the threshold, in the class colour."""
    from .detect import class_color

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    groups: dict[tuple, list] = {}
    for d in detections:
        groups.setdefault((d.x, d.y, d.w, d.h), []).append(d)
    thickness = max(1, int(h * 0.006))
    for dets in groups.values():
        top = max(dets, key=lambda d: d.score)
        color = class_color(top.class_id, classes)
        if any(v != v for v in top.box):  # NaN: nothing to draw
            continue
        # clipped to the image before rounding: an untrained head gives infinite sizes
        x1, y1, x2, y2 = (int(round(min(max(v, 0.0), limit))) for v, limit in zip(top.box, (w - 1, h - 1, w - 1, h - 1)))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = ", ".join(d.name for d in sorted(dets, key=lambda d: -d.score))
        scale = max(0.4, h / 1200)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(th + base, y1)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def save_image(image: np.ndarray, path: "str | os.PathLike") -> None:
    """Write an ``(H, W, 3)`` uint8 RGB image (format from the extension)."""
    p = Path(path)
    ok, data = cv2.imencode(p.suffix or ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{p}: cannot encode the image")
    data.tofile(p)

"""The detection training set: Darknet's ``load_data_detection`` as a PyTorch data set.

Sample ``k`` is a pure function of ``(seed, k)``: a generator seeded with ``[seed, k]`` draws the
image *with replacement*, as Darknet's ``get_random_paths`` does, and then its augmentation
(:mod:`darknetpy.data.augment`). The image size of sample ``k`` is ``size_for(k // batch)`` (the
multi-scale size of its iteration, :func:`train_size`). So a sample does not depend on the number
of DataLoader workers, on how samples are split between ranks, or on where a run was resumed.

Labels are read once in the constructor (``read_labels``); each bad line, each missing label file
and each unreadable image is reported once through ``log`` and skipped: a bad line is dropped, a
missing label file gives an image without boxes (AlexeyAB's behaviour; pjreddie's darknet stops
there), an unreadable image is replaced by another one drawn from the sample's generator.
"""
from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from ..errors import DataError
from ..flavor import get_flavor
from ..schedule import images_per_update
from . import augment as aug
from .datafile import DataConfig
from .labels import label_path, read_image_list, read_labels

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Darknet

__all__ = ["AUGMENT_MODES", "DetectionDataset", "collate", "train_size"]

AUGMENT_MODES = ("default", "alexeyab", "builtin", "pjreddie", None)
_SIZE_SALT = 0x5CA1E  # keeps train_size's generator apart from the samples' [seed, k]


def train_size(iteration: int, *, net_w: int, net_h: int, random: float, resize_step: int = 32,
               max_batches: int = 0, flavor: str = "alexeyab", seed: int = 0) -> tuple[int, int]:
    """The network size ``(w, h)`` Darknet's ``train_detector`` trains ``iteration`` at.

    Multi-scale (the last head's ``random``) picks a size every 10 iterations, here from a
    generator seeded with ``(seed, iteration // 10)``:

    - AlexeyAB (§6.3.8): ``r = rand_scale(random == 1 ? 1.4 : random)``,
      ``dim = round(r·init/resize_step + 1)·resize_step`` per side; back to the initial size when
      ``r < 1`` and the result is larger; the largest size (``r`` = the coefficient) for the first
      10 iterations and from ``max_batches − 100`` on; at least ``resize_step``.
    - pjreddie (§6.2.7): ``(rand() % 10 + 10)·32`` square, 608 in the last 200 iterations.

    Darknet counts its 10 from the start of each run; here blocks are fixed at multiples of 10
    (a resumed run keeps the sequence).
    """
    if not random:
        return int(net_w), int(net_h)
    block = int(iteration) // 10
    start = block * 10
    rng = np.random.default_rng([int(seed), _SIZE_SALT, block])
    if flavor == "pjreddie":
        dim = (int(rng.integers(10)) + 10) * 32
        if start + 200 > max_batches:
            dim = 608
        return dim, dim
    step = max(1, int(resize_step))
    coef = 1.4 if random == 1 else float(random)
    r = aug.rand_scale(rng, coef)
    f32 = np.float32

    def dim(scale: float, init: int) -> int:
        v = f32(scale) * f32(init) / f32(step) + f32(1)
        return int(np.floor(float(v) + 0.5)) * step  # roundl: halves away from zero (v > 0)

    dim_w, dim_h = dim(r, net_w), dim(r, net_h)
    if r < 1 and (dim_w > net_w or dim_h > net_h):
        dim_w, dim_h = int(net_w), int(net_h)
    if block == 0 or start > max_batches - 100:
        dim_w, dim_h = dim(coef, net_w), dim(coef, net_h)
    return max(dim_w, step), max(dim_h, step)


def collate(samples: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A batch: images stacked ``(B, 3, H, W)`` and the list of each image's truths ``(M, 5)``."""
    if not samples:
        raise DataError("an empty batch")
    shapes = {tuple(s[0].shape) for s in samples}
    if len(shapes) > 1:
        raise DataError(
            f"a batch mixes image sizes {sorted(shapes)}: batches must hold samples of one iteration "
            "(DataLoader batch_size = the dataset's batch, sequential sampler)")
    return torch.stack([s[0] for s in samples]), [s[1] for s in samples]


class DetectionDataset(torch.utils.data.Dataset):
    """Training samples ``(image (3, H, W) float32 RGB in [0, 1], truths (M, 5) class x y w h)``.

    Args:
        images: the training images (``train.txt``).
        width, height: the network input (before multi-scale).
        classes: the number of classes (labels with another class are reported and dropped).
        flavor: whose rules: label paths, ``max_boxes`` default, truth filter, multi-scale.
        augment: ``"alexeyab"`` (the OpenCV build), ``"builtin"`` (AlexeyAB built without OpenCV),
            ``"pjreddie"``, ``"default"`` (the flavour's own) or ``None``: no augmentation, sample
            ``k`` is image ``k % len(images)`` resized (or letterboxed with ``letter_box``) as
            ``detector test`` prepares it, boxes in their file order.
        jitter, resize, max_boxes: the last head's ``jitter``, ``resize`` (AlexeyAB) and ``max``.
        hue, saturation, exposure, flip, letter_box, blur, gaussian_noise, mosaic, mixup,
            mosaic_bound: the ``[net]`` keys (``mixup=1`` → ``mixup``; ``mosaic=1`` → ``mosaic``).
        seed: the seed of every sample's generator (``[seed, k]``).
        size_for: the ``(w, h)`` of iteration ``k // batch`` (multi-scale), else ``(width, height)``.
        batch: images per iteration (the cfg's ``batch``).
        length: ``len()`` (``max_batches·batch`` for a whole run); default: the number of images.
        log: where problems are reported, once each.
    """

    def __init__(
        self,
        images: Sequence[str | os.PathLike],
        *,
        width: int,
        height: int,
        classes: int,
        flavor: str = "alexeyab",
        augment: str | None = "default",
        jitter: float = 0.0,
        hue: float = 0.0,
        saturation: float = 1.0,
        exposure: float = 1.0,
        flip: bool = True,
        letter_box: bool = False,
        blur: int = 0,
        gaussian_noise: int = 0,
        mosaic: bool = False,
        mixup: bool = False,
        resize: float = 1.0,
        max_boxes: int | None = None,
        seed: int = 0,
        size_for: Callable[[int], tuple[int, int]] | None = None,
        batch: int = 1,
        length: int | None = None,
        log: Callable[[str], None] = print,
        mosaic_bound: bool = False,
    ) -> None:
        spec = get_flavor(flavor)
        self.flavor = spec.name
        if augment not in AUGMENT_MODES:
            raise DataError(f"unknown augmentation {augment!r}: use one of {', '.join(map(repr, AUGMENT_MODES))}")
        self.mode = (self.flavor if augment == "default" else augment)
        if int(width) < 1 or int(height) < 1:
            raise DataError(f"network size {width}x{height}: both must be positive")
        if int(classes) < 1:
            raise DataError(f"classes={classes}: at least one class")
        if int(seed) < 0:
            raise DataError(f"seed={seed}: must not be negative")
        self.images = [os.fspath(p) for p in images]
        if not self.images:
            raise DataError("no training images")
        self.width, self.height, self.classes = int(width), int(height), int(classes)
        self.seed, self.batch = int(seed), max(1, int(batch))
        self.size_for = size_for
        self.length = None if length is None else int(length)
        self.log = log
        self.mosaic, self.mixup = bool(mosaic), bool(mixup)
        self.letter_box = bool(letter_box)
        self.options = aug.AugmentOptions(
            width=self.width, height=self.height, jitter=float(jitter), resize=float(resize), hue=float(hue),
            saturation=float(saturation), exposure=float(exposure), flip=bool(flip), letter_box=bool(letter_box),
            blur=int(blur), gaussian_noise=int(gaussian_noise), mosaic_bound=bool(mosaic_bound),
            max_boxes=int(spec.yolo_max_boxes if max_boxes is None else max_boxes), flavor=self.flavor)
        self._explain_unused()
        self.labels: list[np.ndarray] = []
        self.problems: list[str] = []
        self._read_labels()
        self._broken: set[int] = set()  # unreadable images found by this process

    # ---- set-up ---------------------------------------------------------------------------------
    def _explain_unused(self) -> None:
        mode, o = self.mode, self.options
        if mode == "builtin" and self.mosaic:
            self.log("mosaic=1 needs AlexeyAB's OpenCV build (its darknet without OpenCV exits); trained without mosaic")
        if mode == "pjreddie":
            extra = [k for k, v in (("mosaic", self.mosaic), ("mixup", self.mixup), ("blur", o.blur),
                                    ("gaussian_noise", o.gaussian_noise), ("letter_box", o.letter_box)) if v]
            if extra:
                self.log(f"pjreddie's load_data_detection has no {', '.join(extra)}: not applied")
        if mode == "builtin" and (o.blur or o.gaussian_noise):
            self.log("blur and gaussian_noise need AlexeyAB's OpenCV build: not applied by 'builtin'")

    def _read_labels(self) -> None:
        missing_note = (" (pjreddie's darknet stops here); the image is used with no boxes"
                        if self.flavor == "pjreddie" else "; the image is used with no boxes, as AlexeyAB's darknet does")
        for image in self.images:
            path = label_path(image, self.flavor)
            boxes, problems = read_labels(path, self.classes)
            for p in problems:
                text = str(p)
                if p.line is None and "not found" in p.message:
                    text += missing_note
                elif p.line is not None:
                    text += " (line skipped)"
                self.problems.append(text)
                self.log(text)
            self.labels.append(boxes)

    @classmethod
    def from_model(cls, model: Darknet, data: DataConfig | str | os.PathLike, *, augment: str | None = "default",
                   seed: int = 0, log: Callable[[str], None] = print, length: int | None = None) -> DetectionDataset:
        """The training set ``train_detector`` would load for ``model`` and a ``.data`` file.

        The ``train=`` list; from ``[net]``: width, height, batch, hue, saturation, exposure, flip,
        blur, gaussian_noise, mixup/mosaic, letter_box, mosaic_bound, resize_step, max_batches;
        from the last ``[yolo]``/``[Gaussian_yolo]``/``[region]`` (AlexeyAB; pjreddie: the last
        head): classes, jitter, resize, random (multi-scale through :func:`train_size`), max.
        ``length`` defaults to ``max_batches·batch`` (the whole run) when ``max_batches`` is set.
        """
        cfg = data if isinstance(data, DataConfig) else DataConfig.read(data)
        train = cfg.path_of("train") or cfg.resolve("data/train.txt")
        images = read_image_list(train)
        flavor = model.flavor.name
        net = model.net
        heads = list(model.heads)
        if not heads:
            raise DataError(f"{getattr(model.cfg, 'path', 'the cfg')}: no detection head to train")
        head = heads[-1]
        if flavor == "alexeyab":
            chosen = [h for h in heads if h.section_type in ("yolo", "Gaussian_yolo", "region")]
            head = chosen[-1] if chosen else head
        o = head.options
        classes = int(getattr(o, "classes", 0) or getattr(head, "classes", 0) or cfg.classes)
        if cfg.classes and cfg.classes != classes:
            log(f"{cfg.path}: classes={cfg.classes} but the cfg's last head has classes={classes}; "
                f"Darknet trains with the head's {classes}")
        mixup_code = int(getattr(net, "mixup", 0) or 0)
        if mixup_code == 2:
            log("cutmix=1 is not supported for detection (Darknet: 'isn't supported for Detector'); ignored")
        random = float(getattr(o, "random", 0.0) or 0.0)
        size_for = None
        if random:
            size_for = functools.partial(
                train_size, net_w=net.width, net_h=net.height, random=random, resize_step=net.resize_step,
                max_batches=net.max_batches, flavor=flavor, seed=int(seed))
        if length is None and net.max_batches > 0:
            length = net.max_batches * images_per_update(net)
        return cls(
            images, width=net.width, height=net.height, classes=classes, flavor=flavor, augment=augment,
            jitter=float(getattr(o, "jitter", 0.0)), hue=net.hue, saturation=net.saturation, exposure=net.exposure,
            flip=net.flip, letter_box=net.letter_box, blur=net.blur, gaussian_noise=net.gaussian_noise,
            mosaic=mixup_code in (3, 4), mixup=mixup_code == 1, resize=float(getattr(o, "resize", 1.0)),
            max_boxes=int(o.max_boxes), seed=seed, size_for=size_for, batch=images_per_update(net), length=length, log=log,
            mosaic_bound=net.mosaic_bound)

    # ---- samples --------------------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        return len(self.images)

    def __len__(self) -> int:
        return self.length if self.length is not None else len(self.images)

    def size_of(self, k: int) -> tuple[int, int]:
        """``(w, h)`` of sample ``k``."""
        if self.size_for is None:
            return self.width, self.height
        w, h = self.size_for(k // self.batch)
        return int(w), int(h)

    def _decode(self, index: int) -> np.ndarray | None:
        flags = cv2.IMREAD_COLOR
        if self.mode != "alexeyab":  # stb_image (and the old IplImage loader) ignore EXIF orientation
            flags |= cv2.IMREAD_IGNORE_ORIENTATION
        try:
            img = cv2.imread(self.images[index], flags)
        except cv2.error:
            img = None
        if img is None or img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
            return None
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` and its boxes, or, if it does not decode, another drawn from ``rng``
        (the next one in order without ``rng``)."""
        n = len(self.images)
        for _ in range(4 * n + 64):
            if index not in self._broken:
                img = self._decode(index)
                if img is not None:
                    return img, self.labels[index]
                self._broken.add(index)
                self.log(f"{self.images[index]}: not a readable image; another image is drawn instead")
            if len(self._broken) >= n:
                break
            index = int(rng.integers(n)) if rng is not None else (index + 1) % n
        raise DataError(f"none of the {n} training images could be read (the first: {self.images[0]})")

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self._load(int(rng.integers(len(self.images))), rng)

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``k`` as numpy: float32 ``(3, H, W)`` in [0, 1] and truths ``(M, 5)`` float32."""
        rng = np.random.default_rng([self.seed, int(k)])
        opts = self.options.sized(*self.size_of(k))
        mode = self.mode
        if mode is None:
            img, boxes = self._load(int(k) % len(self.images), None)
            return aug.plain(img, boxes, opts)
        img, boxes = self._draw(rng)
        if mode == "pjreddie":
            return aug.augment_pjreddie(img, boxes, rng, opts)
        if mode == "builtin":
            out, truth = aug.augment_builtin(img, boxes, rng, opts)
            if self.mixup and rng.random() < 0.5:  # mixup = use_mixup ? random_gen() % 2 : 0
                out2, truth2 = aug.augment_builtin(*self._draw(rng), rng, opts)
                return aug.blend(out2, truth2, out, truth, opts.max_boxes)  # blend_truth(new, old)
            return out, truth
        # the OpenCV build: with p = 1/2 neither mosaic nor mixup
        use = 3 if self.mosaic else 1 if self.mixup else 0
        if use and rng.random() < 0.5:
            use = 0
        if use == 3:
            parts = [(img, boxes)] + [self._draw(rng) for _ in range(3)]
            out, truth = aug.mosaic_alexeyab(parts, rng, opts)
        else:
            out, truth = aug.augment_alexeyab(img, boxes, rng, opts)
            if use == 1:
                out2, truth2 = aug.augment_alexeyab(*self._draw(rng), rng, opts)
                out, truth = aug.blend(out, truth, out2, truth2, opts.max_boxes)  # blend_truth(old, new)
        return aug.to_chw(out), truth

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = operator.index(k)
        n = len(self)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"sample {k} of {n}")
        img, truth = self.sample(k)
        return torch.from_numpy(img), torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32).reshape(-1, 5))

    def __repr__(self) -> str:
        return (f"DetectionDataset({len(self.images)} images, {self.width}x{self.height}, classes={self.classes}, "
                f"flavor={self.flavor}, augment={self.mode!r}, len={len(self)})")


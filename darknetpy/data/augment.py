"""Darknet's training augmentation, per fork, as pure functions of (image, boxes, random generator, options).

Every function takes an ``(H, W, 3)`` uint8 RGB image, its boxes ``(N, 5)`` as ``class x y w h``
relative to the image, a :class:`numpy.random.Generator` and :class:`AugmentOptions`, and returns
the network input with the boxes that survive, relative to it: float32 ``(3, height, width)`` in
[0, 1] for the float pipelines (builtin, pjreddie, none), uint8 ``(height, width, 3)`` for the
OpenCV one (Darknet divides it by 255 last; :func:`to_chw`). All randomness comes from the
generator, so a result is a function of the generator's seed (darknet-reference.md §6).

- :func:`augment_builtin`: AlexeyAB's ``load_data_detection`` built *without* OpenCV
  (``src/data.c`` ``#else``): four crop offsets from ``jitter`` (and ``resize``), the
  ``letter_box`` adjustment, ``crop_image`` (pixels outside the image repeat the border pixel),
  ``resize_image`` (two-pass bilinear, ``(in-1)/(out-1)`` scaling), ``flip_image``,
  ``distort_image`` (float HSV); mixup is :func:`blend` of two such samples.
- :func:`augment_alexeyab`: the OpenCV build (``image_opencv.cpp:image_data_augmentation``): the
  crop rectangle filled with ``cv::mean`` of the image outside it, ``cv::resize`` INTER_LINEAR,
  ``cv::flip``, HSV on uint8, blur, Gaussian noise; :func:`mosaic_alexeyab` (four images and
  ``blend_truth_mosaic``) and :func:`blend` for mixup.
- :func:`augment_pjreddie`: pjreddie's ``load_data_detection``: the image stretched to a jittered
  aspect ratio on a 0.5 grey canvas (``place_image``), ``random_distort_image``, 50 % flip.
- :func:`plain`: no augmentation (``resize_image`` or ``letterbox_image`` as ``detector test``).

After the geometry, :func:`fill_truth` applies ``fill_truth_detection``: shuffle
(``randomize_boxes``), ``correct_boxes`` (shift, scale, mirror, clamp the edges to [0, 1]),
truncate to ``max_boxes`` *before* filtering, then drop small boxes (AlexeyAB: ``w < 1/net_w`` or
``h < 1/net_h``; pjreddie: ``w < .001`` or ``h < .001``, and as its dropped box leaves a zero in
the truth buffer, the loss stops there: the boxes after it are dropped as well).

Differences from the C code: the random numbers (NumPy, not C's ``rand()``); the JPEG decoder
(the caller's; OpenCV's libjpeg-turbo differs from stb_image by a few grey levels); ``distort_image``
uses OpenCV's float HSV conversion (Darknet's formulas up to ``FLT_EPSILON`` in a denominator: a few
1e-7 apart; a hue of exactly 1.0 is red here, magenta-ish in Darknet's ``hsv_to_rgb``) and is skipped
when it is the identity (Darknet's round trip changes values by ~1e-7).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

__all__ = [
    "LUT_255",
    "AugmentOptions",
    "augment_alexeyab",
    "augment_builtin",
    "augment_pjreddie",
    "blend",
    "crop_offsets",
    "crop_resize",
    "distort_float",
    "distort_uint8",
    "fill_truth",
    "mosaic_alexeyab",
    "plain",
    "rand_scale",
    "resize_darknet",
    "to_chw",
]

F32 = np.float32
# (float)byte/255. (stb and IplImage loaders) and byte/255.0f (mat_to_image): the same 256 floats.
LUT_255 = (np.arange(256, dtype=np.float64) / 255.0).astype(F32)


@dataclass(frozen=True)
class AugmentOptions:
    """What ``load_data_detection`` is given (``train_detector``'s ``load_args``).

    ``width``/``height`` are the network input of this batch (after multi-scale); ``flavor`` picks
    the truth filter of :func:`fill_truth`.
    """

    width: int
    height: int
    jitter: float = 0.0
    resize: float = 1.0
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    flip: bool = True
    letter_box: bool = False
    blur: int = 0
    gaussian_noise: int = 0
    mosaic_bound: bool = False
    max_boxes: int = 200
    flavor: str = "alexeyab"

    def sized(self, width: int, height: int) -> AugmentOptions:
        return replace(self, width=int(width), height=int(height))


# ---- random helpers ------------------------------------------------------------------------------
def rand_scale(rng: np.random.Generator, s: float) -> float:
    """``rand_scale``: ``U(1, s)``, inverted with probability 1/2 (``s < 1`` swaps the bounds)."""
    lo, hi = (1.0, float(s)) if s >= 1 else (float(s), 1.0)
    scale = lo + rng.random() * (hi - lo)
    return scale if rng.random() < 0.5 else 1.0 / scale


def _precalc(lo: float, hi: float, r: float) -> F32:
    """``rand_precalc_random``: ``r·(max−min) + min`` in float, bounds swapped when reversed."""
    lo, hi = (lo, hi) if hi >= lo else (hi, lo)
    return F32(r) * (F32(hi) - F32(lo)) + F32(lo)


def _trunc(v) -> int:
    """C's float → int conversion (towards zero)."""
    return int(np.trunc(v))


def _cdiv(a: int, b: int) -> int:
    """C's integer division (towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def crop_offsets(ow: int, oh: int, r: Sequence[float], opts: AugmentOptions) -> tuple[int, int, int, int]:
    """AlexeyAB's ``pleft, pright, ptop, pbot`` from the uniforms ``r = (r1, r2, r3, r4, resize_r1, resize_r2)``.

    ``dw = (int)(ow·jitter)``; each offset is ``(int)U(−dw, dw)``; ``resize`` adds
    ``U(min_rd, max_rd)`` (``resize < 1``: ``U(min_rd, 0)``) with ``min_rd = (int)(ow·(1−1/down)/2)``;
    ``letter_box`` moves the pair across the short side to pad the crop to the network's aspect
    ratio. Positive offsets crop, negative ones pad.
    """
    w, h = opts.width, opts.height
    jitter = F32(opts.jitter)
    dw, dh = _trunc(F32(ow) * jitter), _trunc(F32(oh) * jitter)
    resize = F32(opts.resize)
    down = resize if resize <= 1 else F32(1) / resize
    up = resize if resize >= 1 else F32(1) / resize
    min_rdw = _trunc(F32(ow) * (F32(1) - F32(1) / down) / F32(2))
    min_rdh = _trunc(F32(oh) * (F32(1) - F32(1) / down) / F32(2))
    max_rdw = _trunc(F32(ow) * (F32(1) - F32(1) / up) / F32(2))
    max_rdh = _trunc(F32(oh) * (F32(1) - F32(1) / up) / F32(2))
    r1, r2, r3, r4, rr1, rr2 = (float(v) for v in r[:6])
    pleft = _trunc(_precalc(-dw, dw, r1))
    pright = _trunc(_precalc(-dw, dw, r2))
    ptop = _trunc(_precalc(-dh, dh, r3))
    pbot = _trunc(_precalc(-dh, dh, r4))
    hi_w, hi_h = (0, 0) if resize < 1 else (max_rdw, max_rdh)
    pleft = _trunc(F32(pleft) + _precalc(min_rdw, hi_w, rr1))
    pright = _trunc(F32(pright) + _precalc(min_rdw, hi_w, rr2))
    ptop = _trunc(F32(ptop) + _precalc(min_rdh, hi_h, rr1))
    pbot = _trunc(F32(pbot) + _precalc(min_rdh, hi_h, rr2))
    if opts.letter_box:
        img_ar = F32(ow) / F32(oh)
        net_ar = F32(w) / F32(h)
        if img_ar / net_ar > 1:  # the crop must get taller
            delta = (F32(ow) / net_ar - F32(oh)) / F32(2)
            ptop, pbot = _trunc(F32(ptop) - delta), _trunc(F32(pbot) - delta)
        else:
            delta = (F32(oh) * net_ar - F32(ow)) / F32(2)
            pleft, pright = _trunc(F32(pleft) - delta), _trunc(F32(pright) - delta)
    return pleft, pright, ptop, pbot


# ---- truths ----------------------------------------------------------------------------------------
def fill_truth(
    boxes: np.ndarray,
    rng: np.random.Generator | None,
    dx: float,
    dy: float,
    sx: float,
    sy: float,
    flip: bool,
    opts: AugmentOptions,
) -> tuple[np.ndarray, int]:
    """``fill_truth_detection``: the boxes ``(M, 5)`` in the new image and AlexeyAB's ``min_w_h``.

    ``left' = left·sx − dx`` (and likewise for the other edges), mirrored when ``flip``, edges
    clamped to [0, 1]; ``rng=None`` keeps the order (no ``randomize_boxes``).
    """
    b = np.asarray(boxes, F32).reshape(-1, 5)
    if rng is not None and len(b) > 1:
        b = b[rng.permutation(len(b))]
    x, y, w, h = b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    two = F32(2)
    left = (x - w / two) * F32(sx) - F32(dx)
    right = (x + w / two) * F32(sx) - F32(dx)
    top = (y - h / two) * F32(sy) - F32(dy)
    bottom = (y + h / two) * F32(sy) - F32(dy)
    if flip:
        left, right = F32(1) - right, F32(1) - left
    left, right, top, bottom = (np.clip(v, 0, 1) for v in (left, right, top, bottom))
    out = np.empty_like(b)
    out[:, 0] = b[:, 0]
    out[:, 1] = (left + right) / two
    out[:, 2] = (top + bottom) / two
    out[:, 3] = np.clip(right - left, 0, 1)
    out[:, 4] = np.clip(bottom - top, 0, 1)
    out = out[: max(0, int(opts.max_boxes))]
    ow_, oh_ = out[:, 3], out[:, 4]
    if opts.flavor == "pjreddie":
        small = (ow_ < F32(0.001)) | (oh_ < F32(0.001))
        if small.any():
            out = out[: int(np.argmax(small))]  # the zero it leaves ends the list for the loss
        return out, 0
    lowest_w, lowest_h = F32(1) / F32(opts.width), F32(1) / F32(opts.height)
    keep = (ow_ >= lowest_w) & (oh_ >= lowest_h) & (out[:, 1] > 0) & (out[:, 1] <= 1) & (out[:, 2] > 0) & (out[:, 2] <= 1)
    out = out[keep]
    min_w_h = 0
    for bw, bh in zip(out[:, 3], out[:, 4]):  # int min_w_h as fill_truth_detection computes it
        ww, hh = _trunc(bw * opts.width), _trunc(bh * opts.height)
        if min_w_h == 0:
            min_w_h = ww
        min_w_h = min(min_w_h, ww, hh)
    return out, min_w_h


# ---- Darknet's float resize ------------------------------------------------------------------------
_local = threading.local()


def _scratch(tag: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread work buffer, reused between calls (fresh pages cost more than the arithmetic)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    buf = pool.get(tag)
    size = int(np.prod(shape))
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = pool[tag] = np.empty(max(size, 1), dtype)
    return buf[:size].reshape(shape)


def _bilinear(image: np.ndarray, ry0, ry1, wy0, wy1, cx0, cx1, wx0, wx1, out: np.ndarray | None = None) -> np.ndarray:
    """Separable bilinear sampling of a uint8 HWC image in float32, Darknet's way:
    ``part = wx0·p[cx0] + wx1·p[cx1]`` on each row read, then ``out = wy0·part[ry0] + wy1·part[ry1]``;
    pixels are ``byte/255``. Returns ``(len(ry0), len(cx0), 3)``."""
    oh, ow = image.shape[:2]
    h, w = len(ry0), len(cx0)
    used, inverse = np.unique(np.concatenate([ry0, ry1]), return_inverse=True)
    pos0, pos1 = inverse[:h], inverse[h:]
    n = len(used)
    flat = np.ascontiguousarray(image).reshape(oh, ow * 3)
    if used[-1] - used[0] == n - 1:  # consecutive rows: a view
        src = flat[used[0] : used[-1] + 1]
    else:
        src = np.take(flat, used, axis=0, out=_scratch("src", (n, ow * 3), np.uint8))
    rgb = np.arange(3)
    a8 = np.take(src, ((cx0 * 3)[:, None] + rgb).ravel(), axis=1, out=_scratch("a8", (n, w * 3), np.uint8))
    b8 = np.take(src, ((cx1 * 3)[:, None] + rgb).ravel(), axis=1, out=_scratch("b8", (n, w * 3), np.uint8))
    a = np.divide(a8, F32(255), out=_scratch("a", (n, w * 3), F32), dtype=F32)  # byte/255 exactly
    b = np.divide(b8, F32(255), out=_scratch("b", (n, w * 3), F32), dtype=F32)
    a *= np.repeat(np.asarray(wx0, F32), 3)
    b *= np.repeat(np.asarray(wx1, F32), 3)
    part = np.add(a, b, out=a)
    res = np.empty((h, w * 3), F32) if out is None else out.reshape(h, w * 3)
    np.take(part, pos0, axis=0, out=res)
    res *= np.asarray(wy0, F32)[:, None]
    second = np.take(part, pos1, axis=0, out=_scratch("second", (h, w * 3), F32))
    second *= np.asarray(wy1, F32)[:, None]
    res += second
    return res.reshape(h, w, 3)


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``resize_image`` along one axis: source index, next index, weight (float32 as in C)."""
    if n_out <= 1 or n_in <= 1:
        z = np.zeros(n_out, np.int64)
        return z, z, np.zeros(n_out, F32)
    scale = F32(n_in - 1) / F32(n_out - 1)
    s = np.arange(n_out, dtype=F32) * scale
    i = s.astype(np.int64)
    d = s - i.astype(F32)
    i = np.minimum(i, n_in - 1)
    return i, np.minimum(i + 1, n_in - 1), d


def crop_resize(image: np.ndarray, pleft: int, ptop: int, swidth: int, sheight: int, width: int, height: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """``resize_image(crop_image(im, pleft, ptop, swidth, sheight), width, height)`` of a uint8 image.

    ``crop_image`` reads ``im[clamp(j+ptop), clamp(i+pleft)]``: outside the image the border pixel
    repeats. ``resize_image``: horizontal pass ``(1−dx)·p[ix] + dx·p[ix+1]`` with
    ``sx = c·(sw−1)/(w−1)`` (the last column copies the last one), vertical pass
    ``(1−dy)·row[iy] + dy·row[iy+1]`` without the second term on the last row, all in float32
    from ``byte/255``: the same operations as the C code, so the same floats. Returns float32 HWC
    (into ``out`` when given).
    """
    oh, ow = image.shape[:2]
    sw, sh = max(1, int(swidth)), max(1, int(sheight))
    rows = np.clip(np.arange(sh) + int(ptop), 0, oh - 1)
    cols = np.clip(np.arange(sw) + int(pleft), 0, ow - 1)
    ci, ci1, cd = _axis(sw, width)
    ci[-1], ci1[-1], cd[-1] = sw - 1, sw - 1, 0  # c == w-1 (or a 1-pixel-wide crop): the last pixel
    ri, ri1, rd = _axis(sh, height)
    rd1 = rd.copy()
    rd1[-1] = 0  # r == h-1: Darknet skips the dy term (even when dy != 0 by rounding)
    return _bilinear(image, rows[ri], rows[ri1], F32(1) - rd, rd1, cols[ci], cols[ci1], F32(1) - cd, cd, out)


def resize_darknet(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``resize_image`` of a whole uint8 image (float32 HWC)."""
    oh, ow = image.shape[:2]
    return crop_resize(image, 0, 0, ow, oh, width, height)


# ---- colour --------------------------------------------------------------------------------------
def distort_float(image: np.ndarray, dhue: float, dsat: float, dexp: float, inplace: bool = False) -> np.ndarray:
    """``distort_image`` of a float32 RGB image in [0, 1]: HSV, hue + dhue wrapped, S·dsat, V·dexp,
    back to RGB and clamped to [0, 1]. The identity (0, 1, 1) returns the image as it is."""
    if dhue == 0 and dsat == 1 and dexp == 1:
        return image
    src = np.ascontiguousarray(image, dtype=F32)
    hsv = cv2.cvtColor(src, cv2.COLOR_RGB2HSV, dst=_scratch("hsv", src.shape, F32))  # H in degrees
    if dhue:
        h = hsv[..., 0]
        h += F32(dhue * 360.0)
        if dhue > 0:  # wrapped once, as Darknet wraps into [0, 1]
            h[h > 360] -= 360
        else:
            h[h < 0] += 360
    if dsat != 1:
        hsv[..., 1] *= F32(dsat)
    if dexp != 1:
        hsv[..., 2] *= F32(dexp)
    dst = src if inplace and src is image else np.empty_like(src)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=dst)
    return np.clip(dst, 0, 1, out=dst)


def distort_uint8(image: np.ndarray, dhue: float, dsat: float, dexp: float) -> np.ndarray:
    """AlexeyAB's OpenCV HSV step on uint8 RGB: ``cvtColor`` RGB→HSV (H in 0..179),
    ``S·dsat`` and ``V·dexp`` rounded and saturated (``Mat *= double``), ``H + 179·dhue`` with the
    shift rounded first and the sum saturated to 0..255 (``Mat += Scalar``; values ≥ 180 wrap in
    HSV→RGB), ``cvtColor`` back. The identity leaves the image untouched, as the C code does."""
    if dsat == 1 and dexp == 1 and dhue == 0:
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    v = np.arange(256, dtype=F32)
    lut = np.empty((256, 1, 3), np.uint8)
    lut[:, 0, 0] = np.clip(v + np.rint(F32(179) * F32(dhue)), 0, 255)
    lut[:, 0, 1] = np.clip(np.rint(v * F32(dsat)), 0, 255)
    lut[:, 0, 2] = np.clip(np.rint(v * F32(dexp)), 0, 255)
    return cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2RGB)


def _colour_draws(rng: np.random.Generator, opts: AugmentOptions) -> tuple[float, float, float]:
    dhue = -opts.hue + rng.random() * (2 * opts.hue) if opts.hue >= 0 else opts.hue + rng.random() * (-2 * opts.hue)
    return float(dhue), rand_scale(rng, opts.saturation), rand_scale(rng, opts.exposure)


# ---- AlexeyAB without OpenCV -----------------------------------------------------------------------
def augment_builtin(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, opts: AugmentOptions) -> tuple[np.ndarray, np.ndarray]:
    """One image of AlexeyAB's non-OpenCV ``load_data_detection``: float32 CHW and its truths."""
    oh, ow = image.shape[:2]
    r = rng.random(6)
    flip = bool(opts.flip) and rng.random() < 0.5
    dhue, dsat, dexp = _colour_draws(rng, opts)
    pleft, pright, ptop, pbot = crop_offsets(ow, oh, r, opts)
    swidth, sheight = max(1, ow - pleft - pright), max(1, oh - ptop - pbot)  # (jitter >= .5 could empty it)
    sx, sy = F32(swidth) / F32(ow), F32(sheight) / F32(oh)
    dx, dy = (F32(pleft) / F32(ow)) / sx, (F32(ptop) / F32(oh)) / sy
    sized = crop_resize(image, pleft, ptop, swidth, sheight, opts.width, opts.height,
                        out=_scratch("sized", (opts.height, opts.width, 3), F32))
    sized = distort_float(sized, dhue, dsat, dexp, inplace=True)  # per pixel: the same before or after the flip
    truth, _ = fill_truth(boxes, rng, dx, dy, F32(1) / sx, F32(1) / sy, flip, opts)
    return _chw(sized, flip), truth


# ---- AlexeyAB with OpenCV --------------------------------------------------------------------------
@dataclass
class _Part:
    image: np.ndarray  # uint8 HWC, the network size
    truth: np.ndarray
    pleft: int
    pright: int
    ptop: int
    pbot: int
    flip: bool
    ow: int
    oh: int


def _alexeyab_part(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, opts: AugmentOptions, corner: int | None = None) -> _Part:
    oh, ow = image.shape[:2]
    w, h = opts.width, opts.height
    r = rng.random(6)
    flip = bool(opts.flip) and rng.random() < 0.5
    dhue, dsat, dexp = _colour_draws(rng, opts)
    blur = 0
    if opts.blur:
        kind = int(rng.integers(3))  # 0: none, 1: the background, 2: the whole image
        blur = 0 if kind == 0 else 1 if kind == 1 else int(opts.blur)
    noise = int(opts.gaussian_noise) if opts.gaussian_noise and rng.random() < 0.5 else 0
    to_corner = rng.random() < 0.5
    pleft, pright, ptop, pbot = crop_offsets(ow, oh, r, opts)
    if corner is not None and to_corner:  # mosaic: move every 2nd image to the corner
        # the crop moves to the image's edge that ends up at the mosaic's outer side
        if (corner in (0, 2)) != flip:
            pright, pleft = pright + pleft, 0
        else:
            pleft, pright = pleft + pright, 0
        if corner in (0, 1):
            pbot, ptop = pbot + ptop, 0
        else:
            ptop, pbot = ptop + pbot, 0
    swidth, sheight = max(1, ow - pleft - pright), max(1, oh - ptop - pbot)
    sx, sy = F32(swidth) / F32(ow), F32(sheight) / F32(oh)
    dx, dy = (F32(pleft) / F32(ow)) / sx, (F32(ptop) / F32(oh)) / sy
    truth, min_w_h = fill_truth(boxes, rng, dx, dy, F32(1) / sx, F32(1) / sy, flip, opts)
    if blur > 1 and min_w_h // 8 < blur:
        blur = min_w_h // 8  # an object too small for this blur: less (0 or 1 included)
    # crop: the rectangle, filled with the image mean where it leaves the image
    if pleft == 0 and ptop == 0 and swidth == ow and sheight == oh:
        cropped = image
    else:
        x0, y0 = max(0, pleft), max(0, ptop)
        x1, y1 = min(ow, pleft + swidth), min(oh, ptop + sheight)
        mean = [int(np.rint(v)) for v in cv2.mean(image)[:3]]
        if x1 > x0 and y1 > y0:
            cropped = cv2.copyMakeBorder(
                image[y0:y1, x0:x1], y0 - ptop, ptop + sheight - y1, x0 - pleft, pleft + swidth - x1,
                cv2.BORDER_CONSTANT, value=mean)
        else:
            cropped = np.empty((sheight, swidth, 3), np.uint8)
            cropped[:] = mean
    sized = cv2.resize(cropped, (w, h), interpolation=cv2.INTER_LINEAR)
    if flip:
        sized = cv2.flip(sized, 1)
    sized = distort_uint8(sized, dhue, dsat, dexp)
    if blur:
        if blur == 1:
            dst = cv2.GaussianBlur(sized, (17, 17), 0)
            for _, bx, by, bw, bh in truth:  # the objects stay sharp
                left, top = _trunc((float(bx) - float(bw) / 2) * w), _trunc((float(by) - float(bh) / 2) * h)
                x0, y0 = max(left, 0), max(top, 0)
                x1, y1 = min(left + _trunc(float(bw) * w), w), min(top + _trunc(float(bh) * h), h)
                if x1 > x0 and y1 > y0:
                    dst[y0:y1, x0:x1] = sized[y0:y1, x0:x1]
        else:
            k = (blur // 2) * 2 + 1
            dst = cv2.GaussianBlur(sized, (k, k), 0)
        sized = dst
    if noise:
        sigma = min(max(noise, 0), 127)
        # cv::randn into a uint8 Mat: rounded and saturated, so the negative half becomes 0
        n = np.clip(np.rint(rng.standard_normal(sized.shape, dtype=F32) * F32(sigma)), 0, 255).astype(np.uint8)
        sized = cv2.add(sized, n)
    return _Part(sized, truth, pleft, pright, ptop, pbot, flip, ow, oh)


def augment_alexeyab(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, opts: AugmentOptions) -> tuple[np.ndarray, np.ndarray]:
    """One image of AlexeyAB's OpenCV ``load_data_detection`` + ``image_data_augmentation``: uint8 HWC
    (Darknet divides it by 255 next) and its truths."""
    p = _alexeyab_part(image, boxes, rng, opts)
    return p.image, p.truth


def _blend_truth_mosaic(acc: np.ndarray, truth: np.ndarray, opts: AugmentOptions, cut_x: int, cut_y: int, i: int,
                        left_shift: int, right_shift: int, top_shift: int, bot_shift: int) -> np.ndarray:
    """``blend_truth_mosaic``: shift one quadrant's truths, fix them to the image (or the quadrant
    with ``mosaic_bound``), keep those inside, up to ``max_boxes`` in all."""
    w, h = opts.width, opts.height
    room = max(0, opts.max_boxes - len(acc))
    t = truth[:room].astype(F32)
    if not len(t):
        return acc
    xb, yb, wb, hb = (t[:, j].copy() for j in range(1, 5))
    fw, fh = F32(w), F32(h)
    if i in (0, 2):
        xb -= F32(w - cut_x - right_shift) / fw
    else:
        xb += F32(cut_x - left_shift) / fw
    if i in (0, 1):
        yb -= F32(h - cut_y - bot_shift) / fh
    else:
        yb += F32(cut_y - top_shift) / fh
    two = F32(2)
    left = np.trunc((xb - wb / two) * fw)
    right = np.trunc((xb + wb / two) * fw)
    top = np.trunc((yb - hb / two) * fh)
    bot = np.trunc((yb + hb / two) * fh)
    if opts.mosaic_bound:
        lb, rb = (0, cut_x) if i in (0, 2) else (cut_x, w)
        tb, bb = (0, cut_y) if i in (0, 1) else (cut_y, h)
        left, right = np.maximum(left, lb), np.minimum(right, rb)
        top, bot = np.maximum(top, tb), np.minimum(bot, bb)
        xb, wb = ((right + left) / two / fw).astype(F32), ((right - left) / fw).astype(F32)
        yb, hb = ((bot + top) / two / fh).astype(F32), ((bot - top) / fh).astype(F32)
    else:
        d = np.where(left < 0, (left / fw).astype(F32), F32(0))
        xb, wb = xb - d / two, wb + d
        d = np.where(right > w, ((right - w) / fw).astype(F32), F32(0))
        xb, wb = xb - d / two, wb - d
        d = np.where(top < 0, (top / fh).astype(F32), F32(0))
        yb, hb = yb - d / two, hb + d
        d = np.where(bot > h, ((bot - h) / fh).astype(F32), F32(0))
        yb, hb = yb - d / two, hb - d
        left, right = np.trunc((xb - wb / two) * fw), np.trunc((xb + wb / two) * fw)
        top, bot = np.trunc((yb - hb / two) * fh), np.trunc((yb + hb / two) * fh)
    keep = ((left >= 0) & (right <= w) & (top >= 0) & (bot <= h) & (wb > 0) & (wb < 1) & (hb > 0) & (hb < 1)
            & (xb > 0) & (xb < 1) & (yb > 0) & (yb < 1) & (wb > F32(1) / fw) & (hb > F32(1) / fh))
    new = np.stack([t[:, 0], xb, yb, wb, hb], axis=1)[keep].astype(F32)
    return np.concatenate([acc, new]) if len(acc) else new


def mosaic_alexeyab(parts: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, opts: AugmentOptions) -> tuple[np.ndarray, np.ndarray]:
    """AlexeyAB's mosaic: four images, each augmented on its own, pasted around a cut point
    ``(cut_x, cut_y)`` drawn in [0.2, 0.8] of the size; their truths shifted with the pixels
    (``blend_truth_mosaic``). uint8 HWC."""
    if len(parts) != 4:
        raise ValueError("a mosaic takes 4 images")
    w, h = opts.width, opts.height
    cut_x = int(rng.integers(_trunc(F32(w) * F32(0.2)), _trunc(F32(w) * (F32(1) - F32(0.2))) + 1))
    cut_y = int(rng.integers(_trunc(F32(h) * F32(0.2)), _trunc(F32(h) * (F32(1) - F32(0.2))) + 1))
    out = np.zeros((h, w, 3), np.uint8)
    acc = np.zeros((0, 5), F32)
    for i, (image, boxes) in enumerate(parts):
        p = _alexeyab_part(image, boxes, rng, opts, corner=i)
        pleft, pright = (p.pright, p.pleft) if p.flip else (p.pleft, p.pright)
        left_shift = min(cut_x, max(0, _cdiv(-pleft * w, p.ow)))
        top_shift = min(cut_y, max(0, _cdiv(-p.ptop * h, p.oh)))
        right_shift = min(w - cut_x, max(0, _cdiv(-pright * w, p.ow)))
        bot_shift = min(h - cut_y, max(0, _cdiv(-p.pbot * h, p.oh)))
        ai = p.image
        if i == 0:
            y0, x0 = h - cut_y - bot_shift, w - cut_x - right_shift
            out[:cut_y, :cut_x] = ai[y0 : y0 + cut_y, x0 : x0 + cut_x]
        elif i == 1:
            y0 = h - cut_y - bot_shift
            out[:cut_y, cut_x:] = ai[y0 : y0 + cut_y, left_shift : left_shift + w - cut_x]
        elif i == 2:
            x0 = w - cut_x - right_shift
            out[cut_y:, :cut_x] = ai[top_shift : top_shift + h - cut_y, x0 : x0 + cut_x]
        else:
            out[cut_y:, cut_x:] = ai[top_shift : top_shift + h - cut_y, left_shift : left_shift + w - cut_x]
        acc = _blend_truth_mosaic(acc, p.truth, opts, cut_x, cut_y, i, left_shift, right_shift, top_shift, bot_shift)
    return out, acc


def blend(first: np.ndarray, first_truth: np.ndarray, second: np.ndarray, second_truth: np.ndarray, max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixup: ``0.5·a + 0.5·b`` (float32, the layout of the inputs) and the truths of ``first``
    followed by those of ``second`` up to ``max_boxes`` (``blend_truth``). uint8 inputs are divided
    by 255 first.
    The OpenCV build passes (old, new), the builtin one (new, old)."""
    a = LUT_255[first] if first.dtype == np.uint8 else first
    b = LUT_255[second] if second.dtype == np.uint8 else second
    img = a * F32(0.5) + b * F32(0.5)
    truth = np.concatenate([first_truth, second_truth[: max(0, max_boxes - len(first_truth))]]).astype(F32)
    return img, truth


# ---- pjreddie --------------------------------------------------------------------------------------
def _place_image(image: np.ndarray, nw: int, nh: int, dx: int, dy: int, canvas: np.ndarray) -> None:
    """``place_image``: ``canvas[y+dy, x+dx] = bilinear(im, x/nw·ow, y/nh·oh)`` for the pixels that
    land on the canvas; ``bilinear_interpolate`` reads 0 outside the image (the right and bottom
    edges blend with black). Computed separably (rows, then columns): the C code sums the four
    weighted neighbours at once, a rounding apart (< 1e-6)."""
    oh, ow = image.shape[:2]
    ch, cw = canvas.shape[:2]
    if nw <= 0 or nh <= 0:
        return
    xs = np.arange(max(0, -dx), min(nw, cw - dx))
    ys = np.arange(max(0, -dy), min(nh, ch - dy))
    if not len(xs) or not len(ys):
        return
    rx = (xs.astype(F32) / F32(nw)) * F32(ow)
    ry = (ys.astype(F32) / F32(nh)) * F32(oh)
    ix, iy = np.floor(rx).astype(np.int64), np.floor(ry).astype(np.int64)
    fx, fy = rx - ix.astype(F32), ry - iy.astype(F32)
    # the neighbour past the last column / row reads 0: its weight is 0
    wx1 = np.where(ix + 1 < ow, fx, F32(0)).astype(F32)
    wy1 = np.where(iy + 1 < oh, fy, F32(0)).astype(F32)
    val = _bilinear(image, iy, np.minimum(iy + 1, oh - 1), F32(1) - fy, wy1,
                    ix, np.minimum(ix + 1, ow - 1), F32(1) - fx, wx1)
    canvas[ys[0] + dy : ys[-1] + dy + 1, xs[0] + dx : xs[-1] + dx + 1] = val


def augment_pjreddie(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, opts: AugmentOptions) -> tuple[np.ndarray, np.ndarray]:
    """One image of pjreddie's ``load_data_detection``: float32 CHW and its truths.

    ``new_ar = (ow + U(−j·ow, j·ow)) / (oh + U(−j·oh, j·oh))``; the long side fills the network
    (``nw = w`` or ``nh = h``), the other follows the ratio; placed at ``U(0, w−nw), U(0, h−nh)`` on
    0.5 grey; then ``random_distort_image`` and a 50 % flip.
    """
    oh, ow = image.shape[:2]
    w, h = opts.width, opts.height
    jitter = F32(opts.jitter)
    dw, dh = jitter * F32(ow), jitter * F32(oh)
    u = rng.random(4)
    new_ar = (F32(ow) + (F32(u[0]) * (dw + dw) - dw)) / (F32(oh) + (F32(u[1]) * (dh + dh) - dh))
    if new_ar < 1:
        nh = F32(h)
        nw = nh * new_ar
    else:
        nw = F32(w)
        nh = nw / new_ar
    lo_x, hi_x = sorted((F32(0), F32(w) - nw))
    lo_y, hi_y = sorted((F32(0), F32(h) - nh))
    dx = F32(u[2]) * (hi_x - lo_x) + lo_x
    dy = F32(u[3]) * (hi_y - lo_y) + lo_y
    canvas = _scratch("canvas", (h, w, 3), F32)
    canvas.fill(0.5)
    _place_image(image, _trunc(nw), _trunc(nh), _trunc(dx), _trunc(dy), canvas)
    dhue, dsat, dexp = _colour_draws(rng, opts)
    canvas = distort_float(canvas, dhue, dsat, dexp, inplace=True)
    flip = bool(opts.flip) and rng.random() < 0.5
    truth, _ = fill_truth(boxes, rng, -dx / F32(w), -dy / F32(h), nw / F32(w), nh / F32(h), flip, opts)
    return _chw(canvas, flip), truth


# ---- none ------------------------------------------------------------------------------------------
def plain(image: np.ndarray, boxes: np.ndarray, opts: AugmentOptions) -> tuple[np.ndarray, np.ndarray]:
    """No augmentation, as ``detector test`` prepares an image: ``resize_image`` to the network, or
    ``letterbox_image`` (0.5 padding, centred) with ``opts.letter_box``. Float32 CHW; the boxes keep
    their order, follow the letterbox, and pass :func:`fill_truth`'s filter."""
    oh, ow = image.shape[:2]
    w, h = opts.width, opts.height
    if not opts.letter_box:
        sized = crop_resize(image, 0, 0, ow, oh, w, h, out=_scratch("sized", (h, w, 3), F32))
        return _chw(sized, False), fill_truth(boxes, None, 0, 0, 1, 1, False, opts)[0]
    if F32(w) / F32(ow) < F32(h) / F32(oh):
        new_w, new_h = w, (oh * w) // ow
    else:
        new_w, new_h = (ow * h) // oh, h
    canvas = np.full((3, h, w), 0.5, F32)
    ox, oy = (w - new_w) // 2, (h - new_h) // 2
    canvas[:, oy : oy + new_h, ox : ox + new_w] = resize_darknet(image, new_w, new_h).transpose(2, 0, 1)
    sx, sy = F32(new_w) / F32(w), F32(new_h) / F32(h)
    truth = fill_truth(boxes, None, -F32(ox) / F32(w), -F32(oy) / F32(h), sx, sy, False, opts)[0]
    return canvas, truth


def _chw(image: np.ndarray, flip: bool) -> np.ndarray:
    """A new float32 CHW copy of an HWC image, mirrored left-right when ``flip``."""
    h, w = image.shape[:2]
    out = np.empty((3, h, w), F32)
    src = image.transpose(2, 0, 1)
    np.copyto(out, src[:, :, ::-1] if flip else src)
    return out


def to_chw(image: np.ndarray) -> np.ndarray:
    """HWC (uint8 or float32) → contiguous float32 CHW in [0, 1] (uint8 as ``byte/255``)."""
    if image.dtype == np.uint8:
        h, w = image.shape[:2]
        out = np.empty((3, h, w), F32)
        return np.divide(image.transpose(2, 0, 1), F32(255), out=out, dtype=F32)  # byte/255.0f
    return _chw(image, False)

"""Augmentation: Darknet's resize and crop, HSV, boxes that follow the pixels, truth rules, mosaic."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from darknetpy.data import augment as A
from darknetpy.image import letterbox_image, resize_image, to_tensor

pytestmark = pytest.mark.unit

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def synth(cls: int = 0, size=(640, 480), rect=(200, 150, 360, 330), background=128):
    """A grey image with one filled rectangle of the class colour, and its box."""
    w, h = size
    img = np.full((h, w, 3), background, np.uint8)
    x0, y0, x1, y1 = rect
    img[y0:y1, x0:x1] = COLOURS[cls]
    box = np.array([[cls, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]], np.float32)
    return img, box


def hwc(image: np.ndarray) -> np.ndarray:
    """float HWC in [0, 1] of a uint8 HWC or float CHW output."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    return image.transpose(1, 2, 0) if image.shape[0] == 3 else image


def colour_mask(image: np.ndarray, cls: int) -> np.ndarray:
    return np.abs(hwc(image) - np.array(COLOURS[cls]) / 255.0).max(axis=2) < 0.2


def box_deviation(image: np.ndarray, truth: np.ndarray) -> float:
    """Largest distance (pixels) between a box's edges and the extent of its colour."""
    f = hwc(image)
    H, W = f.shape[:2]
    worst = 0.0
    for cls, x, y, w, h in truth:
        ys, xs = np.nonzero(colour_mask(image, int(cls)))
        assert len(xs), "the box's object is not in the image"
        edges = ((x - w / 2) * W, (x + w / 2) * W, (y - h / 2) * H, (y + h / 2) * H)
        found = (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1)
        worst = max(worst, max(abs(a - b) for a, b in zip(edges, found)))
    return worst


# ---- resize and crop -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(320, 320), (416, 288), (640, 480), (700, 500), (1, 7)])
def test_resize_is_darknets_resize_image(size):
    img = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ours = A.resize_darknet(img, *size)
    ref = resize_image(to_tensor(img), *size).permute(1, 2, 0).numpy()
    assert ours.shape == ref.shape and np.array_equal(ours, ref)


def test_builtin_crop_clamps_to_the_border():
    """crop_image: pixels outside the image repeat the nearest border pixel (not 0, not the mean)."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    # a crop 10 px left/above of the image and 5 px past its right/bottom edges, at its own size
    out = A.crop_resize(img, -10, -10, 65, 55, 65, 55)
    f = img.astype(np.float64) / 255
    assert np.allclose(out[10:50, 10:60], f, atol=1e-7)
    assert np.allclose(out[10:50, :10], f[:, :1], atol=1e-7)  # left: column 0 repeated
    assert np.allclose(out[10:50, 60:], f[:, -1:], atol=1e-7)  # right: the last column
    assert np.allclose(out[:10, 10:60], f[:1], atol=1e-7)  # top: row 0
    assert np.allclose(out[:10, :10], f[0, 0], atol=1e-7)  # corner: the corner pixel
    # a crop inside the image is the slice
    assert np.allclose(A.crop_resize(img, 5, 3, 20, 30, 20, 30), f[3:33, 5:25], atol=1e-7)


def test_alexeyab_crop_fills_with_the_image_mean():
    img, box = synth(rect=(300, 200, 340, 240))
    opts = A.AugmentOptions(320, 240, jitter=0.3, flip=False)
    mean = np.rint(np.array(cv2.mean(img)[:3])).astype(np.uint8)
    for seed in range(50):
        r = np.random.default_rng(seed).random(6)  # the part's first draws: the crop
        pleft, pright, _ptop, _pbot = A.crop_offsets(640, 480, r, opts)
        if pleft < -20:
            break
    else:  # pragma: no cover
        pytest.fail("no seed pads the left side")
    out, _ = A.augment_alexeyab(img, box, np.random.default_rng(seed), opts)
    pad = int(-pleft * 320 / (640 - pleft - pright)) - 2  # padded columns after the resize
    assert pad > 2
    assert (np.abs(out[5:-5, : pad].astype(int) - mean.astype(int)) <= 1).all()


def test_letterbox_plain_matches_detect():
    img = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    _, box = synth()
    out, truth = A.plain(img, box, A.AugmentOptions(320, 320, letter_box=True))
    ref = letterbox_image(to_tensor(img), 320, 320).numpy()
    assert np.array_equal(out, ref)
    # 640x480 into 320x320: 320x240 at y 40
    _, x, y, w, h = truth[0]
    assert np.allclose([x, y, w, h], [box[0, 1], (box[0, 2] * 240 + 40) / 320, box[0, 3], box[0, 4] * 240 / 320], atol=1e-6)


# ---- colour ----------------------------------------------------------------------------------------
def _darknet_distort(img: np.ndarray, dhue: float, dsat: float, dexp: float) -> np.ndarray:
    """image.c rgb_to_hsv / distort_image / hsv_to_rgb, vectorised in float32."""
    r, g, b = (img[..., i].astype(np.float32) for i in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(mx == 0, 0, delta / mx)
        h = np.where(r == mx, (g - b) / delta, np.where(g == mx, 2 + (b - r) / delta, 4 + (r - g) / delta))
    h = np.where(h < 0, h + 6, h) / 6
    h = np.nan_to_num(np.where(mx == 0, 0, h))
    s, v = s * np.float32(dsat), mx * np.float32(dexp)
    h = h + np.float32(dhue)
    h = np.where(h > 1, h - 1, h)
    h = np.where(h < 0, h + 1, h)
    h6 = 6 * h
    index = np.floor(h6)
    f = h6 - index
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros_like(img, dtype=np.float32)
    for ch in range(3):
        val = choices[5][ch]
        for i in range(4, -1, -1):
            val = np.where(index == i, choices[i][ch], val)
        out[..., ch] = np.where(s == 0, v, val)
    return np.clip(out, 0, 1)


@pytest.mark.parametrize("params", [(0.1, 1.5, 1.5), (-0.1, 1 / 1.5, 1.2), (0.45, 1.0, 0.7), (-0.3, 2.0, 1.0)])
def test_float_hsv_is_darknets_distort_image(params):
    img = np.random.default_rng(4).random((64, 64, 3), dtype=np.float32)
    img[:8] = img[:8, :, :1]  # grey pixels (no hue)
    img[8:10] = 0
    ours = A.distort_float(img, *params)
    assert np.abs(ours - _darknet_distort(img, *params)).max() < 2e-5


def test_hsv_distort_is_the_identity_with_hue_0_sat_1_exp_1():
    img = np.random.default_rng(5).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    f = img.astype(np.float32) / 255
    assert A.distort_float(f, 0.0, 1.0, 1.0) is f
    assert A.distort_uint8(img, 0.0, 1.0, 1.0) is img
    assert np.abs(A.distort_float(f, 0.0, 1.0001, 1.0) - f).max() < 1e-3  # and near it, continuous
    # whole pipelines without jitter, flip or colour: the plain resize
    _, box = synth()
    img = np.random.default_rng(6).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    opts = A.AugmentOptions(320, 256, flip=False)
    out, _ = A.augment_builtin(img, box, np.random.default_rng(0), opts)
    assert np.array_equal(out, A.plain(img, box, opts)[0])
    out, _ = A.augment_alexeyab(img, box, np.random.default_rng(0), opts)
    assert np.array_equal(out, cv2.resize(img, (320, 256), interpolation=cv2.INTER_LINEAR))


def test_uint8_hue_shift_rounds_then_saturates():
    """``hsv[0] += 179·dhue``: the shift rounded to an integer, the sum saturated to 0..255."""
    img = np.random.default_rng(7).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for dhue in (0.1, -0.1, 0.5, -0.5):
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        h, s, v = cv2.split(hsv)
        expected = cv2.cvtColor(cv2.merge([cv2.add(h, float(np.float32(179) * np.float32(dhue))), s, v]), cv2.COLOR_HSV2RGB)
        assert np.array_equal(A.distort_uint8(img, dhue, 1.0, 1.0), expected)


def test_rand_scale_range():
    rng = np.random.default_rng(8)
    v = np.array([A.rand_scale(rng, 1.5) for _ in range(2000)])
    assert v.min() >= 1 / 1.5 - 1e-9 and v.max() <= 1.5 + 1e-9
    assert 0.4 < (v >= 1).mean() < 0.6
    assert all(A.rand_scale(rng, 1.0) == 1.0 for _ in range(10))


# ---- boxes follow the pixels -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["builtin", "alexeyab", "pjreddie"])
def test_boxes_follow_crop_and_flip(mode):
    fn = {"builtin": A.augment_builtin, "alexeyab": A.augment_alexeyab, "pjreddie": A.augment_pjreddie}[mode]
    flavor = "pjreddie" if mode == "pjreddie" else "alexeyab"
    flips = 0
    for seed in range(60):
        # off the border: builtin's crop repeats border pixels, which no box covers
        rect = [(200, 150, 360, 330), (4, 4, 120, 90), (560, 400, 636, 476), (250, 10, 400, 470)][seed % 4]
        img, box = synth(rect=rect)
        opts = A.AugmentOptions(320, 256, jitter=0.3, flip=True, flavor=flavor)
        out, truth = fn(img, box, np.random.default_rng(seed), opts)
        if not len(truth):  # cropped away entirely
            assert not colour_mask(out, 0).sum() > 20
            continue
        assert box_deviation(out, truth) < 2.5, seed
        flips += int((truth[0, 1] - 0.5) * (box[0, 1] - 0.5) < 0)
    assert flips > 5  # some of them were flipped


def test_letter_box_keeps_boxes_on_their_object():
    for seed in range(20):
        img, box = synth(size=(640, 360), rect=(100, 50, 300, 200))
        for fn in (A.augment_builtin, A.augment_alexeyab):
            out, truth = fn(img, box, np.random.default_rng(seed), A.AugmentOptions(320, 320, jitter=0.2, letter_box=True))
            assert len(truth) == 1 and box_deviation(out, truth) < 2.5


def test_resize_option_widens_the_crop_range():
    opts = A.AugmentOptions(320, 320, jitter=0.0, resize=1.5)
    rng = np.random.default_rng(9)
    offsets = np.array([A.crop_offsets(600, 400, rng.random(6), opts) for _ in range(500)])
    # resize=1.5: each side moves by U(ow·(1−1.5)/2, ow·(1−1/1.5)/2) = U(−150, 100) for ow = 600
    assert offsets[:, 0].min() < -120 and offsets[:, 0].max() > 80
    assert offsets[:, 0].min() >= -150 and offsets[:, 0].max() <= 100


def _mosaic(seed: int, bound: bool):
    rects = [(40, 40, 200, 160), (400, 60, 600, 200), (60, 300, 240, 440), (380, 280, 560, 420)]
    parts = [synth(c, rect=rects[(c + seed) % 4]) for c in range(4)]
    opts = A.AugmentOptions(320, 320, jitter=0.3, flip=True, mosaic_bound=bound)
    return A.mosaic_alexeyab(parts, np.random.default_rng(seed), opts)


@pytest.mark.parametrize("bound", [True, False])
def test_mosaic_boxes_cover_their_objects(bound):
    for seed in range(16):
        out, truth = _mosaic(seed, bound)
        assert out.shape == (320, 320, 3) and out.dtype == np.uint8
        for c in range(4):
            mask = colour_mask(out, c)
            cover = np.zeros_like(mask)
            for cls, x, y, w, h in truth[truth[:, 0] == c]:
                x0, x1 = int(np.floor((x - w / 2) * 320 - 2)), int(np.ceil((x + w / 2) * 320 + 2))
                y0, y1 = int(np.floor((y - h / 2) * 320 - 2)), int(np.ceil((y + h / 2) * 320 + 2))
                cover[max(0, y0) : y1, max(0, x0) : x1] = True
                if bound:  # within its quadrant, the box is its object's extent
                    ys, xs = np.nonzero(mask[max(0, y0) : y1, max(0, x0) : x1])
                    assert len(xs)
                    xs, ys = xs + max(0, x0), ys + max(0, y0)
                    edges = ((x - w / 2) * 320, (x + w / 2) * 320, (y - h / 2) * 320, (y + h / 2) * 320)
                    found = (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1)
                    assert max(abs(a - b) for a, b in zip(edges, found)) < 1.5
            left = mask & ~cover
            if left.any():  # only slivers under 1 px (Darknet drops boxes smaller than a pixel)
                ys, xs = np.nonzero(left)
                assert min(xs.max() - xs.min(), ys.max() - ys.min()) <= 1, (seed, c)


def test_mosaic_keeps_at_most_max_boxes():
    rng = np.random.default_rng(10)
    img = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    boxes = np.array([[0, 0.1 + 0.8 * rng.random(), 0.1 + 0.8 * rng.random(), 0.1, 0.1] for _ in range(40)], np.float32)
    _out, truth = A.mosaic_alexeyab([(img, boxes)] * 4, np.random.default_rng(0), A.AugmentOptions(160, 160, max_boxes=25))
    assert len(truth) <= 25


# ---- truth rules -----------------------------------------------------------------------------------
def test_fill_truth_truncates_before_filtering():
    tiny = [1, 0.5, 0.5, 0.0005, 0.0005]
    big = [0, 0.5, 0.5, 0.2, 0.2]
    boxes = np.array([tiny, big, big, big, big], np.float32)
    ab = A.AugmentOptions(320, 320, max_boxes=3)
    out, _ = A.fill_truth(boxes, None, 0, 0, 1, 1, False, ab)
    assert len(out) == 2  # the first 3, then the tiny one dropped (not 3 big ones)
    # pjreddie: a dropped box leaves a zero in the truth buffer, which ends the list for the loss
    pj = A.AugmentOptions(320, 320, max_boxes=90, flavor="pjreddie")
    out, _ = A.fill_truth(np.array([big, tiny, big], np.float32), None, 0, 0, 1, 1, False, pj)
    assert len(out) == 1
    # AlexeyAB's threshold is one network pixel, pjreddie's .001
    px = [0, 0.5, 0.5, 0.9 / 320, 0.2]
    assert len(A.fill_truth(np.array([px], np.float32), None, 0, 0, 1, 1, False, ab)[0]) == 0
    assert len(A.fill_truth(np.array([px], np.float32), None, 0, 0, 1, 1, False, pj)[0]) == 1


def test_fill_truth_moves_flips_and_clips():
    boxes = np.array([[2, 0.25, 0.5, 0.2, 0.4]], np.float32)
    opts = A.AugmentOptions(100, 100)
    # crop starting at x = 0.2 of the image, 0.5 wide: left' = (0.15 - 0.2)/0.5 < 0 is clipped
    out, min_wh = A.fill_truth(boxes, None, 0.2 / 0.5, 0, 1 / 0.5, 1, False, opts)
    assert np.allclose(out[0], [2, 0.15, 0.5, 0.3, 0.4], atol=1e-6)
    assert min_wh in (29, 30)  # (int)(w·net_w) of a float32 0.3
    out, _ = A.fill_truth(boxes, None, 0, 0, 1, 1, True, opts)
    assert np.allclose(out[0], [2, 0.75, 0.5, 0.2, 0.4], atol=1e-6)


def test_fill_truth_shuffles_with_the_generator():
    boxes = np.array([[i % 3, 0.05 + 0.09 * i, 0.5, 0.05, 0.05] for i in range(10)], np.float32)
    opts = A.AugmentOptions(100, 100)
    a, _ = A.fill_truth(boxes, np.random.default_rng(0), 0, 0, 1, 1, False, opts)
    b, _ = A.fill_truth(boxes, np.random.default_rng(0), 0, 0, 1, 1, False, opts)
    assert np.array_equal(a, b) and not np.array_equal(a, boxes)
    assert np.allclose(np.sort(a[:, 1]), np.sort(boxes[:, 1]), atol=1e-6)


def test_blend_is_half_and_half_with_both_truths():
    a, ta = synth(0)
    b, tb = synth(1, rect=(10, 10, 50, 50))
    img, truth = A.blend(a, ta, b, tb, 200)
    assert img.dtype == np.float32 and np.allclose(img, (a / 255.0 + b / 255.0) / 2, atol=1e-6)
    assert np.array_equal(truth[:, 0], [0, 1])
    assert len(A.blend(a, ta, b, tb, 1)[1]) == 1


def test_gaussian_noise_only_adds():
    """cv::randn into a uint8 Mat saturates the negative half to 0: the noise only brightens."""
    img, box = synth()
    opts = A.AugmentOptions(320, 240, gaussian_noise=40, flip=False)
    plain_out = cv2.resize(img, (320, 240), interpolation=cv2.INTER_LINEAR)
    noisy = 0
    for seed in range(6):
        out, _ = A.augment_alexeyab(img, box, np.random.default_rng(seed), opts)
        assert (out.astype(int) >= plain_out.astype(int)).all()
        noisy += int((out != plain_out).any())
    assert noisy >= 1


def test_to_chw():
    u8 = np.random.default_rng(11).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = A.to_chw(u8)
    assert out.shape == (3, 5, 7) and out.flags.c_contiguous
    assert torch.equal(torch.from_numpy(out), to_tensor(u8))

"""``detector calc_anchors``: k-means of the training boxes' sizes with the ``1 − IoU`` distance.

Darknet (AlexeyAB only): ``src/detector.c:calc_anchors``, ``src/matrix.c:do_kmeans`` (darknet-reference.md §8).

- Every box of every label file of the ``train=`` list is a point ``(w·width, h·height)`` in pixels, in
  float. Boxes Darknet calls ``Wrong label`` (centre or size outside ``(0, 1]``) are printed and **kept**
  (``counters_per_class`` and the average count them: BCCD's zero-size box is one of its 2805 points).
- ``do_kmeans``: the initial centres are the first ``k`` of a shuffle of the points (``random_centers``;
  the "k-means++" message is Darknet's, the method is not); a point goes to the centre at the smallest
  ``1 − IoU`` of the two boxes aligned at a corner (first centre on ties); a centre becomes the mean of
  its points (a coordinate that comes out 0 keeps its old value); this repeats until no assignment
  changes, at most 1000 times. The centres are sorted by area, ascending.
- The average IoU is each box's best IoU over the anchors, summed in float, over all boxes.
- The anchors print as ``%3.0f,%3.0f`` (``%2.4f,%2.4f`` when ``width <= 32``), joined by ``", "``, to the
  screen and ``anchors.txt``; ``counters_per_class.txt`` holds the boxes per class.

Randomness: Darknet seeds with ``srand(time(0))``. Here the shuffle uses glibc's ``rand()`` reproduced
bit for bit (:class:`GlibcRand`), so one run with ``seed=S`` is exactly what Darknet prints after
``srand(S)``. By default ``restarts`` (20) runs follow one another on the same ``rand()`` stream, as if
``do_kmeans`` were called again, and the run with the best average IoU is kept; the first run alone is
Darknet's. Deliberate differences: a negative class id (Darknet writes before its counter array) is
skipped and named; ``bad_label.list``/``bad.list`` are not written (their lines are in the report);
``show`` is accepted and ignored (Darknet opens an OpenCV window).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.datafile import DataConfig
from .data.labels import label_path, read_image_list
from .errors import DataError

__all__ = ["AnchorsReport", "GlibcRand", "KMeansRun", "anchors_avg_iou", "calc_anchors", "darknet_kmeans"]

_F32 = np.float32
MAX_ITERATIONS = 1000  # do_kmeans
DEFAULT_RESTARTS = 20


class GlibcRand:
    """glibc's ``rand()`` after ``srand(seed)``: the TYPE_3 additive feedback generator (``random_r.c``)."""

    def __init__(self, seed: int) -> None:
        seed &= 0xFFFFFFFF
        if seed == 0:
            seed = 1  # __srandom_r
        word = seed - (1 << 32) if seed >= 1 << 31 else seed  # int32_t word = seed
        state = [word]
        for _ in range(1, 31):
            hi = abs(word) // 127773 * (1 if word >= 0 else -1)  # C division truncates
            lo = word - hi * 127773
            word = 16807 * lo - 2836 * hi
            if word < 0:
                word += 2147483647
            state.append(word)
        self._r = [v & 0xFFFFFFFF for v in state + state[:3]]
        for _ in range(310):  # srandom_r discards 10·31 outputs
            self._next()

    def _next(self) -> int:
        value = (self._r[-31] + self._r[-3]) & 0xFFFFFFFF
        self._r.append(value)
        del self._r[0]
        return value

    def rand(self) -> int:
        """The next ``rand()`` value, in ``[0, RAND_MAX = 2^31 − 1]``."""
        return self._next() >> 1

    def sample(self, n: int) -> list[int]:
        """``src/matrix.c:sample``: a Fisher–Yates shuffle of ``0..n-1`` driven by ``rand() % (i + 1)``."""
        s = list(range(n))
        for i in range(n - 1, -1, -1):
            j = self.rand() % (i + 1)
            s[i], s[j] = s[j], s[i]
        return s


def _corner_iou(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """IoU of every point and centre as boxes aligned at a corner, ``(N, K)``, in float as the C computes it."""
    x0, x1 = points[:, :1], points[:, 1:]
    y0, y1 = centers[None, :, 0], centers[None, :, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inter = np.minimum(x0, y0) * np.minimum(x1, y1)
        union = (x0 * x1 + y0 * y1) - inter
        return inter / union


def _iou_distance(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``src/matrix.c:dist``: ``1 − IoU`` (NaN for a zero-size point against itself)."""
    return _F32(1) - _corner_iou(points, centers)


def _closest(distances: np.ndarray) -> np.ndarray:
    """``closest_center``: the first centre with the strictly smallest distance (a NaN never wins)."""
    best = np.zeros(len(distances), np.int64)
    best_d = distances[:, 0].copy()
    for j in range(1, distances.shape[1]):
        better = distances[:, j] < best_d
        best[better] = j
        best_d[better] = distances[better, j]
    return best


def _maximization(points: np.ndarray, assignments: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``kmeans_maximization``: float sums in point order, divided by the count; a 0 keeps the old value."""
    new = np.zeros_like(centers)
    for c in range(len(centers)):
        members = points[assignments == c]
        if len(members):
            new[c] = np.cumsum(members, axis=0, dtype=_F32)[-1] / _F32(len(members))
    return np.where(new == 0, centers, new)


@dataclass(frozen=True)
class KMeansRun:
    """One ``do_kmeans``: its centres (unsorted), assignments and iterations."""

    centers: np.ndarray
    assignments: np.ndarray
    iterations: int


def darknet_kmeans(points: np.ndarray, k: int, rng: GlibcRand) -> KMeansRun:
    """``src/matrix.c:do_kmeans`` on ``(N, 2)`` float32 points, the initial centres from ``rng``."""
    points = np.asarray(points, _F32)
    if k < 1 or k > len(points):
        raise DataError(f"num_of_clusters={k}: need 1..{len(points)} (the number of boxes)")
    order = rng.sample(len(points))
    centers = points[order[:k]].copy()
    assignments = np.zeros(len(points), np.int64)
    if k == 1:
        centers = _maximization(points, assignments, centers)
    i = 0
    while i < MAX_ITERATIONS:
        closest = _closest(_iou_distance(points, centers))
        converged = bool(np.array_equal(closest, assignments))
        assignments = closest
        if converged:
            break
        centers = _maximization(points, assignments, centers)
        i += 1
    return KMeansRun(centers, assignments, i)


def _sort_by_area(centers: np.ndarray) -> np.ndarray:
    """``anchors_data_comparator``: ascending area (a stable order on ties)."""
    area = centers[:, 0] * centers[:, 1]
    return centers[np.argsort(area, kind="stable")]


def anchors_avg_iou(points: np.ndarray, anchors: np.ndarray) -> float:
    """Darknet's ``avg IoU`` in percent: each box's best IoU (first on ties), summed in float over all boxes."""
    points = np.asarray(points, _F32)
    anchors = np.asarray(anchors, _F32)
    iou = _corner_iou(points, anchors)
    d = _F32(1) - iou
    best = _closest(np.where(np.isnan(d), np.inf, d))  # min_dist starts at FLT_MAX: a NaN never wins
    iou = iou[np.arange(len(points)), best]
    iou = np.where(~np.isnan(d).all(axis=1) & (iou >= 0) & (iou <= 1), iou, _F32(0))
    total = np.cumsum(iou, dtype=_F32)[-1] if len(iou) else _F32(0)
    return float(_F32(100) * total / _F32(len(points)))


@dataclass
class AnchorsReport:
    """What ``calc_anchors`` found, with Darknet's printed lines (``str(report)``)."""

    anchors: np.ndarray  # (k, 2) float32, sorted by area
    avg_iou: float  # percent, Darknet's figure
    iterations: int  # of the kept run
    counters_per_class: list[int]
    number_of_images: int
    points: np.ndarray  # (N, 2) float32, pixels
    width: int
    height: int
    seed: int
    restarts: int
    kept_run: int  # 0-based; run 0 is what Darknet prints after srand(seed)
    run_avg_ious: list[float] = field(default_factory=list)
    wrong_labels: list[str] = field(default_factory=list)  # Darknet's "Wrong label" / missing-file lines
    problems: list[str] = field(default_factory=list)  # what darknetpy skipped where Darknet misbehaves

    @property
    def number_of_boxes(self) -> int:
        return len(self.points)

    def anchors_text(self) -> str:
        """The content of ``anchors.txt`` (no newline at the end, as Darknet writes it)."""
        form = "%3.0f,%3.0f" if self.width > 32 else "%2.4f,%2.4f"
        return ", ".join(form % (float(w), float(h)) for w, h in self.anchors)

    def counters_text(self) -> str:
        """The content of ``counters_per_class.txt``."""
        return "counters_per_class = " + ", ".join(str(c) for c in self.counters_per_class)

    def lines(self) -> list[str]:
        """Darknet's output lines (blank lines and the ``\\r loaded`` progress left out)."""
        k = len(self.anchors)
        return [
            f" num_of_clusters = {k}, width = {self.width}, height = {self.height} ",
            *self.wrong_labels,
            " all loaded. ",
            " calculating k-means++ ...",
            f" iterations = {self.iterations} ",
            self.counters_text(),
            f" avg IoU = {self.avg_iou:2.2f} % ",
            "Saving anchors to the file: anchors.txt ",
            "anchors = " + self.anchors_text(),
        ]

    def note(self) -> str:
        """One line on the runs (not Darknet's): which of the seeded runs was kept."""
        if self.restarts == 1:
            return f"darknetpy: one k-means run from srand({self.seed}), as Darknet's"
        first = self.run_avg_ious[0]
        return (
            f"darknetpy: kept run {self.kept_run + 1} of {self.restarts} k-means runs from srand({self.seed}) "
            f"(avg IoU {self.avg_iou:.2f} %; the first run, Darknet's after srand({self.seed}), gives {first:.2f} %)"
        )

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def write(self, folder: str | os.PathLike = ".") -> tuple[Path, Path]:
        """Write ``anchors.txt`` and ``counters_per_class.txt`` into ``folder``, as Darknet does in its working directory."""
        out = Path(folder)
        anchors_file, counters_file = out / "anchors.txt", out / "counters_per_class.txt"
        counters_file.write_bytes(self.counters_text().encode())
        anchors_file.write_bytes(self.anchors_text().encode())
        return anchors_file, counters_file


def _read_boxes(path: Path) -> tuple[list[tuple[int, float, float, float, float]], str | None]:
    """``src/data.c:read_boxes``: ``fscanf("%d %f %f %f %f")`` until it fails; no checks. None when missing."""
    try:
        tokens = path.read_text(encoding="utf-8", errors="replace").split()
    except (FileNotFoundError, IsADirectoryError):
        return [], None
    boxes, stop = [], ""
    for start in range(0, len(tokens) - 4, 5):
        group = tokens[start : start + 5]
        try:
            boxes.append((int(group[0]), *(float(np.float32(v)) for v in group[1:])))
        except ValueError:
            stop = f"{path}: reading stops at {' '.join(group)!r} (as fscanf does); the rest of the file is ignored"
            break
    else:
        if len(tokens) % 5:
            stop = f"{path}: {len(tokens) % 5} values left over at the end (not a whole box)"
    return boxes, stop


def _wrong(x: float, y: float, w: float, h: float) -> bool:
    return x > 1 or x <= 0 or y > 1 or y <= 0 or w > 1 or w <= 0 or h > 1 or h <= 0


def _load_points(data: DataConfig, width: int, height: int) -> tuple[np.ndarray, list[int], int, list[str], list[str]]:
    """The loading loop of ``calc_anchors``: points in pixels, counters per class, Darknet's lines."""
    try:
        classes = int(data.get("classes", "1"))
    except ValueError:
        raise DataError(f"{data.path}: classes={data.get('classes')} is not an integer") from None
    train = data.path_of("train") or data.resolve("data/train.list")
    images = read_image_list(train)
    counters = [0] * max(classes, 0)
    points: list[tuple[float, float]] = []
    wrong: list[str] = []
    problems: list[str] = []
    for image in images:
        labels = label_path(image, "alexeyab")
        boxes, stop = _read_boxes(labels)
        if stop is None:
            wrong.append(f"Can't open label file. (This can be normal only if you use MSCOCO): {labels} ")
            continue
        if stop:
            problems.append(stop)
        for j, (cls, x, y, w, h) in enumerate(boxes):
            if _wrong(x, y, w, h):
                wrong.append(f"Wrong label: {labels} - j = {j}, x = {x:f}, y = {y:f}, width = {w:f}, height = {h:f} ")
            if cls < 0:
                problems.append(f"{labels}: box {j} has class {cls}: skipped (Darknet writes outside its counters)")
                continue
            if cls >= len(counters):
                counters += [0] * (cls + 1 - len(counters))
            counters[cls] += 1
            points.append((w, h))
    p = np.asarray(points, _F32).reshape(-1, 2)
    p = p * np.asarray([width, height], _F32)
    return p, counters, len(images), wrong, problems


def calc_anchors(
    data: str | os.PathLike | DataConfig,
    num_of_clusters: int,
    width: int,
    height: int,
    seed: int = 0,
    show: bool = False,
    *,
    restarts: int = DEFAULT_RESTARTS,
    output_dir: str | os.PathLike | None = ".",
) -> AnchorsReport:
    """Darknet's ``detector calc_anchors``: anchors by k-means (``1 − IoU``) on the training boxes.

    Darknet: ``src/detector.c:calc_anchors`` and ``src/matrix.c:do_kmeans``; the module docstring lists
    the rules and the deliberate differences.

    Args:
        data: the ``.data`` file (its ``train`` list and ``classes``).
        num_of_clusters: ``k``, the number of anchors.
        width, height: the network input size the anchors are for (``-width``, ``-height``).
        seed: the ``srand`` seed of the initial centres (Darknet uses the time).
        show: Darknet draws the clusters; accepted and ignored.
        restarts: k-means runs on one ``rand()`` stream, the best average IoU kept (1: Darknet's one run).
        output_dir: where ``anchors.txt`` and ``counters_per_class.txt`` go (None: nowhere).

    Returns:
        An :class:`AnchorsReport`; ``str(report)`` gives Darknet's lines.

    Raises:
        DataError: no ``.data``/list file, no boxes, or ``num_of_clusters`` outside ``1..boxes``.
    """
    del show
    if width <= 0 or height <= 0:
        raise DataError(f"set -width and -height (got {width} x {height})")
    if restarts < 1:
        raise DataError(f"restarts={restarts}: at least one k-means run is needed")
    config = data if isinstance(data, DataConfig) else DataConfig.read(data)
    points, counters, n_images, wrong, problems = _load_points(config, width, height)
    if len(points) == 0:
        raise DataError(f"{config.path}: no boxes in the label files of its train list")
    rng = GlibcRand(seed)
    best: tuple[float, int, KMeansRun, np.ndarray] | None = None
    scores = []
    for run in range(restarts):
        result = darknet_kmeans(points, num_of_clusters, rng)
        anchors = _sort_by_area(result.centers)
        score = anchors_avg_iou(points, anchors)
        scores.append(score)
        if best is None or score > best[0]:
            best = (score, run, result, anchors)
    assert best is not None
    score, run, result, anchors = best
    report = AnchorsReport(
        anchors=anchors, avg_iou=score, iterations=result.iterations, counters_per_class=counters,
        number_of_images=n_images, points=points, width=width, height=height, seed=seed, restarts=restarts,
        kept_run=run, run_avg_ious=scores, wrong_labels=wrong, problems=problems,
    )
    if output_dir is not None:
        report.write(output_dir)
    return report

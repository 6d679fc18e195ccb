"""Core benchmarks: weights loading, and batch-1 forward latency against OpenCV's Darknet importer.

    python bench/bench_core.py                    # both parts
    python bench/bench_core.py --part load        # only (a)
    python bench/bench_core.py --part forward --runs 50

(a) Weights loading. A random yolov3-sized file (248,007,048 bytes, written by darknetpy for the
    yolov3 cfg) in a temporary folder, read once first so the page cache is warm, then timed:

    - ``np.fromfile``: the raw read of the same bytes (the floor any loader pays);
    - ``Darknet.load_weights``: into a model built beforehand (header, length checks, the copy into
      every tensor); the requirement is at most 2× the raw read;
    - ``cv2.dnn.readNetFromDarknet(cfg, weights)``: OpenCV parses the cfg and loads the weights.

(b) Forward latency, batch 1 at the cfg's own input size, 2 threads for both
    (``torch.set_num_threads(2)``, ``cv2.setNumThreads(2)``): darknetpy in eval mode under
    ``torch.inference_mode()`` (the head outputs, as ``model(x)`` returns them) against OpenCV's
    ``net.forward`` of its output layers (its default CPU path: fusion and Winograd on, decoded yolo
    rows). yolov3-tiny and yolov4-tiny at 416 with random weights written by darknetpy,
    Yolo-Fastest-1.1 at 320 with its real weights.

Every time is the median of several runs after warm-up runs; ratios are darknetpy / reference.
Nothing here is a test: it prints a table (and exits 1 if the loading requirement fails).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from darknetpy import Darknet

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YOLOV3_BYTES = 248_007_048


def find_cfg(name: str, *fallbacks: Path) -> Path:
    """The repository's own cfg copy, else the first fallback that exists."""
    for p in (ROOT / "cfg" / name, *fallbacks):
        if p.exists():
            return p
    raise FileNotFoundError(name)


def median_time(fn, runs: int, warmup: int = 1) -> tuple[float, float]:
    """(median, min) seconds of ``fn()`` over ``runs`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def quiet_model(cfg: Path, **kwargs) -> Darknet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Darknet(cfg, **kwargs)


def random_weights(model: Darknet, path: Path, seed: int = 0) -> None:
    """Seeded random weights (He-scaled), sane batch-norm statistics, written with save_weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("biases"):
                p.normal_(0.0, 0.1, generator=g)
            elif name.endswith("scales"):
                p.uniform_(0.8, 1.2, generator=g)
        for name, b in model.named_buffers():
            if name.endswith("rolling_variance"):
                b.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("rolling_mean"):
                b.normal_(0.0, 0.1, generator=g)
    model.save_weights(path)


# ---- (a) ----------------------------------------------------------------------------------------
def bench_load(runs: int) -> tuple[list[tuple[str, float, float, str]], bool]:
    cfg = find_cfg("yolov3.cfg", SHARED / "darknet-cfg" / "alexeyab" / "yolov3.cfg")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "yolov3-random.weights"
        torch.manual_seed(0)
        model = quiet_model(cfg).eval()
        random_weights(model, weights)
        size = weights.stat().st_size
        assert size == YOLOV3_BYTES, f"{weights}: {size} bytes, expected {YOLOV3_BYTES}"
        weights.read_bytes()  # warm the page cache

        header = model.header.size if model.header is not None else 20
        raw, raw_min = median_time(lambda: np.fromfile(weights, dtype="<f4", offset=header), runs)
        ours, ours_min = median_time(lambda: model.load_weights(weights), runs)
        ocv, ocv_min = median_time(lambda: cv2.dnn.readNetFromDarknet(str(cfg), str(weights)), runs)
    rows.append(("np.fromfile (raw read)", raw, raw_min, "1.00"))
    rows.append(("darknetpy load_weights", ours, ours_min, f"{ours / raw:.2f}"))
    rows.append(("cv2.dnn.readNetFromDarknet", ocv, ocv_min, f"{ocv / raw:.2f}"))
    ok = ours <= 2 * raw
    print(f"\n(a) weights loading: {cfg.name}, {size:,} bytes, page cache warm, median of {runs} runs")
    print(f"{'':30s} {'median ms':>10s} {'min ms':>8s} {'× np.fromfile':>14s}")
    for name, med, best, ratio in rows:
        print(f"{name:30s} {med * 1e3:10.1f} {best * 1e3:8.1f} {ratio:>14s}")
    print(f"darknetpy / OpenCV: {ours / ocv:.2f}")
    print(f"requirement load_weights <= 2 × np.fromfile: {'met' if ok else 'NOT MET'} ({ours / raw:.2f}×)")
    return rows, ok


# ---- (b) ----------------------------------------------------------------------------------------
def forward_cases() -> list[tuple[str, Path, Path | None]]:
    fastest = SHARED / "models" / "yolo-fastest"
    return [
        ("yolov3-tiny", find_cfg("yolov3-tiny.cfg", SHARED / "darknet-cfg" / "alexeyab" / "yolov3-tiny.cfg"), None),
        ("yolov4-tiny", find_cfg("yolov4-tiny.cfg", SHARED / "darknet-cfg" / "alexeyab" / "yolov4-tiny.cfg"), None),
        ("yolo-fastest-1.1", fastest / "yolo-fastest-1.1.cfg", fastest / "yolo-fastest-1.1.weights"),
    ]


def time_forward(name: str, cfg: Path, weights: Path | None, tmp: Path, runs: int, warmup: int) -> tuple[str, int, int, float, float]:
    """(kind of weights, width, height, darknetpy seconds, OpenCV seconds) for one model."""
    if weights is None:
        torch.manual_seed(0)
        model = quiet_model(cfg).eval()
        weights = tmp / f"{name}.weights"
        random_weights(model, weights)
        kind = "random"
    else:
        model = quiet_model(cfg, weights=weights).eval()
        kind = "real"
    c, h, w = model.input_shape
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(1))

    def ours() -> None:
        with torch.inference_mode():
            model(x)

    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    outs = net.getUnconnectedOutLayersNames()
    blob = x.numpy()

    def theirs() -> None:
        net.setInput(blob)
        net.forward(outs)

    t_ours, _ = median_time(ours, runs, warmup)
    t_cv, _ = median_time(theirs, runs, warmup)
    return kind, w, h, t_ours, t_cv


def bench_forward(runs: int, warmup: int) -> None:
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    print(f"\n(b) batch-1 forward latency, 2 threads each (torch {torch.__version__}, OpenCV {cv2.__version__}), "
          f"median of {runs} runs after {warmup} warm-up runs")
    print(f"{'model':18s} {'input':>7s} {'weights':>8s} {'darknetpy ms':>13s} {'OpenCV ms':>10s} {'darknetpy/OpenCV':>17s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, weights in forward_cases():
            kind, w, h, t_ours, t_cv = time_forward(name, cfg, weights, Path(tmp), runs, warmup)
            print(f"{name:18s} {w:>3d}x{h:<3d} {kind:>8s} {t_ours * 1e3:13.2f} {t_cv * 1e3:10.2f} {t_ours / t_cv:17.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("all", "load", "forward"), default="all")
    ap.add_argument("--load-runs", type=int, default=7, help="timed runs per loader (default 7)")
    ap.add_argument("--runs", type=int, default=30, help="timed forward runs per model (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed forward runs first (default 5)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    print(f"darknetpy core benchmarks: {torch.get_num_threads()} torch threads, {cv2.getNumThreads()} OpenCV threads")
    ok = True
    if args.part in ("all", "load"):
        _, ok = bench_load(args.load_runs)
    if args.part in ("all", "forward"):
        bench_forward(args.runs, args.warmup)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

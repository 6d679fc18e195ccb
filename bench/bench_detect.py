"""Detector forward latency: darknetpy's fused inference path against OpenCV's Darknet importer.

    python bench/bench_detect.py                        # batch 1 and 8, all three models
    python bench/bench_detect.py --batch 1 --runs 50    # batch 1 only, more runs
    python bench/bench_detect.py --no-bf16 --threads 1  # skip bfloat16, one thread each

For each model, in one process and with 2 threads each (``torch.set_num_threads(2)``,
``cv2.setNumThreads(2)``), at the cfg's input size:

- ``darknetpy``: ``model.optimize_for_inference()`` (float32; batch norm folded in double,
  channels-last, pre-packed oneDNN convs with fused bias/activation), ``model(x)`` in eval mode
  under ``torch.inference_mode()``: the head outputs, as ``model(x)`` returns them;
- ``OpenCV``: ``cv2.dnn.readNetFromDarknet(cfg, weights)``, ``DNN_BACKEND_OPENCV`` /
  ``DNN_TARGET_CPU`` with its defaults, which are its fastest CPU settings (layer fusion and Winograd
  on), ``net.setInput(blob); net.forward(output_names)`` (its yolo layers also decode the boxes);
- ``darknetpy bf16``: the same with ``optimize_for_inference(dtype=torch.bfloat16)`` where oneDNN
  runs bfloat16 natively on this CPU (AVX512-BF16 or AMX), else reported as not supported.

The same float32 NCHW blob (random, [0, 1]) goes to both. After ``--warmup`` runs of each, the
variants run alternately ``--runs`` times (so a change in the machine's load hits all of them
alike); every time printed is the median over those runs with the 25th–75th percentiles, and
every ratio is darknetpy / OpenCV of the medians. Models: yolov3-tiny and yolov4-tiny at 416 with
random weights written by darknetpy (batch-norm statistics as in bench_core.py), Yolo-Fastest-1.1
at 320 with its real weights (../shared/models/yolo-fastest/).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import SHARED, find_cfg, quiet_model, random_weights  # noqa: E402

from darknetpy.fuse import bf16_supported  # noqa: E402


def cases() -> list[tuple[str, Path, Path | None]]:
    fastest = SHARED / "models" / "yolo-fastest"
    return [
        ("yolov4-tiny", find_cfg("yolov4-tiny.cfg", SHARED / "darknet-cfg" / "alexeyab" / "yolov4-tiny.cfg"), None),
        ("yolov3-tiny", find_cfg("yolov3-tiny.cfg", SHARED / "darknet-cfg" / "alexeyab" / "yolov3-tiny.cfg"), None),
        ("yolo-fastest-1.1", find_cfg("yolo-fastest-1.1.cfg", fastest / "yolo-fastest-1.1.cfg"), fastest / "yolo-fastest-1.1.weights"),
    ]


def quantiles(times: list[float]) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile) in ms."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times) * 1e3, q[0] * 1e3, q[2] * 1e3


def interleaved(fns: dict, runs: int, warmup: int) -> dict[str, list[float]]:
    """Warm each up, then run them in turn ``runs`` times; seconds per call of each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def load_model(name: str, cfg: Path, weights: Path | None, tmp: Path):
    if weights is None:
        torch.manual_seed(0)
        model = quiet_model(cfg).eval()
        weights = tmp / f"{name}.weights"
        random_weights(model, weights)
        return model, weights, "random"
    return quiet_model(cfg, weights=weights).eval(), weights, "real"


def bench_model(name, cfg, weights, tmp, batches, runs, warmup, bf16):
    model, weights, kind = load_model(name, cfg, weights, tmp)
    variants = {"darknetpy": model.optimize_for_inference()}
    if bf16:
        twin = quiet_model(cfg, weights=weights).eval()
        variants["darknetpy bf16"] = twin.optimize_for_inference(dtype=torch.bfloat16)
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for option in ("enableFusion", "enableWinograd"):  # its defaults, said explicitly
        if hasattr(net, option):
            getattr(net, option)(True)
    outs = net.getUnconnectedOutLayersNames()
    c, h, w = model.input_shape
    rows = []
    for batch in batches:
        x = torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(batch))
        blob = x.numpy()

        def ocv(blob=blob) -> None:
            net.setInput(blob)
            net.forward(outs)

        fns = {}
        for label, m in variants.items():

            def ours(m=m, x=x) -> None:
                with torch.inference_mode():
                    m(x)

            fns[label] = ours
        fns["OpenCV"] = ocv
        n = runs if batch == 1 else max(5, runs // 3)
        times = interleaved(fns, n, warmup if batch == 1 else max(2, warmup // 2))
        stats = {label: quantiles(t) for label, t in times.items()}
        rows.append((name, f"{w}x{h}", kind, batch, n, stats))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    ap.add_argument("--runs", type=int, default=30, help="alternating timed runs at batch 1 (default 30; a third at batch 8)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs of each first (default 5)")
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (default 2)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 variant")
    ap.add_argument("--model", action="append", help="only these models (repeatable)")
    args = ap.parse_args(argv)
    batches = args.batch or [1, 8]
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    bf16 = bf16_supported()
    print(f"darknetpy detector latency: torch {torch.__version__} ({torch.get_num_threads()} threads, "
          f"{torch.backends.cpu.get_cpu_capability()}), OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
    print(f"bfloat16 on this CPU: {'supported (oneDNN native)' if bf16 else 'not supported natively'}"
          f"{'' if bf16 and not args.no_bf16 else ' - not timed'}")
    all_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, weights in cases():
            if args.model and name not in args.model:
                continue
            all_rows += bench_model(name, cfg, weights, Path(tmp), batches, args.runs, args.warmup, bf16 and not args.no_bf16)
    labels = [label for label in ("darknetpy", "darknetpy bf16") if any(label in r[5] for r in all_rows)]
    print("\nmedian ms [25th-75th percentile]; ratio = darknetpy / OpenCV (medians)")
    head = f"{'model':17s} {'input':>7s} {'weights':>7s} {'batch':>5s} {'runs':>4s} {'OpenCV ms':>20s}"
    for label in labels:
        head += f" {label + ' ms':>24s} {'ratio':>5s}"
    print(head)
    for name, size, kind, batch, n, stats in all_rows:
        ocv = stats["OpenCV"]
        line = f"{name:17s} {size:>7s} {kind:>7s} {batch:5d} {n:4d} {ocv[0]:8.2f} [{ocv[1]:5.1f}-{ocv[2]:5.1f}]"
        for label in labels:
            if label in stats:
                s = stats[label]
                line += f" {s[0]:12.2f} [{s[1]:5.1f}-{s[2]:5.1f}] {s[0] / ocv[0]:5.2f}"
            else:
                line += f" {'':>24s} {'':>5s}"
        print(line)
    worst = max((r[5]["darknetpy"][0] / r[5]["OpenCV"][0] for r in all_rows if r[3] == 1), default=0.0)
    if any(r[3] == 1 for r in all_rows):
        print(f"\nbatch 1, float32: worst darknetpy / OpenCV = {worst:.2f} (requirement <= 1.0: {'met' if worst <= 1.0 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed on the BCCD reference run's setup, against Darknet's images per second.

    python bench/bench_train.py                  # 25 timed iterations after 3 warm-up ones
    python bench/bench_train.py --iterations 50 --workers 2 --augment builtin

The reference run (``../shared/runs/bccd-darknet``): AlexeyAB's Darknet, CPU build, fine-tuning
Yolo-Fastest-1.1 (3 classes, 320x320, batch 16) on BCCD's train split from
``yolo-fastest-1.1.conv.109``; ``reference.json`` gives its speed on this machine kind (2 cores):
``darknet_images_per_second`` (5.9, the median of 25 iterations of its fastest build).

Here: ``darknetpy detector train`` with the same .data, cfg and start weights (``train_detector``,
data loading in ``--workers`` processes, the cfg's augmentation), timed as Darknet times: each
iteration's seconds from its log line (loading the next batch included, as Darknet's loader thread
overlaps it too), the median over ``--iterations`` after ``--warmup``. Prints images/s and the
ratio to Darknet's figure. Darknet cannot run here, so its figure is the one measured for the
reference run, on the same kind of machine.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
RUN = SHARED / "runs" / "bccd-darknet"
BCCD = SHARED / "datasets" / "bccd" / "BCCD"

from darknetpy import voc_to_darknet  # noqa: E402
from darknetpy.train import TrainOptions, train_detector  # noqa: E402

LINE = re.compile(r"^ (\d+): \S+, \S+ avg loss, \S+ rate, (\S+) seconds")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--augment", default="builtin", help="builtin (the reference run's), alexeyab, pjreddie, none")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reference = json.loads((RUN / "reference.json").read_text())
    darknet = float(reference["darknet_images_per_second"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        voc_to_darknet(BCCD, out, names=["RBC", "WBC", "Platelets"], train=["train"], valid=["test"],
                       offset=False, link_images=True, name="obj")
        seconds: dict[int, float] = {}

        def log(line: str) -> None:
            m = LINE.match(line)
            if m:
                seconds[int(m.group(1))] = float(m.group(2))

        options = TrainOptions(augment=None if args.augment == "none" else args.augment, workers=args.workers,
                               progress=False, chart=False, max_batches=args.warmup + args.iterations,
                               backup=str(out / "backup"), log=log)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_detector(out / "obj.data", RUN / "bccd-fastest.cfg", RUN / "yolo-fastest-1.1.conv.109", options)
    timed = [seconds[i] for i in sorted(seconds) if i > args.warmup]
    median = statistics.median(timed)
    q = statistics.quantiles(timed, n=4) if len(timed) > 1 else [median, median, median]
    batch = 16
    ours = batch / median
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.workers} loader workers, augment {args.augment}")
    print(f"darknetpy: {median:.3f} s per iteration of {batch} images (25-75%: {q[0]:.3f}-{q[2]:.3f}), {ours:.1f} images/s")
    print(f"Darknet (reference.json, same machine kind): {batch / darknet:.3f} s per iteration, {darknet:.1f} images/s")
    print(f"ratio darknetpy / Darknet: {ours / darknet:.2f}x  (floor 2x, aim 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Download official Darknet weights into this folder, checking each file's exact size.

    python weights/download.py                 # list what is known
    python weights/download.py yolov4-tiny.weights darknet53.conv.74

The addresses and sizes live in darknetpy/zoo.py. Files are written to a temporary name and
renamed once complete, so an interrupted download leaves nothing half-written.
"""
from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from darknetpy.zoo import KNOWN_WEIGHTS  # noqa: E402

HERE = Path(__file__).resolve().parent


def download(name: str) -> int:
    known = {k.name: k for k in KNOWN_WEIGHTS}
    if name not in known or not known[name].url:
        print(f"unknown file {name}; known: {', '.join(k.name for k in KNOWN_WEIGHTS if k.url)}", file=sys.stderr)
        return 2
    k = known[name]
    target = HERE / k.name
    if target.exists() and target.stat().st_size == k.size:
        print(f"{target}: present ({k.size:,} bytes)")
        return 0
    tmp = target.with_suffix(target.suffix + ".part")
    print(f"{k.url} -> {target}")
    urllib.request.urlretrieve(k.url, tmp)
    size = tmp.stat().st_size
    if size != k.size:
        tmp.unlink()
        print(f"{name}: got {size:,} bytes, expected {k.size:,}; removed", file=sys.stderr)
        return 1
    tmp.replace(target)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        for k in KNOWN_WEIGHTS:
            print(f"{k.name:28s} {k.size:>13,} bytes  cfg/{k.cfg}" + (f" (first {k.cutoff} layers)" if k.cutoff else "") + f"  {k.url}")
        return 0
    return max(download(name) for name in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

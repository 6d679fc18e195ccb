"""CI: the wheel is a whole product: only darknetpy (and its dist-info) at the top, the bundled files inside.

    python .ci/check_wheel.py dist/darknet_torch-*.whl
"""
from __future__ import annotations

import sys
import zipfile

# What an installed darknetpy needs to run its main job and its documented calls (darknetpy/zoo.py).
REQUIRED = (
    "darknetpy/assets/cfg/yolo-fastest-1.1.cfg",
    "darknetpy/assets/weights/yolo-fastest-1.1.weights",
    "darknetpy/assets/weights/LICENSE.yolo-fastest",
    "darknetpy/assets/cfg/coco.names",
    "darknetpy/assets/cfg/voc.names",
    "darknetpy/assets/cfg/yolov3.cfg",
    "darknetpy/assets/cfg/yolov4-tiny.cfg",
    "darknetpy/assets/data/dog.jpg",
)


def main(path: str) -> int:
    names = zipfile.ZipFile(path).namelist()
    top = sorted({n.split("/")[0] for n in names})
    problems = [f"top-level entry {t!r} (only darknetpy and its .dist-info may land in site-packages)"
                for t in top if t != "darknetpy" and not t.endswith(".dist-info")]
    problems += [f"missing {r}" for r in REQUIRED if r not in names]
    problems += [f"a downloaded weights file was packaged: {n}" for n in names
                 if n.startswith("darknetpy/assets/weights/") and n.endswith(".weights") and not n.endswith("yolo-fastest-1.1.weights")]
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    if not problems:
        print(f"{path}: {len(names)} files; top level {', '.join(top)}; bundled files present")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(max(main(p) for p in sys.argv[1:]) if sys.argv[1:] else 2)

#!/usr/bin/env python3
"""Rebuild tests/fixtures from a shared folder: two golden cases and the cfg zoo (tests/fixtures/README.md).

    python tools/make_fixtures.py [SHARED]      # default: $DARKNETPY_SHARED, else ../shared

A case file byte-identical to a file the repository already has becomes a relative symlink to it;
a partial weights file ``model.conv.N`` becomes ``model.conv.N.sha256`` (its sha256 and size), which
``darknetpy verify`` checks as it checks the file. Everything else is copied as it is.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CASES = ("alexeyab-yolo-fastest-1.1", "pjreddie-yolov3-tiny-slim")
LINK_TARGETS = (ROOT / "darknetpy" / "assets" / "data" / "dog.jpg",
                ROOT / "darknetpy" / "assets" / "weights" / "yolo-fastest-1.1.weights")
PARTIAL = re.compile(r"model\.conv\.\d+")


def digest_text(data: bytes) -> str:
    """The ``model.conv.N.sha256`` format: ``sha256 <hex>`` and ``size <bytes>`` lines."""
    return f"sha256 {hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"


def make_case(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    targets = {t.read_bytes(): t for t in LINK_TARGETS}
    for path in sorted(src.iterdir()):
        data = path.read_bytes()
        if data in targets:
            (dst / path.name).symlink_to(os.path.relpath(targets[data], dst))
        elif PARTIAL.fullmatch(path.name):
            (dst / f"{path.name}.sha256").write_text(digest_text(data))
        else:
            shutil.copyfile(path, dst / path.name)


def main(argv: list[str]) -> int:
    shared = Path(argv[0] if argv else os.environ.get("DARKNETPY_SHARED", ROOT.parent / "shared")).resolve()
    if not (shared / "golden").is_dir() or not (shared / "darknet-cfg").is_dir():
        print(f"make_fixtures: {shared}: not a shared folder (no golden/ or darknet-cfg/)", file=sys.stderr)
        return 2
    for name in ("golden", "darknet-cfg"):
        shutil.rmtree(FIXTURES / name, ignore_errors=True)
    (FIXTURES / "golden").mkdir(parents=True)
    shutil.copyfile(shared / "golden" / "README.md", FIXTURES / "golden" / "README.md")
    for case in CASES:
        make_case(shared / "golden" / case, FIXTURES / "golden" / case)
    for path in sorted((shared / "darknet-cfg").rglob("*")):
        if path.is_file():  # plain copies, writable whatever the shared folder's modes
            out = FIXTURES / "darknet-cfg" / path.relative_to(shared / "darknet-cfg")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
    print(f"{FIXTURES}: golden ({', '.join(CASES)}) and darknet-cfg from {shared}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

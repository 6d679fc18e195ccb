#!/usr/bin/env python3
"""COCO instances JSON to Darknet labels (COCO ids to 0..79), an image list and coco.names.

The same as ``darknetpy data coco ...`` (see ``--help``); kept as a script for Darknet users.
"""
import sys

from darknetpy.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "coco", *sys.argv[1:]]))

#!/usr/bin/env python3
"""A seeded random train/valid split (8:2) of an image folder.

The same as ``darknetpy data split ...`` (see ``--help``); kept as a script for Darknet users.
"""
import sys

from darknetpy.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "split", *sys.argv[1:]]))

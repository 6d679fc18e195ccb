#!/usr/bin/env python3
"""Boxes per class and a box size histogram (PNG).

The same as ``darknetpy data stats ...`` (see ``--help``); kept as a script for Darknet users.
"""
import sys

from darknetpy.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "stats", *sys.argv[1:]]))

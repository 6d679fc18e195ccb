#!/usr/bin/env python3
"""Darknet's scripts/voc_label.py: VOC XML + ImageSets to labels, lists, .names and .data.

The same as ``darknetpy data voc ...`` (see ``--help``); kept as a script for Darknet users.
"""
import sys

from darknetpy.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "voc", *sys.argv[1:]]))

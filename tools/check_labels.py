#!/usr/bin/env python3
"""Every label file against its image; a summary table, exit status 1 on errors.

The same as ``darknetpy data check ...`` (see ``--help``); kept as a script for Darknet users.
"""
import sys

from darknetpy.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "check", *sys.argv[1:]]))

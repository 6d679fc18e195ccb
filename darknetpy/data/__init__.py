"""Data sets in Darknet's formats: ``.data`` files, image lists, labels."""
from .datafile import DataConfig, read_names

__all__ = ["DataConfig", "read_names"]

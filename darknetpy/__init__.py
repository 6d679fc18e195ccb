"""darknetpy: Darknet models (.cfg + .weights) as exact PyTorch modules."""
from __future__ import annotations

__version__ = "0.1.0"

from .cfg import CfgFile, Section, format_cfg, parse_cfg_text, read_cfg, write_cfg
from .errors import (
    BadValueError,
    CfgError,
    DarknetError,
    DataError,
    FlavorError,
    ParityError,
    ShapeError,
    UnknownSectionError,
    WeightsError,
)
from .flavor import ALEXEYAB, PJREDDIE, FlavorSpec, get_flavor
from .model import Darknet
from .weights import WeightsHeader, read_header

__all__ = [
    "__version__",
    "ALEXEYAB",
    "PJREDDIE",
    "BadValueError",
    "CfgError",
    "CfgFile",
    "Darknet",
    "DarknetError",
    "DataError",
    "FlavorError",
    "FlavorSpec",
    "ParityError",
    "Section",
    "ShapeError",
    "UnknownSectionError",
    "WeightsError",
    "WeightsHeader",
    "format_cfg",
    "get_flavor",
    "parse_cfg_text",
    "read_cfg",
    "read_header",
    "write_cfg",
]

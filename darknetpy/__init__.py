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
from .summary import shape_model, summary_json, summary_text
from .verify import CHECKS, CheckResult, format_result, verify_case, verify_paths
from .checkpoint import convert, load_checkpoint, save_checkpoint
from .weights import WeightsHeader, read_header
from .detect import Detection
from .detector import DetectorTest, load_detector, read_image_paths, run_detector_demo, run_detector_test, save_labels
from .flags import DARKNET_FLAGS, DarknetFlag, flag_help, flag_note
from .data import DataConfig, read_names
from .loss import NetworkLoss, available_losses
from .zoo import KNOWN_WEIGHTS, asset, default_model, find_file, sample_image
from .zoo import download as download_weights

__all__ = [
    "__version__",
    "ALEXEYAB",
    "PJREDDIE",
    "CHECKS",
    "DataConfig",
    "NetworkLoss",
    "Detection",
    "DetectorTest",
    "CheckResult",
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
    "available_losses",
    "KNOWN_WEIGHTS",
    "asset",
    "default_model",
    "download_weights",
    "find_file",
    "sample_image",
    "convert",
    "load_detector",
    "read_names",
    "run_detector_test",
    "run_detector_demo",
    "read_image_paths",
    "save_labels",
    "DARKNET_FLAGS",
    "DarknetFlag",
    "flag_help",
    "flag_note",
    "format_cfg",
    "format_result",
    "load_checkpoint",
    "save_checkpoint",
    "shape_model",
    "summary_json",
    "summary_text",
    "verify_case",
    "verify_paths",
    "get_flavor",
    "parse_cfg_text",
    "read_cfg",
    "read_header",
    "write_cfg",
]

from .export import DEFAULT_OPSET, ExportReport, check_onnx, export_onnx, onnx_detections, onnx_settings
from .serve import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, RunningServer, create_app, serve, start_server

__all__ += [
    "DEFAULT_OPSET",
    "ExportReport",
    "check_onnx",
    "export_onnx",
    "onnx_detections",
    "onnx_settings",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "RunningServer",
    "create_app",
    "serve",
    "start_server",
]

# <evaluation exports go here>
from .evaluate import MapReport, evaluate_detections, evaluate_map
from .valid import ImageDetections, ValidReport, collect_detections, validate
from .cocoeval import CocoMap, coco_evaluate

__all__ += [
    "MapReport", "evaluate_detections", "evaluate_map",
    "ImageDetections", "ValidReport", "collect_detections", "validate",
    "CocoMap", "coco_evaluate",
]
# <data tool exports go here>
from .data.voc import VOC_CLASSES, VocResult, read_voc_xml, voc_to_darknet
from .data.coco import COCO_IDS, COCO_NAMES, CocoResult, coco_to_darknet
from .data.split import SplitResult, split_images
from .data.check import CheckReport, Finding, check_dataset
from .data.stats import DatasetStats, dataset_stats, draw_size_histogram

__all__ += [
    "VOC_CLASSES", "VocResult", "read_voc_xml", "voc_to_darknet",
    "COCO_IDS", "COCO_NAMES", "CocoResult", "coco_to_darknet",
    "SplitResult", "split_images",
    "CheckReport", "Finding", "check_dataset",
    "DatasetStats", "dataset_stats", "draw_size_histogram",
]
# <anchors and cfg tool exports go here>
from .anchors import DEFAULT_RESTARTS, AnchorsReport, calc_anchors
from .cfgtools import CfgChange, EditedCfg, max_batches_for, set_classes, set_classes_text
from .cfgtools import diff as diff_cfg

__all__ += [
    "DEFAULT_RESTARTS", "AnchorsReport", "calc_anchors",
    "CfgChange", "EditedCfg", "diff_cfg", "max_batches_for", "set_classes", "set_classes_text",
]

"""The ``darknetpy`` command: Darknet's verbs over the library (each handler only wires).

Every name used here comes from ``darknetpy/__init__.py``. A :class:`DarknetError` prints one line
and exits with status 2; anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import warnings
from typing import Sequence

import darknetpy as dp


def _verify(args: argparse.Namespace) -> int:
    only = [c for c in args.only.split(",") if c] if args.only else None
    results, ignored = dp.verify_paths(args.cases, only)
    for path in ignored:
        print(f"{path}: not a case folder (no case.json), ignored", file=sys.stderr)
    if not results:
        raise dp.DarknetError("no case folders given (a case holds case.json, model.cfg, model.weights, expected.npz)")
    for r in results:
        print(dp.format_result(r))
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped", "n/a")}
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped, {counts['n/a']} n/a")
    return 1 if counts["failed"] else 0


def _summary(args: argparse.Namespace) -> int:
    model = dp.shape_model(args.cfg, args.flavor, width=args.width, height=args.height)
    print(json.dumps(dp.summary_json(model)) if args.json else dp.summary_text(model))
    return 0


def _convert(args: argparse.Namespace) -> int:
    print(dp.convert(args.source, args.target, args.cfg))
    return 0


def _partial(args: argparse.Namespace) -> int:
    model = dp.Darknet(args.cfg, args.weights, flavor=args.flavor, cutoff=args.layers)
    model.save_weights(args.output, cutoff=args.layers)
    print(f"Saved layers 0..{args.layers - 1} of {args.weights} to {args.output} (seen = 0)")
    return 0


def _download(args: argparse.Namespace) -> int:
    if not args.names:
        for k in dp.KNOWN_WEIGHTS:
            cut = f" (first {k.cutoff} layers)" if k.cutoff else ""
            print(f"{k.name:28s} {k.size:>13,} bytes  cfg/{k.cfg}{cut}  {k.url or '(bundled)'}")
        return 0
    for name in args.names:
        print(dp.download_weights(name, args.output))
    return 0


def _split_model_args(items: list[str]) -> tuple[str | None, str | None, str | None, list[str]]:
    """Darknet's ``detector <verb> [data] [cfg] [weights] inputs...``: leading .data/.cfg/weights files."""
    data = cfg = weights = None
    rest = list(items)
    if rest and rest[0].endswith(".data"):
        data = rest.pop(0)
    if rest and rest[0].endswith(".cfg"):
        cfg = rest.pop(0)
        if rest:
            weights = rest.pop(0)
    return data, cfg, weights, rest


def _detection_options(args: argparse.Namespace, out_json: str | None, batch: int | None = None) -> dp.DetectorTest:
    return dp.DetectorTest(
        thresh=args.thresh, hier_thresh=args.hier, nms=args.nms, nms_kind=args.nms_kind, letterbox=True if args.letter_box else None,
        ext_output=args.ext_output, save_txt=args.save_txt, out_json=out_json, out_dir=getattr(args, "out_dir", None),
        out_filename=args.out_filename, save_labels=getattr(args, "save_labels", False),
        time_limit=getattr(args, "time_limit_sec", 0) or 0, batch_size=batch or args.batch,
    )


def _test(model: dp.Darknet, inputs: list[str], args: argparse.Namespace) -> int:
    if inputs:
        dp.run_detector_test(model, inputs, _detection_options(args, args.out))
        return 0
    tty = sys.stdin.isatty()  # Darknet's `Enter Image Path:` loop: one image at a time at a terminal
    paths = dp.read_image_paths(sys.stdin, sys.stdout if tty else None)
    dp.run_detector_test(model, paths, _detection_options(args, args.out, batch=1 if tty else None))
    return 0


def _detector_test(args: argparse.Namespace) -> int:
    data, cfg, weights, inputs = _split_model_args(args.items)
    return _test(dp.load_detector(data, cfg, weights, args.flavor, fast=True, half=args.half), inputs, args)


def _detect(args: argparse.Namespace) -> int:
    return _test(dp.load_detector(None, args.cfg, args.weights, args.flavor, fast=True, half=args.half), args.inputs, args)


def _detector_demo(args: argparse.Namespace) -> int:
    data, cfg, weights, inputs = _split_model_args(args.items)
    if len(inputs) > 1:
        raise dp.DarknetError(f"demo takes one video file or stream, got {len(inputs)}: {' '.join(inputs)}")
    model = dp.load_detector(data, cfg, weights, args.flavor, fast=True, half=args.half)
    dp.run_detector_demo(model, inputs[0] if inputs else args.c, _detection_options(args, args.json_file_output))
    return 0


def _detector_map(args: argparse.Namespace) -> int:
    model = dp.load_detector(args.data, args.cfg, args.weights, args.flavor, fast=True)
    report = dp.evaluate_map(
        model, args.data, points=args.points, iou_thresh=args.iou_thresh, thresh=args.thresh, letterbox=True if args.letter_box else None,
        coco=args.coco, batch_size=args.batch, decoder=args.decoder, progress=not args.quiet,
    )
    print(report.text(), end="")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.as_dict(), f, indent=1)
    return 0


def _detector_valid(args: argparse.Namespace) -> int:
    model = dp.load_detector(args.data, args.cfg, args.weights, args.flavor, fast=True)
    report = dp.validate(
        model, args.data, out_dir=args.results, format=args.eval, outfile=args.out, letterbox=True if args.letter_box else None,
        batch_size=args.batch, decoder=args.decoder, progress=not args.quiet,
    )
    for path in report.files:
        print(path)
    print(f"{report.detections} detections of {report.images} images ({report.format})")
    return 0


def _detector_train(args: argparse.Namespace) -> int:
    from .train import TrainOptions, train_detector

    options = TrainOptions(
        weights_cfg=args.weights_cfg, flavor=args.flavor, clear=args.clear, freeze=args.freeze, calc_map=args.map,
        map_points=args.points, map_epochs=args.mAP_epochs, map_thresh=args.thresh, map_iou_thresh=args.iou_thresh,
        augment=None if args.augment == "none" else args.augment, seed=args.seed,
        workers=args.workers, device=args.device, amp=not args.no_amp, loss=args.loss, max_batches=args.max_batches,
        backup=args.backup, show_details=args.show_details, progress=not args.quiet, chart=not args.no_chart,
        chart_file=args.chart, dropout=args.dropout,
    )
    try:
        train_detector(args.data, args.cfg, args.weights, options)
    except KeyboardInterrupt:
        return 130
    return 0


class _Parser(argparse.ArgumentParser):
    """Darknet's command-line rules: a flag name matches exactly (``-i`` is never an abbreviation of
    ``-iou_thresh``), and flags and file names may be interleaved, as ``find_arg`` allows."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._has_commands = self._intermixing = False

    def add_subparsers(self, **kwargs):  # noqa: ANN003, ANN201
        self._has_commands = True
        return super().add_subparsers(**kwargs)

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        if self._has_commands or self._intermixing:
            return super().parse_known_args(args, namespace)
        args = sys.argv[1:] if args is None else list(args)
        for token in args:
            if token == "--":
                break
            name = token.split("=", 1)[0]
            if token[:1] == "-" and len(token) > 1 and not _NUMBER.fullmatch(token) and name not in self._option_string_actions:
                names = list(self._option_string_actions)
                close = [n for n in names if n.startswith(name)][:3] or difflib.get_close_matches(name, names, n=3)
                self.error(f"unrecognized argument: {token}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


_NUMBER = re.compile(r"-\d+|-\d*\.\d+")
_FLAGS = {flag.name: flag for flag in dp.DARKNET_FLAGS}


class _DarknetNote(argparse.Action):
    """A flag of Darknet's table that this verb does not implement: kept for its one-line note
    (``-h`` without a number is the help)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        if option_string == "-h" and not (values or "").isdigit():
            parser.print_help()
            parser.exit()
        notes = dict(getattr(namespace, "darknet_notes", {}))
        notes[option_string] = values if values != [] else None
        namespace.darknet_notes = notes


def _command(sub: argparse._SubParsersAction, name: str, text: str, darknet: bool = False) -> argparse.ArgumentParser:
    """A subcommand whose ``text`` is both its line in the list and its ``--help`` description; a
    Darknet command leaves ``-h`` to the flag table (pjreddie's ``-h N``; ``-h`` alone is the help)."""
    p = sub.add_parser(name, help=text, description=text, add_help=not darknet)
    if darknet:
        p.add_argument("--help", action="help", help="show this help and exit (-h alone too)")
    return p


def _add_darknet_flags(p: argparse.ArgumentParser, verb: str, every_command_only: bool = False) -> None:
    """Every flag of Darknet's table that ``p`` does not implement: accepted wherever it stands, a
    note when given (``every_command_only``: just darknet.c's, such as ``-i``, for a non-detector command)."""
    usage = p.format_usage().removeprefix("usage: ").rstrip()
    group = p.add_argument_group("Darknet's other flags", "accepted where Darknet accepts them; each prints a note saying why it has no effect here")
    for flag in dp.DARKNET_FLAGS:
        if flag.name in p._option_string_actions or (every_command_only and flag.verbs != ("*",)):
            continue
        text = dp.flag_help(flag, verb) + (" (-h alone: this help)" if flag.name == "-h" else "")
        group.add_argument(
            flag.name, action=_DarknetNote, dest="darknet_notes", default=argparse.SUPPRESS, help=text.replace("%", "%%"),
            nargs=0 if flag.kind is None else ("?" if flag.name == "-h" else None), type=None if flag.name == "-h" else flag.kind,
            metavar=None if flag.kind is None else flag.metavar or {int: "N", float: "X"}.get(flag.kind, "VALUE"),
        )
    p.usage = f"{usage} [Darknet's flags]"


def _notes(args: argparse.Namespace) -> list[str]:
    verb = getattr(args, "verb", None) or args.command
    lines = (dp.flag_note(_FLAGS[name], value, verb) for name, value in getattr(args, "darknet_notes", {}).items())
    return [f"darknetpy: note: {line}" for line in lines if line]


def _add_detection(p: argparse.ArgumentParser, verb: str) -> None:
    """The options of ``detector test``, ``detect`` and ``demo``."""
    p.add_argument("-thresh", type=float, default=None, help="probability threshold (AlexeyAB .25, pjreddie .5)")
    p.add_argument("-hier", type=float, default=0.5, help="hierarchical threshold (YOLO9000 trees)")
    p.add_argument("-nms", type=float, default=0.45, help="NMS threshold (0: off)")
    p.add_argument("-nms_kind", default=None, choices=["default", "greedynms", "diounms"], help="NMS kind (default: the cfg's last layer)")
    p.add_argument("-letter_box", action="store_true", help="letterbox the input (pjreddie always does)")
    p.add_argument("-ext_output", action="store_true", help="print each box in pixels")
    p.add_argument("-save_txt", metavar="FILE", help="write 'class prob objectness x y w h' lines")
    if verb == "demo":
        p.add_argument("-c", type=int, default=0, metavar="N", help="the camera to open when no video or stream is given (default 0)")
        p.add_argument("-json_file_output", metavar="FILE", help="write the detections of every frame as JSON")
        p.add_argument("-time_limit_sec", type=int, default=0, metavar="N", help="stop after N seconds (0: at the end of the video)")
    else:
        p.add_argument("-out", metavar="FILE", help="write the detections of every image as JSON")
        p.add_argument("-out_dir", metavar="DIR", help="annotated images go here (default predictions.jpg, or predictions/ for several)")
        p.add_argument("-save_labels", action="store_true", help="write each image's detections as its label file "
                       "(AlexeyAB's path rule: the image's name with .txt, JPEGImages -> labels): pseudo-labelling")
    p.add_argument("-out_filename", metavar="FILE", help="annotated video output (for video inputs)")
    p.add_argument("-batch", type=int, default=4, help="images per forward pass")
    p.add_argument("--half", "-half", action="store_true", help="bfloat16 inference (where the CPU supports it natively)")
    _flavor(p)
    _add_darknet_flags(p, verb)


def _flavor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"],
                   help="the Darknet fork whose rules apply (default: read from the weights header, else alexeyab)")


def _add_detector_test(detector: argparse._SubParsersAction, sub: argparse._SubParsersAction) -> None:
    p = _command(detector, "test", "detect objects in images, folders, image lists and videos (no image: paths from standard input)", darknet=True)
    p.add_argument("items", nargs="+", metavar="[data] [cfg weights] input",
                   help="a .data file (names), a cfg and its weights (none: the bundled Yolo-Fastest-1.1 COCO model), then images, "
                        "folders, image lists and videos; none with a cfg: image paths from standard input, one a line")
    _add_detection(p, "test")
    p.set_defaults(handler=_detector_test)

    p = _command(detector, "demo", "detect objects in every frame of a video file, a stream URL or a camera (-c N)", darknet=True)
    p.add_argument("items", nargs="+", metavar="[data] [cfg weights] [video]",
                   help="a .data file (names), a cfg and its weights (none: the bundled model), then a video file or stream URL "
                        "(none: the camera of -c)")
    _add_detection(p, "demo")
    p.set_defaults(handler=_detector_demo)

    p = _command(sub, "detect", "darknet detect: detector test of a cfg and its weights with the COCO names "
                 "(no image: paths from standard input)", darknet=True)
    p.add_argument("cfg", help="the network cfg")
    p.add_argument("weights", help="its weights")
    p.add_argument("inputs", nargs="*", metavar="image", help="images, folders, lists or videos (none: image paths from standard input)")
    _add_detection(p, "detect")
    p.set_defaults(handler=_detect)


def _add_train(detector: argparse._SubParsersAction) -> None:
    p = _command(detector, "train", "train the cfg on the .data file's train list (Darknet's update, weights and log)", darknet=True)
    p.add_argument("data", help="the .data file (classes, train, valid, names, backup)")
    p.add_argument("cfg", help="the network cfg to train ([net] batch, subdivisions, max_batches, learning rate schedule)")
    p.add_argument("weights", nargs="?", help="start weights: full, partial (darknet53.conv.74), another class count, or a _last to resume")
    p.add_argument("-map", action="store_true", help="mAP on the valid list every -mAP_epochs epochs (at least 100 iterations); _best.weights")
    p.add_argument("-mAP_epochs", type=int, default=4, metavar="N", help="epochs between two mAP calculations of -map (default 4)")
    p.add_argument("-points", type=int, default=0, help="mAP interpolation of -map (default 0: area under the curve)")
    p.add_argument("-thresh", type=float, default=0.25, help="probability threshold of -map's P/R/F1 (default .25)")
    p.add_argument("-iou_thresh", type=float, default=0.5, help="IoU of a match in -map's mAP (default .5)")
    p.add_argument("-chart", metavar="FILE", help="write the loss chart here (default <backup>/chart.png; Darknet continues the chart of this file)")
    p.add_argument("-clear", action="store_true", help="start the iteration count at 0 (seen = 0)")
    p.add_argument("-show_details", action="store_true", help="every head's loss line each iteration")
    p.add_argument("--weights-cfg", help="the cfg the start weights were made for (e.g. the 80-class cfg of coco weights)")
    p.add_argument("--freeze", type=int, default=0, metavar="N", help="leave layers 0..N-1 untrained")
    p.add_argument("--augment", default="default", choices=["default", "alexeyab", "builtin", "pjreddie", "none"],
                   help="augmentation: the flavour's (default), AlexeyAB with OpenCV, AlexeyAB built without OpenCV, pjreddie, none")
    p.add_argument("--seed", type=int, default=0, help="seed of the image draws and augmentation (default 0)")
    p.add_argument("--workers", type=int, default=2, help="data loading processes (default 2)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (default: float16 autocast on CUDA)")
    p.add_argument("--loss", default="darknet", help="loss scheme (default: the flavour's Darknet loss)")
    p.add_argument("--max-batches", type=int, help="override max_batches of the cfg")
    p.add_argument("--backup", help="folder for the weights (default: the .data file's backup=)")
    p.add_argument("--dropout", type=float, help="set every [dropout] probability (0: off)")
    p.add_argument("--no-chart", action="store_true", help="do not write chart.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _flavor(p)
    _add_darknet_flags(p, "train")
    p.set_defaults(handler=_detector_train)


def _add_evaluation(detector: argparse._SubParsersAction) -> None:
    for verb, handler, text in (("map", _detector_map, "AlexeyAB's mAP of the .data file's valid list (Darknet's printout)"),
                                ("valid", _detector_valid, "Darknet's result files: comp4_det_test_<class>.txt or coco_results.json")):
        p = _command(detector, verb, text, darknet=True)
        p.add_argument("data", help="the .data file (classes, valid, names[, difficult, results, eval])")
        p.add_argument("cfg", help="the network cfg")
        p.add_argument("weights", help="its weights")
        p.add_argument("-letter_box", action="store_true", help="letterbox the input (default: [net] letter_box; pjreddie always)")
        p.add_argument("-batch", type=int, default=8, help="images per forward pass")
        p.add_argument("--decoder", default="stb", choices=["stb", "opencv"], help="JPEG decoding: Darknet's stb_image pixels (default) or OpenCV (~40x faster)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        _flavor(p)
        p.set_defaults(handler=handler)
        if verb == "map":
            p.add_argument("-points", type=int, default=0, help="0: area under the curve (default), 11: VOC2007, 101: COCO-style")
            p.add_argument("-iou_thresh", type=float, default=0.5, help="a match needs IoU above this (default .5)")
            p.add_argument("-thresh", type=float, default=0.25, help="probability threshold of the P/R/F1/TP/FP/avg IoU lines (default .25)")
            p.add_argument("--coco", action="store_true", help="also COCO's mAP@[.50:.95] of the same detections")
            p.add_argument("--json", metavar="FILE", help="write the report as JSON")
        else:
            p.add_argument("-out", metavar="NAME", help="file name prefix (default comp4_det_test_ / coco_results)")
            p.add_argument("-eval", choices=["voc", "coco"], help="format (default: the .data file's eval=, else voc, as both Darknets)")
            p.add_argument("-results", metavar="DIR", help="output folder (default: the .data file's results=, else results/)")
        _add_darknet_flags(p, verb)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="darknetpy", description="Darknet models as PyTorch modules.")
    parser.add_argument("--version", action="version", version=f"darknetpy {dp.__version__}", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="command")

    p = _command(sub, "verify", "check this port against Darknet dumps (case folders)")
    p.add_argument("cases", nargs="+", help="case folders (shared/golden/* format)")
    p.add_argument("--only", help="comma list of checks: " + ",".join(dp.CHECKS))
    p.set_defaults(handler=_verify)

    p = _command(sub, "summary", "Darknet's layer table of a cfg (no weights needed)")
    p.add_argument("cfg", help="the network cfg")
    p.add_argument("--json", action="store_true", help="layers and weights size as JSON")
    _flavor(p)
    p.add_argument("--width", type=int, default=None, help="network width (default: the cfg's)")
    p.add_argument("--height", type=int, default=None, help="network height (default: the cfg's)")
    p.set_defaults(handler=_summary)

    p = _command(sub, "convert", ".weights <-> .pt (the .pt carries the cfg and the header)")
    p.add_argument("source", help="a Darknet .weights file (full or partial; give --cfg) or a .pt written by convert")
    p.add_argument("target", help="the .pt to write (from a .weights source) or the .weights to write (from a .pt source: the original bytes)")
    p.add_argument("--cfg", help="the cfg of a .weights source")
    p.set_defaults(handler=_convert)

    detector = _command(sub, "detector", "Darknet's detector verbs").add_subparsers(dest="verb", required=True, title="verbs", metavar="verb")
    _add_detector_test(detector, sub)
    # <detector map/valid: evaluation subcommands go here>
    _add_evaluation(detector)
    _add_train(detector)
    # <detector calc_anchors goes here>
    _add_calc_anchors(detector)

    p = _command(sub, "partial", "darknet partial: the first N layers, seen = 0")
    p.add_argument("cfg", help="the network cfg")
    p.add_argument("weights", help="its weights")
    p.add_argument("output", help="the partial weights file to write (e.g. yolov4-tiny.conv.29)")
    p.add_argument("layers", type=int, help="how many layers to keep (N: layers 0..N-1)")
    _flavor(p)
    _add_darknet_flags(p, "partial", every_command_only=True)
    p.set_defaults(handler=_partial)
    p = _command(sub, "download", "official weights files: list them, or download by name with their exact size checked")
    p.add_argument("names", nargs="*", metavar="name", help="e.g. yolov4-tiny.weights darknet53.conv.74 (none: list the known files)")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="folder to download into (default: here)")
    p.set_defaults(handler=_download)
    _add_export_and_serve(sub)
    # <data tools: the `data` subcommand group goes here>
    _add_data_tools(sub)
    # <cfg tools: the `cfg` subcommand group goes here>
    _add_cfg_tools(sub)
    return parser


def _export(args: argparse.Namespace) -> int:
    model = dp.load_detector(None, args.cfg, args.weights, args.flavor)  # with the COCO names for 80 classes
    output = args.output or f"{args.weights.rsplit('/', 1)[-1].rsplit('.', 1)[0]}{'-decoded' if args.decoded else ''}.onnx"
    report = dp.export_onnx(
        model, output, decoded=args.decoded, opset=args.opset, dynamic_batch=args.batch is None,
        batch=args.batch or 1, exporter=args.exporter, check=not args.no_check,
    )
    print(report)
    return 0


def _serve(args: argparse.Namespace) -> int:
    model = dp.load_detector(None, args.cfg, args.weights, args.flavor, fast=True, half=args.half)
    if args.names:
        model.names = dp.read_names(args.names)
    dp.serve(model, args.host, args.port, args.max_bytes, max_pixels=args.max_pixels, decoder=args.decoder)
    return 0


def _add_export_and_serve(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "export", "write the network as ONNX (dynamic batch; raw heads or decoded boxes)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("cfg", help="the network cfg")
    p.add_argument("weights", help="its weights")
    p.add_argument("-o", "--output", help="the .onnx file (default: <weights name>[-decoded].onnx here)")
    p.add_argument("--decoded", action="store_true", help="output the candidate boxes (batch, boxes, 4+1+classes) instead of the heads")
    p.add_argument("--opset", type=int, default=dp.DEFAULT_OPSET, help=f"ONNX opset (default {dp.DEFAULT_OPSET})")
    p.add_argument("--batch", type=int, default=None, help="a fixed batch size (default: dynamic)")
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"], help="torch's ONNX exporter (default dynamo)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison with PyTorch")
    _flavor(p)
    p.set_defaults(handler=_export)

    p = _command(sub, "serve", "HTTP prediction service: POST /predict (an image) -> JSON detections, GET /health")
    p.add_argument("cfg", nargs="?", help="the network cfg (without a cfg and weights: the bundled Yolo-Fastest-1.1 COCO model)")
    p.add_argument("weights", nargs="?", help="its weights")
    p.add_argument("--names", help="class names, one per line (e.g. cfg/coco.names)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: a free one)")
    p.add_argument("--max-bytes", type=int, default=dp.DEFAULT_MAX_BYTES, help="largest request body in bytes (larger: 413)")
    p.add_argument("--max-pixels", type=int, default=dp.DEFAULT_MAX_PIXELS, help="largest decoded image, width·height (larger: 413)")
    p.add_argument("--half", action="store_true", help="bfloat16 inference (where the CPU supports it natively)")
    p.add_argument("--decoder", default="stb", choices=["stb", "opencv"], help="JPEG decoding: Darknet's stb_image pixels (default) or OpenCV (~40x faster)")
    _flavor(p)
    p.set_defaults(handler=_serve)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _names(value: str | None) -> list[str] | None:
    """``--names``: a .names file, or class names separated by commas."""
    if not value:
        return None
    return dp.read_names(value) if value.endswith(".names") or os.path.isfile(value) else _csv(value)


def _data_voc(args: argparse.Namespace) -> int:
    result = dp.voc_to_darknet(
        args.root, args.out, names=_names(args.names), sets=_csv(args.sets), train=_csv(args.train),
        valid=_csv(args.valid), offset=not args.no_offset, labels_beside=args.labels_beside,
        link_images=args.link_images, name=args.name,
    )
    print(result)
    return 0


def _data_coco(args: argparse.Namespace) -> int:
    print(dp.coco_to_darknet(args.instances, args.images, args.out, mapping=args.mapping, include_crowd=args.include_crowd))
    return 0


def _data_split(args: argparse.Namespace) -> int:
    print(dp.split_images(args.folder, args.out, valid_fraction=args.valid, seed=args.seed, recursive=args.recursive, names=args.names))
    return 0


def _data_check(args: argparse.Namespace) -> int:
    report = dp.check_dataset(args.sources, classes=args.classes, flavor=args.flavor, decode=args.decode)
    print(report.table() if args.quiet else report.format(args.max or None))
    return 1 if report.errors or (args.strict and report.warnings) else 0


def _data_stats(args: argparse.Namespace) -> int:
    stats = dp.dataset_stats(args.sources, classes=args.classes, names=_names(args.names), flavor=args.flavor)
    print(stats)
    if args.png:
        print(f"size histogram: {dp.draw_size_histogram(stats, args.png, bins=args.bins)}")
    return 0


def _add_data_tools(sub: argparse._SubParsersAction) -> None:
    data = _command(sub, "data", "data sets: VOC and COCO to Darknet labels, split, check, stats").add_subparsers(
        dest="tool", required=True, title="tools", metavar="tool")
    p = _command(data, "voc", "VOC XML + ImageSets -> labels, image lists, .names, .data (as voc_label.py)")
    p.add_argument("root", help="a VOC folder (Annotations/, ImageSets/Main/, JPEGImages/) or a VOCdevkit of VOC<year> folders")
    p.add_argument("-o", "--out", default=".", help="where the lists, .names, .data and backup/ go (default: here)")
    p.add_argument("--names", help="class names in label order: a .names file or a,b,c (default: VOC's 20, else the names found, sorted)")
    p.add_argument("--sets", help="ImageSets to convert (default: train,val,trainval,test where present)")
    p.add_argument("--train", help="sets in train.txt (default: train,val as voc_label.py)")
    p.add_argument("--valid", help="sets in valid.txt (default: test, else val)")
    p.add_argument("--no-offset", action="store_true", help="centre (xmin+xmax)/2 instead of voc_label.py's (xmin+xmax)/2 - 1")
    p.add_argument("--labels-beside", action="store_true", help="labels next to the images instead of <voc>/labels/")
    p.add_argument("--link-images", action="store_true", help="leave the data set untouched: link its images into OUT and label them there")
    p.add_argument("--name", help="stem of the .names/.data files (default: voc, or the folder name)")
    p.set_defaults(handler=_data_voc)
    p = _command(data, "coco", "COCO instances JSON -> labels (COCO ids to 0..79), image list, names")
    p.add_argument("instances", help="annotations/instances_<split>.json")
    p.add_argument("--images", help="the split's image folder (default: images/<split> or <split> beside annotations/)")
    p.add_argument("-o", "--out", help="where <split>.txt and the names go (default: the COCO folder)")
    p.add_argument("--mapping", default="auto", choices=["auto", "coco80", "sorted"], help="class numbering (default auto)")
    p.add_argument("--include-crowd", action="store_true", help="keep iscrowd=1 regions as boxes")
    p.set_defaults(handler=_data_coco)
    p = _command(data, "split", "seeded random train/valid split of an image folder (8:2)")
    p.add_argument("folder", help="the image folder (labels beside the images)")
    p.add_argument("-o", "--out", help="where train.txt and valid.txt go (default: the folder's parent)")
    p.add_argument("--valid", type=float, default=0.2, help="valid fraction (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="the split's seed (default 0)")
    p.add_argument("--recursive", action="store_true", help="include subfolders")
    p.add_argument("--names", help="a .names file: also write <names stem>.data")
    p.set_defaults(handler=_data_split)
    for verb, handler, text in (("check", _data_check, "every label file against its image; exit 1 on errors"),
                                ("stats", _data_stats, "boxes per class and a box size histogram (PNG)")):
        p = _command(data, verb, text)
        p.add_argument("sources", nargs="+", help=".data files, image lists, image folders or images")
        p.add_argument("--classes", type=int, help="number of classes (default: the .data file's)")
        p.add_argument("--flavor", default="alexeyab", choices=["alexeyab", "pjreddie"], help="whose label paths (default alexeyab)")
        p.set_defaults(handler=handler)
        if verb == "check":
            p.add_argument("--decode", action="store_true", help="decode every image (finds truncated files) instead of reading headers")
            p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
            p.add_argument("--max", type=int, default=20, help="findings shown per kind (0: all)")
            p.add_argument("--quiet", action="store_true", help="only the summary table")
        else:
            p.add_argument("--names", help="class names: a .names file or a,b,c (default: the .data file's)")
            p.add_argument("--png", help="write the size histogram here")
            p.add_argument("--bins", type=int, default=30, help="histogram bins, about (default 30)")


def _detector_calc_anchors(args: argparse.Namespace) -> int:
    report = dp.calc_anchors(args.data, args.num_of_clusters, args.width, args.height, seed=args.seed, restarts=args.restarts)
    for problem in report.problems:
        print(f"darknetpy: warning: {problem}", file=sys.stderr)
    print(report)
    print(report.note())
    return 0


def _add_calc_anchors(detector: argparse._SubParsersAction) -> None:
    p = _command(detector, "calc_anchors", "anchors by k-means (1 - IoU) on the train list's boxes; writes anchors.txt", darknet=True)
    p.add_argument("data", help="the .data file (train= list, classes=)")
    p.add_argument("-num_of_clusters", type=int, default=5, help="number of anchors (Darknet's default 5)")
    p.add_argument("-width", type=int, default=-1, help="network width the anchors are for")
    p.add_argument("-height", type=int, default=-1, help="network height the anchors are for")
    p.add_argument("--seed", type=int, default=0, help="srand() seed of the initial centres (default 0; Darknet uses the time)")
    p.add_argument("--restarts", type=int, default=dp.DEFAULT_RESTARTS,
                   help=f"k-means runs, the best average IoU kept (default {dp.DEFAULT_RESTARTS}; 1: Darknet's single run)")
    _add_darknet_flags(p, "calc_anchors")
    p.set_defaults(handler=_detector_calc_anchors)


def _cfg_classes(args: argparse.Namespace) -> int:
    edited = dp.set_classes(args.input, args.classes, max_batches=args.max_batches)
    edited.write(args.output)
    for change in edited.changes:
        print(change)
    print(f"Wrote {args.output} ({len(edited.changes)} changes, comments kept)")
    return 0


def _cfg_diff(args: argparse.Namespace) -> int:
    print(dp.diff_cfg(args.a, args.b) or "no differences (as Darknet reads them)")
    return 0


def _add_cfg_tools(sub: argparse._SubParsersAction) -> None:
    cfg = _command(sub, "cfg", "cfg edits: classes for a custom data set, diff").add_subparsers(dest="tool", required=True, title="tools", metavar="tool")
    p = _command(cfg, "classes", "set classes in every head and the filters of the conv feeding it")
    p.add_argument("classes", type=int, help="number of classes")
    p.add_argument("input", help="the cfg to start from")
    p.add_argument("output", help="the cfg to write (comments and layout kept)")
    p.add_argument("--max-batches", nargs="?", type=int, const=True, default=False, metavar="N",
                   help="also set max_batches (alone: max(2000*classes, 6000), AlexeyAB's rule) and steps at 80%% and 90%%")
    p.set_defaults(handler=_cfg_classes)
    p = _command(cfg, "diff", "the keys that differ between two cfgs, by section (as Darknet reads them)")
    p.add_argument("a", help="the first cfg")
    p.add_argument("b", help="the second cfg")
    p.set_defaults(handler=_cfg_diff)


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"darknetpy: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _format_warning
    for line in _notes(args):
        print(line, file=sys.stderr)
    try:
        return args.handler(args)
    except dp.DarknetError as err:
        print(f"darknetpy: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``darknetpy`` command: Darknet's verbs over the library (each handler only wires).

Every name used here comes from ``darknetpy/__init__.py``. A :class:`DarknetError` prints one line
and exits with status 2; anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import json
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


def _detector_test(args: argparse.Namespace) -> int:
    data, cfg, weights, inputs = _split_model_args(args.items)
    model = dp.load_detector(data, cfg, weights, args.flavor, fast=True, half=args.half)
    options = dp.DetectorTest(
        thresh=args.thresh, hier_thresh=args.hier, nms=args.nms, nms_kind=args.nms_kind, letterbox=True if args.letter_box else None,
        ext_output=args.ext_output, save_txt=args.save_txt, out_json=args.out, out_dir=args.out_dir,
        out_filename=args.out_filename, batch_size=args.batch,
    )
    dp.run_detector_test(model, inputs, options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="darknetpy", description="Darknet models as PyTorch modules.")
    parser.add_argument("--version", action="version", version=f"darknetpy {dp.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="check this port against Darknet dumps (case folders)")
    p.add_argument("cases", nargs="+", help="case folders (shared/golden/* format)")
    p.add_argument("--only", help="comma list of checks: " + ",".join(dp.CHECKS))
    p.set_defaults(handler=_verify)

    p = sub.add_parser("summary", help="Darknet's layer table of a cfg (no weights needed)")
    p.add_argument("cfg")
    p.add_argument("--json", action="store_true", help="layers and weights size as JSON")
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"])
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.set_defaults(handler=_summary)

    p = sub.add_parser("convert", help=".weights <-> .pt (the .pt carries the cfg and the header)")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--cfg", help="the cfg of a .weights source")
    p.set_defaults(handler=_convert)

    detector = sub.add_parser("detector", help="Darknet's detector verbs").add_subparsers(dest="verb", required=True)
    p = detector.add_parser("test", help="detect objects in images, folders, image lists and videos")
    p.add_argument("items", nargs="+", metavar="[data] [cfg weights] input", help="inputs; without a cfg the bundled Yolo-Fastest-1.1 COCO model")
    p.add_argument("-thresh", type=float, default=None, help="probability threshold (AlexeyAB .25, pjreddie .5)")
    p.add_argument("-hier", type=float, default=0.5, help="hierarchical threshold (YOLO9000 trees)")
    p.add_argument("-nms", type=float, default=0.45, help="NMS threshold (0: off)")
    p.add_argument("-nms_kind", default=None, choices=["default", "greedynms", "diounms"], help="NMS kind (default: the cfg's last layer)")
    p.add_argument("-letter_box", action="store_true", help="letterbox the input (pjreddie always does)")
    p.add_argument("-ext_output", action="store_true", help="print each box in pixels")
    p.add_argument("-save_txt", metavar="FILE", help="write 'class prob objectness x y w h' lines")
    p.add_argument("-out", metavar="FILE", help="write the detections of every image as JSON")
    p.add_argument("-out_dir", metavar="DIR", help="annotated images go here (default predictions.jpg, or predictions/ for several)")
    p.add_argument("-out_filename", metavar="FILE", help="annotated video output (for video inputs)")
    p.add_argument("-dont_show", action="store_true", help="accepted for Darknet compatibility (nothing is shown)")
    p.add_argument("-batch", type=int, default=4, help="images per forward pass")
    p.add_argument("--half", "-half", action="store_true", help="bfloat16 inference (where the CPU supports it natively)")
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"])
    p.set_defaults(handler=_detector_test)
    # <detector map/valid: evaluation subcommands go here>
    # <detector calc_anchors goes here>

    p = sub.add_parser("partial", help="darknet partial: the first N layers, seen = 0")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("output")
    p.add_argument("layers", type=int)
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"])
    p.set_defaults(handler=_partial)
    _add_export_and_serve(sub)
    # <data tools: the `data` subcommand group goes here>
    # <cfg tools: the `cfg` subcommand group goes here>
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
    p = sub.add_parser("export", help="write the network as ONNX (dynamic batch; raw heads or decoded boxes)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("-o", "--output", help="the .onnx file (default: <weights name>[-decoded].onnx here)")
    p.add_argument("--decoded", action="store_true", help="output the candidate boxes (batch, boxes, 4+1+classes) instead of the heads")
    p.add_argument("--opset", type=int, default=dp.DEFAULT_OPSET, help=f"ONNX opset (default {dp.DEFAULT_OPSET})")
    p.add_argument("--batch", type=int, default=None, help="a fixed batch size (default: dynamic)")
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"], help="torch's ONNX exporter (default dynamo)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison with PyTorch")
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"])
    p.set_defaults(handler=_export)

    p = sub.add_parser("serve", help="HTTP prediction service: POST /predict (an image) -> JSON detections, GET /health")
    p.add_argument("cfg", nargs="?", help="without a cfg and weights: the bundled Yolo-Fastest-1.1 COCO model")
    p.add_argument("weights", nargs="?")
    p.add_argument("--names", help="class names, one per line (e.g. cfg/coco.names)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: a free one)")
    p.add_argument("--max-bytes", type=int, default=dp.DEFAULT_MAX_BYTES, help="largest request body in bytes (larger: 413)")
    p.add_argument("--max-pixels", type=int, default=dp.DEFAULT_MAX_PIXELS, help="largest decoded image, width·height (larger: 413)")
    p.add_argument("--half", action="store_true", help="bfloat16 inference (where the CPU supports it natively)")
    p.add_argument("--decoder", default="stb", choices=["stb", "opencv"], help="JPEG decoding: Darknet's stb_image pixels (default) or OpenCV (~40x faster)")
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"])
    p.set_defaults(handler=_serve)


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"darknetpy: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _format_warning
    try:
        return args.handler(args)
    except dp.DarknetError as err:
        print(f"darknetpy: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

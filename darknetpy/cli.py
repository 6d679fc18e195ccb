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

    p = sub.add_parser("partial", help="darknet partial: the first N layers, seen = 0")
    p.add_argument("cfg")
    p.add_argument("weights")
    p.add_argument("output")
    p.add_argument("layers", type=int)
    p.add_argument("--flavor", default=None, choices=["alexeyab", "pjreddie"])
    p.set_defaults(handler=_partial)
    return parser


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

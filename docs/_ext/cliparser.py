"""The parser that cli.md renders: ``darknetpy.cli.build_parser()``, built when the docs are built.

sphinx-argparse reads every help text as reStructuredText, where plain text such as
``comp4_det_test_`` (a trailing underscore) or ``*`` is markup. The help texts are written for a
terminal, so their markup characters are escaped here; nothing else is changed, and nothing of the
parser is copied into the docs.
"""
from __future__ import annotations

import argparse
import re

from darknetpy.cli import build_parser

_MARKUP = re.compile(r"([\\`*_|])")


def _escape(text: str | None) -> str | None:
    return _MARKUP.sub(r"\\\1", text) if isinstance(text, str) and text != argparse.SUPPRESS else text


def _escape_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = _escape(parser.description)
    parser.epilog = _escape(parser.epilog)
    for action in parser._actions:
        action.help = _escape(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the subcommands' one-line help
                choice.help = _escape(choice.help)
            for sub in dict.fromkeys(action.choices.values()):
                _escape_parser(sub)


def parser() -> argparse.ArgumentParser:
    """``build_parser()`` with its help texts escaped for reStructuredText."""
    p = build_parser()
    _escape_parser(p)
    return p

"""Section name to layer class: Darknet's ``string_to_layer_type`` table without its if/else chain."""
from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ["register_section", "lookup", "registered_sections"]

_SECTIONS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_section(*names: str) -> Callable[[T], T]:
    """Class decorator: the first name is Darknet's type name, the rest are aliases (``conv``)."""

    def decorate(cls: T) -> T:
        for name in names:
            if name in _SECTIONS:
                raise ValueError(f"section [{name}] registered twice ({_SECTIONS[name].__name__}, {cls.__name__})")
            _SECTIONS[name] = cls
        cls.section_type = names[0]  # type: ignore[attr-defined]
        cls.section_names = tuple(names)  # type: ignore[attr-defined]
        return cls

    return decorate


def lookup(name: str) -> type | None:
    """The layer class for a section name, or None."""
    return _SECTIONS.get(name)


def registered_sections() -> dict[str, type]:
    """A copy of the table, for tests and the README's table."""
    return dict(_SECTIONS)

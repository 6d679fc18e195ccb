"""``[softmax]`` / ``[soft]``: softmax over groups of the flattened input (or over a class tree).

Darknet: ``src/parser.c:parse_softmax``, ``src/softmax_layer.c:make_softmax_layer/forward_softmax_layer``,
``src/blas.c:softmax_cpu/softmax``, ``src/tree.c:read_tree`` (darknet-reference.md §1.5, §3.4). The two
forks agree on every line used here:

- keys ``groups``=1, ``temperature``=1, ``tree``, ``spatial``=0, ``noloss``=0;
- ``l.outputs = l.inputs``; ``l.out_c/out_h/out_w`` are never set (a softmax reports 0×0×0), so the
  output is flat ``(B, outputs)``;
- CPU forward: ``softmax_cpu(input, inputs/groups, batch, inputs, groups, inputs/groups, 1, T, output)``,
  i.e. each image's vector is cut into ``groups`` contiguous pieces and each piece gets
  ``exp(x/T − max/T) / Σ``; with a tree, each tree group (a run of consecutive tree lines with the same
  parent) is one contiguous piece, at temperature ``T``;
- ``spatial`` is read but only the GPU code uses it (a per-pixel channel softmax there); the CPU forward,
  which this port follows, ignores it;
- the cost (training, with a truth and without ``noloss``) is ``softmax_x_ent_cpu``: error
  ``−log p`` where the truth is non-zero, delta ``t − p``, cost ``Σ error`` (:func:`softmax_cross_entropy`).

Deliberate differences: ``inputs % groups != 0`` (Darknet's ``assert``), ``groups < 1`` and
``temperature = 0`` (NaN everywhere in Darknet) are errors; a missing tree file is a :class:`CfgError`
(Darknet's ``read_tree`` dereferences a NULL ``FILE*`` and segfaults); a tree must have as many nodes
as the values it is applied to (Darknet would read past the end, or leave the rest unnormalised).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..cfg import Section
from ..errors import BadValueError, CfgError, ShapeError
from ..registry import register_section
from .base import BuildContext, DarknetLayer

__all__ = [
    "Softmax",
    "SoftmaxTree",
    "darknet_softmax",
    "find_data_file",
    "read_map",
    "read_tree",
    "softmax_cross_entropy",
    "tree_softmax",
]


# ---- the tree file (src/tree.c:read_tree) ---------------------------------------------------
@dataclass(frozen=True)
class SoftmaxTree:
    """Darknet's ``tree``: one node per line ``name parent``; a group is a run of lines with one parent."""

    names: tuple[str, ...]
    parent: tuple[int, ...]
    group: tuple[int, ...]  # t.group[n]: the index (into group_offset/group_size) of node n's group
    group_offset: tuple[int, ...]
    group_size: tuple[int, ...]
    path: str = ""

    @property
    def n(self) -> int:
        return len(self.parent)

    @property
    def groups(self) -> int:
        return len(self.group_size)

    @property
    def leaf(self) -> tuple[int, ...]:
        is_leaf = [1] * self.n
        for p in self.parent:
            if 0 <= p < self.n:
                is_leaf[p] = 0
        return tuple(is_leaf)

    def group_index(self) -> list[int]:
        """For each node, the index of its group in ``group_offset``/``group_size``."""
        return list(self.group)


def parse_tree_text(text: str, path: str = "") -> SoftmaxTree:
    """``read_tree`` on a file's text, line for line (``sscanf(line, "%s %d")``, parent -1 when absent)."""
    names: list[str] = []
    parent: list[int] = []
    group: list[int] = []
    offsets: list[int] = []
    sizes: list[int] = []
    last_parent = -1
    group_size = 0
    groups = 0
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # fgetl returns no line after the final newline
    for n, line in enumerate(lines):
        fields = line.split()
        name = fields[0] if fields else ""
        parsed = _scan_int(fields[1]) if len(fields) > 1 else None
        p = -1 if parsed is None else parsed
        names.append(name)
        parent.append(p)
        if p != last_parent:
            groups += 1
            offsets.append(n - group_size)
            sizes.append(group_size)
            group_size = 0
            last_parent = p
        group.append(groups)
        group_size += 1
    n = len(names)
    offsets.append(n - group_size)
    sizes.append(group_size)
    return SoftmaxTree(tuple(names), tuple(parent), tuple(group), tuple(offsets), tuple(sizes), path)


def _scan_int(text: str) -> int | None:
    """C's ``%d``/``atoi`` on a token: an optional sign and the digits after it (None without digits)."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def find_data_file(sec: Section, key: str, value: str) -> Path | None:
    """Where Darknet's ``fopen(value)`` would find a data file named in the cfg.

    Darknet opens the path relative to its working directory (a checkout with ``cfg/`` and ``data/``
    side by side). Here: the path as given (working directory), then relative to the cfg's folder, then
    relative to the folder above it.
    """
    p = Path(value)
    candidates = [p]
    if not p.is_absolute() and sec.path:
        here = Path(sec.path).resolve().parent
        candidates += [here / p, here.parent / p]
    for c in candidates:
        if c.is_file():
            return c
    return None


def _not_found(sec: Section, key: str, value: str, what: str) -> CfgError:
    where = [value]
    if not Path(value).is_absolute() and sec.path:
        here = Path(sec.path).resolve().parent
        where += [os.fspath(here / value), os.fspath(here.parent / value)]
    return sec.error(
        f"{what} file not found (looked for {', '.join(repr(w) for w in where)}); Darknet cannot build this "
        f"layer without it (its read_tree/read_map would crash or exit)",
        key,
        CfgError,
    )


def read_tree(sec: Section, key: str = "tree") -> SoftmaxTree | None:
    """The ``tree=`` file of a section (None when the key is absent); a clear error when it is missing."""
    value = sec.get_str(key)
    if value is None:
        return None
    path = find_data_file(sec, key, value)
    if path is None:
        raise _not_found(sec, key, value, "softmax tree")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise sec.error(f"cannot read the softmax tree file: {err}", key, CfgError) from None
    tree = parse_tree_text(text, os.fspath(path))
    if tree.n == 0:
        raise sec.error("the softmax tree file is empty", key, BadValueError)
    return tree


def read_map(sec: Section, key: str = "map") -> tuple[int, ...] | None:
    """``read_map``: one ``atoi`` per line of the ``map=`` file (None when the key is absent)."""
    value = sec.get_str(key)
    if value is None:
        return None
    path = find_data_file(sec, key, value)
    if path is None:
        raise _not_found(sec, key, value, "class map")
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    values = []
    for line in lines:
        parsed = _scan_int(line.strip())
        values.append(0 if parsed is None else parsed)  # atoi gives 0 for a line without a number
    return tuple(values)


# ---- the maths ---------------------------------------------------------------------------
def darknet_softmax(x: Tensor, dim: int = -1, temperature: float = 1.0) -> Tensor:
    """``src/blas.c:softmax``: ``e = exp(x/T − largest/T)``, ``out = e / Σe`` (in that order)."""
    largest = x.detach().amax(dim=dim, keepdim=True)  # a shift: no gradient flows through it
    if temperature == 1.0:
        e = torch.exp(x - largest)
    else:
        e = torch.exp(x / temperature - largest / temperature)
    return e / e.sum(dim=dim, keepdim=True)


def tree_softmax(x: Tensor, tree: SoftmaxTree, temperature: float = 1.0, dim: int = -1) -> Tensor:
    """``softmax_tree``: a softmax over each tree group (a contiguous run of ``dim``), at temperature T.

    ``x.shape[dim]`` must equal ``tree.n``.
    """
    x = x.movedim(dim, -1)
    lead = x.shape[:-1]
    flat = x.reshape(-1, tree.n)
    index = torch.tensor(tree.group_index(), device=x.device, dtype=torch.long).expand_as(flat)
    groups = tree.groups
    src = flat / temperature if temperature != 1.0 else flat
    largest = torch.full((flat.shape[0], groups), float("-inf"), device=x.device, dtype=x.dtype)
    largest = largest.scatter_reduce(1, index, flat.detach(), reduce="amax", include_self=True)
    shift = largest / temperature if temperature != 1.0 else largest
    e = torch.exp(src - shift.gather(1, index))
    total = torch.zeros((flat.shape[0], groups), device=x.device, dtype=x.dtype).scatter_add(1, index, e)
    out = e / total.gather(1, index)
    return out.reshape(*lead, tree.n).movedim(-1, dim)


def softmax_cross_entropy(output: Tensor, truth: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``softmax_x_ent_cpu``: ``(delta, error, cost)`` with ``error = t ? −log p : 0``, ``delta = t − p``."""
    output = output.reshape(output.shape[0], -1)
    truth = truth.reshape(output.shape).to(output.dtype)
    error = torch.where(truth != 0, -torch.log(output), torch.zeros_like(output))
    delta = truth - output
    return delta, error, error.sum()


# ---- the layer ---------------------------------------------------------------------------
@register_section("softmax", "soft")
class Softmax(DarknetLayer):
    """Softmax over ``groups`` equal pieces of each image's flat input, or over a class tree."""

    has_cost = True

    def __init__(self, sec: Section, ctx: BuildContext) -> None:
        super().__init__(sec, ctx)
        self.groups = sec.get_int("groups", 1)
        if self.groups < 1:
            raise sec.error("must be at least 1", "groups", BadValueError)
        inputs = ctx.inputs
        if inputs % self.groups:
            raise sec.error(
                f"the layer before gives {inputs} values, which do not split into groups={self.groups} "
                f"(Darknet asserts inputs % groups == 0)",
                "groups",
                ShapeError,
            )
        self.temperature = sec.get_float("temperature", 1.0)
        if self.temperature == 0:
            raise sec.error("must not be 0 (Darknet divides by it)", "temperature", BadValueError)
        self.tree = read_tree(sec)
        if self.tree is not None and self.tree.n != inputs:
            raise sec.error(
                f"the tree has {self.tree.n} nodes but the layer before gives {inputs} values; they must be equal",
                "tree",
                ShapeError,
            )
        self.spatial = sec.get_float("spatial", 0.0)  # GPU only (forward_softmax_layer_gpu)
        self.noloss = sec.get_int("noloss", 0)
        self.w, self.h, self.c = ctx.in_shape[2], ctx.in_shape[1], ctx.in_shape[0]
        self.out_shape = (0, 0, 0)
        self.outputs = inputs

    def forward(self, x: Tensor, cache: list) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        if self.tree is not None:
            return tree_softmax(flat, self.tree, self.temperature)
        if self.groups == 1:
            return darknet_softmax(flat, -1, self.temperature)
        b = flat.shape[0]
        y = darknet_softmax(flat.reshape(b, self.groups, -1), -1, self.temperature)
        return y.reshape(b, -1)

    def cost(self, output: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
        """Darknet's ``l.delta`` and ``l.cost`` for a truth (zero with ``noloss``)."""
        delta, _, cost = softmax_cross_entropy(output, truth)
        if self.noloss:
            return torch.zeros_like(delta), cost.new_zeros(())
        return delta, cost

    def describe(self) -> tuple[str, str]:
        return "", f"{self.outputs}"

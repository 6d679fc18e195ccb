"""Check this port against a dump made by a Darknet build (a "case" folder).

A case folder (format: ``shared/golden/README.md``) holds ``model.cfg``, ``model.weights``,
``case.json`` and ``expected.npz`` with what Darknet computed; optionally ``model.conv.N`` (or
``model.conv.N.sha256``: its sha256 and size, ``sha256 <hex>`` and ``size <bytes>`` lines) and
``detections.txt``. Anyone with their own Darknet build can dump such a folder for their model
and run ``darknetpy verify`` on it.

Checks: ``fwd`` (every ``fwd_out_*``), ``train`` (every ``train_in_*``), ``loss``
(``train_delta_*`` and the costs), ``grad`` (head conv gradients), ``detect`` (``detections.txt``)
and ``weights`` (byte round trip and ``model.conv.N``). A check whose capability does not exist
yet reports ``skipped``; one the case has no data for reports ``n/a``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .errors import DarknetError, ParityError
from .model import Darknet

__all__ = ["CHECKS", "TOLERANCES", "CheckResult", "Case", "same_bytes", "verify_case", "verify_paths", "format_result"]

# Tolerances, all relative to the largest magnitude of the reference array (golden README).
TOLERANCES = {
    # README: a float32 forward matched within 2e-5 abs, 3e-5 of the largest magnitude on the deepest case.
    "fwd": 3e-5,
    # With Darknet's sequential float32 batch-norm sums emulated (exact sums differ by up to 1e-2).
    "train": 1e-4,
    # README: deltas within 1e-6 (we check 1e-5 of the largest magnitude) and costs to 1e-4 relative.
    "loss": 1e-5,
    "cost": 1e-4,
    # README: head conv gradients within 3e-3 of the largest magnitude (5e-3 accepted by the issue).
    "grad": 5e-3,
    # detections.txt: probability and box within 1e-4.
    "detect": 1e-4,
}

PASSED, FAILED, SKIPPED, NA = "passed", "failed", "skipped", "n/a"


@dataclass
class CheckResult:
    """One check of one case."""

    case: str
    check: str
    status: str
    max_error: float | None = None
    tolerance: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAILED


@dataclass
class Case:
    """A dump folder, loaded lazily."""

    path: Path
    info: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: "str | os.PathLike") -> "Case":
        p = Path(path)
        if not (p / "case.json").is_file():
            raise ParityError(f"{p}: not a case folder (no case.json)")
        for name in ("model.cfg", "model.weights", "expected.npz"):
            if not (p / name).is_file():
                raise ParityError(f"{p}: missing {name}")
        return cls(p, json.loads((p / "case.json").read_text()))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def flavor(self) -> str:
        ref = self.info.get("reference", "").lower()
        return "pjreddie" if ref.startswith("pjreddie") else "alexeyab"

    def expected(self) -> dict[str, np.ndarray]:
        if "_expected" not in self.__dict__:
            with np.load(self.path / "expected.npz") as data:
                self.__dict__["_expected"] = {k: data[k] for k in data.files}
        return self.__dict__["_expected"]

    def model(self, train: bool = False) -> Darknet:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Darknet(self.path / "model.cfg", self.path / "model.weights", flavor=self.flavor)
        return model.train(train)


def _max_rel(got: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    err = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()) if ref.size else 0.0
    return err / scale if scale > 0 else err


def _compare_layers(case: Case, check: str, prefix: str, outputs: Callable[[], Sequence[torch.Tensor]], offset: int) -> CheckResult:
    exp = case.expected()
    keys = sorted((k for k in exp if k.startswith(prefix)), key=lambda k: int(k[len(prefix):]))
    if not keys:
        return CheckResult(case.name, check, NA, detail=f"no {prefix}* arrays")
    outs = outputs()
    worst, where = 0.0, ""
    for key in keys:
        i = int(key[len(prefix):])
        got = outs[i + offset].detach().reshape(-1).numpy()
        ref = exp[key].reshape(-1)
        if got.shape != ref.shape:
            return CheckResult(case.name, check, FAILED, detail=f"{key}: {got.size} values, Darknet has {ref.size}")
        err = _max_rel(got, ref)
        if err >= worst:
            worst, where = err, key
    tol = TOLERANCES[check]
    status = PASSED if worst <= tol else FAILED
    return CheckResult(case.name, check, status, worst, tol, f"{len(keys)} layers, worst {where}")


def check_fwd(case: Case) -> CheckResult:
    """Inference-mode outputs of the dumped layers (``fwd_out_<i>``)."""
    x = torch.from_numpy(case.expected()["input"])

    def run() -> list[torch.Tensor]:
        with torch.no_grad():
            return case.model().trace(x)

    return _compare_layers(case, "fwd", "fwd_out_", run, 0)


def check_train(case: Case) -> CheckResult:
    """Training-mode input of each head (``train_in_<i>`` = output of layer i-1), dropout off."""
    x = torch.from_numpy(case.expected()["input"])

    def run() -> list[torch.Tensor]:
        model = case.model(train=True).emulate_darknet_sums().set_dropout(0.0)
        with torch.no_grad():
            return model.trace(x)

    return _compare_layers(case, "train", "train_in_", run, -1)


def _partial_references(folder: Path) -> list[tuple[int, str, Path]]:
    """``(cutoff, name, path)`` of each ``model.conv.N`` of a case, as the file or as ``model.conv.N.sha256``."""
    found = []
    for path in sorted(folder.glob("model.conv.*")):
        m = re.fullmatch(r"(model\.conv\.(\d+))(\.sha256)?", path.name)
        if m:
            found.append((int(m[2]), m[1], path))
    return found


def same_bytes(data: bytes, reference: Path) -> bool:
    """``data`` equals the file, or has the sha256 and size a ``.sha256`` digest file gives for it."""
    if reference.suffix != ".sha256":
        return data == reference.read_bytes()
    try:
        fields = dict(line.split(None, 1) for line in reference.read_text().splitlines() if line.strip())
        return hashlib.sha256(data).hexdigest() == fields["sha256"].strip().lower() and len(data) == int(fields["size"])
    except (KeyError, ValueError):
        raise ParityError(f"{reference}: not a digest file (it needs lines 'sha256 <hex>' and 'size <bytes>')") from None


def check_weights(case: Case) -> CheckResult:
    """Load then save gives the same bytes; saving with a cutoff gives ``model.conv.N`` (or its sha256)."""
    model = case.model()
    original = (case.path / "model.weights").read_bytes()
    details = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.weights"
        model.save_weights(out)
        if out.read_bytes() != original:
            return CheckResult(case.name, "weights", FAILED, detail="load + save does not give back model.weights byte for byte")
        details.append("round trip")
        for cutoff, name, reference in _partial_references(case.path):
            model.save_weights(out, cutoff=cutoff)
            if not same_bytes(out.read_bytes(), reference):
                return CheckResult(case.name, "weights", FAILED, detail=f"save with cutoff {cutoff} differs from {reference.name}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                again = Darknet(case.path / "model.cfg", out, flavor=case.flavor)  # the same bytes as Darknet's file
            for a, b in zip(model.layers[:cutoff], again.layers[:cutoff]):
                for ta, tb in zip(a.weight_tensors(), b.weight_tensors()):
                    if not torch.equal(ta, tb):
                        return CheckResult(case.name, "weights", FAILED, detail=f"{name} loads different values into layer {a.index}")
            details.append(name if reference.name == name else f"{name} (sha256)")
    return CheckResult(case.name, "weights", PASSED, 0.0, 0.0, ", ".join(details) + " identical")


def _capability_missing(case: Case, check: str, needs: str, issue: str) -> CheckResult:
    return CheckResult(case.name, check, SKIPPED, detail=f"{needs} not implemented yet ({issue})")


def check_loss(case: Case) -> CheckResult:
    exp = case.expected()
    if not any(k.startswith("train_delta_") for k in exp):
        return CheckResult(case.name, "loss", NA, detail="no train_delta_* arrays")
    try:
        from .loss import verify_loss  # type: ignore[attr-defined]
    except ImportError:
        return _capability_missing(case, "loss", "Darknet losses", "issue: losses")
    return verify_loss(case, TOLERANCES)


def check_grad(case: Case) -> CheckResult:
    exp = case.expected()
    if not any(k.startswith("train_wgrad_") for k in exp):
        return CheckResult(case.name, "grad", NA, detail="no train_wgrad_* arrays (region cases have none)")
    try:
        from .loss import verify_grad  # type: ignore[attr-defined]
    except ImportError:
        return _capability_missing(case, "grad", "Darknet losses", "issue: losses")
    return verify_grad(case, TOLERANCES)


def check_detect(case: Case) -> CheckResult:
    if not (case.path / "detections.txt").is_file():
        return CheckResult(case.name, "detect", NA, detail="no detections.txt")
    try:
        from .detect import verify_detections  # type: ignore[attr-defined]
    except ImportError:
        return _capability_missing(case, "detect", "box decoding and NMS", "issue: detection")
    return verify_detections(case, TOLERANCES)


CHECKS: dict[str, Callable[[Case], CheckResult]] = {
    "fwd": check_fwd,
    "train": check_train,
    "loss": check_loss,
    "grad": check_grad,
    "detect": check_detect,
    "weights": check_weights,
}


def verify_case(path: "str | os.PathLike", only: Iterable[str] | None = None) -> list[CheckResult]:
    """Run the checks (all, or ``only``) on one case folder."""
    case = Case.open(path)
    names = list(CHECKS) if only is None else list(only)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise DarknetError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    results = []
    for name in names:
        try:
            results.append(CHECKS[name](case))
        except DarknetError as err:
            results.append(CheckResult(case.name, name, FAILED, detail=str(err)))
    return results


def verify_paths(paths: Sequence["str | os.PathLike"], only: Iterable[str] | None = None) -> tuple[list[CheckResult], list[str]]:
    """Verify every case folder among ``paths``; other paths are listed as ignored."""
    results, ignored = [], []
    for p in paths:
        if not (Path(p) / "case.json").is_file():
            ignored.append(os.fspath(p))
            continue
        results.extend(verify_case(p, only))
    return results, ignored


def format_result(r: CheckResult) -> str:
    """One line: case, check, status, maximal error against its tolerance, detail."""
    err = ""
    if r.max_error is not None:
        err = f"max err {r.max_error:.2e}" + (f" (tol {r.tolerance:.0e})" if r.tolerance else "")
    return f"{r.case:<28s} {r.check:<8s} {r.status:<8s} {err:<28s} {r.detail}".rstrip()

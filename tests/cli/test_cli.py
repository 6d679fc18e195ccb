"""The command line: exit codes, output formats and the files it writes."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

import darknetpy
from darknetpy.cli import main

from ..conftest import GOLDEN, ROOT, ZOO, zoo_expected

pytestmark = pytest.mark.cli


def test_cli_uses_only_the_public_api():
    tree = ast.parse((ROOT / "darknetpy" / "cli.py").read_text())
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "dp"}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("darknetpy")]
    assert not imports
    assert used - set(darknetpy.__all__) == set()


def test_verify_prints_one_line_per_check_and_a_total(capsys):
    status = main(["verify", str(GOLDEN / "pjreddie-yolov3-tiny-slim"), "--only", "fwd,weights,detect"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0].split()[:3] == ["pjreddie-yolov3-tiny-slim", "fwd", "passed"]
    assert "max err" in out[0]
    assert out[2].split()[1:3] == ["detect", "n/a"]
    assert out[-1] == "2 passed, 0 failed, 0 skipped, 1 n/a"


def test_verify_fails_with_status_1_on_a_wrong_model(tmp_path, capsys):
    case = tmp_path / "case"
    case.mkdir()
    src = GOLDEN / "pjreddie-yolov3-tiny-slim"
    for name in ("case.json", "model.cfg", "expected.npz"):
        (case / name).write_bytes((src / name).read_bytes())
    data = bytearray((src / "model.weights").read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # one weight of the last conv changed
    (case / "model.weights").write_bytes(bytes(data))
    assert main(["verify", str(case), "--only", "fwd"]) == 1
    assert "fwd      failed" in capsys.readouterr().out


def test_verify_ignores_paths_that_are_not_cases(capsys):
    assert main(["verify", str(GOLDEN / "README.md"), str(GOLDEN / "pjreddie-yolov3-tiny-slim"), "--only", "weights"]) == 0
    assert "not a case folder" in capsys.readouterr().err


def test_summary_json_matches_expected(capsys):
    name = "alexeyab/yolov4-tiny.cfg"
    assert main(["summary", "--json", str(ZOO / name)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [[l["type"], l["out_c"], l["out_h"], l["out_w"]] for l in got["layers"]] == zoo_expected()[name]["layers"]
    assert got["weights_bytes"] == 24_251_276


def test_summary_of_the_bundled_yolov3_cfg_reports_the_official_size(capsys):
    assert main(["summary", str(ROOT / "cfg" / "yolov3.cfg")]) == 0
    out = capsys.readouterr().out
    assert "Weights file: 248,007,048 bytes" in out
    assert "Total BFLOPS 65.879" in out


def test_partial_reproduces_darknet_partial(tmp_path):
    case = GOLDEN / "pjreddie-yolov3-slim"
    out = tmp_path / "model.conv.74"
    assert main(["partial", str(case / "model.cfg"), str(case / "model.weights"), str(out), "74"]) == 0
    assert out.read_bytes() == (case / "model.conv.74").read_bytes()


def test_convert_to_pt_and_back_gives_the_original_bytes(tmp_path):
    case = GOLDEN / "alexeyab-yolo-fastest-1.1"
    pt, back = tmp_path / "m.pt", tmp_path / "m.weights"
    assert main(["convert", str(case / "model.weights"), str(pt), "--cfg", str(case / "model.cfg")]) == 0
    (case_cfg := tmp_path / "gone.cfg").write_text("")  # the .pt alone is enough
    assert main(["convert", str(pt), str(back)]) == 0
    assert back.read_bytes() == (case / "model.weights").read_bytes()
    model, layers = darknetpy.load_checkpoint(pt)
    assert layers == len(model.layers) == 131 and model.seen == 14231680
    del case_cfg


def test_convert_keeps_a_partial_file_partial(tmp_path):
    case = GOLDEN / "pjreddie-yolov3-tiny-slim"
    pt, back = tmp_path / "p.pt", tmp_path / "p.weights"
    with pytest.warns(UserWarning, match="partial"):
        assert main(["convert", str(case / "model.conv.15"), str(pt), "--cfg", str(case / "model.cfg")]) == 0
    assert main(["convert", str(pt), str(back)]) == 0
    assert back.read_bytes() == (case / "model.conv.15").read_bytes()


def test_errors_print_one_line_and_exit_2(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "missing.cfg")]) == 2
    err = capsys.readouterr().err
    assert err == f"darknetpy: {tmp_path / 'missing.cfg'}: cfg file not found\n"


@pytest.mark.parametrize("command", [["darknetpy"], [sys.executable, "-m", "darknetpy"]])
def test_entry_points_run(command):
    result = subprocess.run(command + ["--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("darknetpy ")

"""The command line: exit codes, output formats and the files it writes."""
from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys

import pytest

import darknetpy
from darknetpy.cli import build_parser, main

from ..conftest import GOLDEN, ROOT, ZOO, golden_file, needs_shared, zoo_expected

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


@needs_shared("golden/pjreddie-yolov3-slim")
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
    partial = golden_file(case.name, "model.conv.15", tmp_path)  # Darknet's bytes (the fixtures hold its sha256)
    pt, back = tmp_path / "p.pt", tmp_path / "p.weights"
    with pytest.warns(UserWarning, match="partial"):
        assert main(["convert", str(partial), str(pt), "--cfg", str(case / "model.cfg")]) == 0
    assert main(["convert", str(pt), str(back)]) == 0
    assert back.read_bytes() == partial.read_bytes()


def test_errors_print_one_line_and_exit_2(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "missing.cfg")]) == 2
    err = capsys.readouterr().err
    assert err == f"darknetpy: {tmp_path / 'missing.cfg'}: cfg file not found\n"


@pytest.mark.parametrize("command", [["darknetpy"], [sys.executable, "-m", "darknetpy"]])
def test_entry_points_run(command):
    result = subprocess.run(command + ["--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("darknetpy ")


def _parsers(parser, path=("darknetpy",)):
    """Every parser of the command line, with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_argument_has_help_and_every_command_a_description():
    missing = []
    for path, parser in _parsers(build_parser()):
        if len(path) > 1 and not parser.description:
            missing.append(f"{' '.join(path)}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{' '.join(path)} {a.dest}: no help" for a in action._choices_actions if not a.help]
                continue
            if not action.help:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}: no help")
    assert missing == []


def test_convert_help_says_what_source_and_target_may_be(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "source a Darknet .weights file (full or partial; give --cfg) or a .pt written by convert" in text
    assert "target the .pt to write (from a .weights source) or the .weights to write" in text


DETECTOR_VERBS = {"test": ["x.jpg"], "demo": ["x.mp4"], "map": ["a.data", "b.cfg", "c.weights"],
                  "valid": ["a.data", "b.cfg", "c.weights"], "train": ["a.data", "b.cfg"], "calc_anchors": ["a.data"]}


def _verb_args(verb):
    return (["detector", verb] if verb in DETECTOR_VERBS else [verb]) + DETECTOR_VERBS.get(verb, ["b.cfg", "c.weights"])


def _implements(verb, name):
    parser = dict(_parsers(build_parser()))[tuple(["darknetpy"] + _verb_args(verb)[: 2 if verb in DETECTOR_VERBS else 1])]
    return type(parser._option_string_actions[name]).__name__ != "_DarknetNote"


@pytest.mark.parametrize("verb", [*DETECTOR_VERBS, "detect"])
def test_every_detector_verb_takes_every_darknet_flag_anywhere(verb):
    flags = []
    for flag in darknetpy.DARKNET_FLAGS:
        flags += [flag.name] + ([] if flag.kind is None else [{int: "1", float: "0.5"}.get(flag.kind, "v")])
    half = len(flags) // 2 - 1
    while flags[half].startswith("-") is False:
        half += 1
    args = build_parser().parse_args(_verb_args(verb)[:2] + flags[:half] + _verb_args(verb)[2:] + flags[half:])
    noted = set(getattr(args, "darknet_notes", {}))
    assert noted == {f.name for f in darknetpy.DARKNET_FLAGS if not _implements(verb, f.name)}


def test_a_flag_the_table_says_is_implemented_is_implemented_by_each_of_its_verbs():
    verbs = set(DETECTOR_VERBS) | {"detect"}
    for flag in darknetpy.DARKNET_FLAGS:
        if not flag.instead and not flag.silent:
            assert all(_implements(v, flag.name) for v in flag.verbs if v in verbs), flag.name


def test_flag_names_match_exactly(capsys):
    args = build_parser().parse_args(["detector", "map", "a.data", "b.cfg", "c.weights", "-i", "0", "-iou_thresh", "0.7"])
    assert args.iou_thresh == 0.7 and args.darknet_notes == {"-i": 0}
    for bad in (["-iou", "0.7"], ["-iou_t", "0.7"], ["-i0"], ["-mAP"], ["--dec", "opencv"]):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(["detector", "map", "a.data", "b.cfg", "c.weights", *bad])
        assert exit_.value.code == 2
        assert f"unrecognized argument: {bad[0]}" in capsys.readouterr().err


def test_notes_come_once_each_before_the_command_runs(tmp_path, capsys):
    status = main(["detector", "map", str(tmp_path / "missing.data"), "b.cfg", "c.weights", "-dont_show",
                   "-mjpeg_port", "1", "-mjpeg_port", "8090", "-i", "0", "-benchmark_layers", "-h", "480"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 5
    assert err[0] == ("darknetpy: note: -mjpeg_port 8090: Darknet's MJPEG stream of the loss chart (train) or the annotated video (demo) "
                      "(train, demo); Darknet's `map` does not use it either")
    assert err[1].startswith("darknetpy: note: -i 0: Darknet's GPU index; train takes --device")
    assert err[2] == "darknetpy: note: -benchmark_layers: Darknet's forward time of every layer; time the layers with torch.profiler here"
    assert err[3].startswith("darknetpy: note: -h 480: pjreddie's camera capture height")
    assert err[4] == "darknetpy: b.cfg: cfg file not found"


def test_detector_help_with_h_alone(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["detector", "demo", "-h"])
    assert exit_.value.code == 0 and "Darknet's other flags" in capsys.readouterr().out


def test_train_passes_darknets_flags_to_the_training(monkeypatch, capsys):
    import darknetpy.train

    got = {}
    monkeypatch.setattr(darknetpy.train, "train_detector", lambda data, cfg, weights, options: got.update(options=options))
    assert main(["detector", "train", "a.data", "b.cfg", "-map", "-mAP_epochs", "2", "-thresh", "0.3", "-iou_thresh", "0.6",
                 "-chart", "c.png", "-gpus", "0,1", "w.conv.29"]) == 0
    o = got["options"]
    assert (o.calc_map, o.map_epochs, o.map_thresh, o.map_iou_thresh, o.chart_file) == (True, 2, 0.3, 0.6, "c.png")
    assert capsys.readouterr().err.startswith("darknetpy: note: -gpus 0,1: Darknet's GPUs to train on (e.g. 0,1,2,3); "
                                              "one device per process here: `torchrun --nproc_per_node K")


def test_map_interval_is_darknets_calc_map_for_each():
    from darknetpy.train import map_interval

    assert map_interval(4, 2, 2) == 100  # at least 100 iterations
    assert map_interval(4, 10000, 64) == 625 and map_interval(2, 10000, 64) == 312  # mAP_epochs * images / batch
    assert map_interval(0, 10000, 64) == 100

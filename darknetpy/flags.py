"""Darknet's command-line flags: one table of what each does in Darknet, for the ``detector`` verbs.

Darknet: ``src/detector.c:run_detector`` (AlexeyAB) and ``examples/detector.c:run_detector``
(pjreddie) read *every* flag for *every* detector verb, wherever it stands in the command line
(``find_arg``, ``find_int_arg``, ``find_float_arg``, ``find_char_arg`` remove them from ``argv``), and
``darknet.c:main`` reads ``-i`` (and ``-nogpu``, ``-cuda_debug_sync``) for every command; a verb ignores
the flags it does not use. The command line accepts every flag of this table on every detector verb
and ``detect``: a verb that implements a flag declares it itself, and any other flag of the table,
when given, only prints :func:`flag_note` (what it does in Darknet and why it has no effect here).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DarknetFlag", "DARKNET_FLAGS", "flag_help", "flag_note"]

ALL = ("*",)


@dataclass(frozen=True)
class DarknetFlag:
    """One flag: ``kind`` is None for a switch, else the type of its value; ``verbs`` are the
    Darknet commands that read it (``*``: every command); ``instead`` says why it has no effect here
    (empty: every verb of ``verbs`` implements it here); ``silent``: no note, the behaviour here is
    already Darknet's with the flag."""

    name: str
    kind: type | None
    verbs: tuple[str, ...]
    darknet: str
    instead: str = ""
    silent: bool = False
    metavar: str | None = None  # the value's name in --help (default: N for int, X for float)


_NO_WINDOW = "nothing is shown here"
_ONE_DEVICE = "train takes --device (cuda:N, cpu); detection and evaluation run on the CPU here"

DARKNET_FLAGS: tuple[DarknetFlag, ...] = (
    # src/detector.c:run_detector (AlexeyAB), in its order
    DarknetFlag("-dont_show", None, ("test", "train", "demo"), "Darknet's switch to open no window (image, video, loss chart)",
                "nothing is ever shown here", silent=True),
    DarknetFlag("-benchmark", None, ("demo",), "Darknet's FPS measurement (no drawing, no window)",
                "every frame is detected and written here; the printed lines give the speed"),
    DarknetFlag("-benchmark_layers", None, ("test", "train", "map", "demo"), "Darknet's forward time of every layer",
                "time the layers with torch.profiler here"),
    DarknetFlag("-show", None, ("calc_anchors",), "Darknet's window of the boxes and their clusters",
                f"{_NO_WINDOW}; anchors.txt holds the result"),
    DarknetFlag("-letter_box", None, ("test", "demo", "map"), "Darknet's letterboxed network input"),
    DarknetFlag("-map", None, ("train",), "Darknet's mAP on the valid list every 4 epochs, and _best.weights"),
    DarknetFlag("-points", int, ("map",), "Darknet's mAP interpolation (0 area under the curve, 11 VOC2007, 101 COCO)"),
    DarknetFlag("-show_imgs", None, ("train",), "Darknet's window (with -dont_show: aug_*.jpg files) of every augmented training image",
                "not made here; `darknetpy data check` checks labels against images"),
    DarknetFlag("-mjpeg_port", int, ("train", "demo"), "Darknet's MJPEG stream of the loss chart (train) or the annotated video (demo)",
                "no server here: chart.png (train) and -out_filename (demo) write files instead"),
    DarknetFlag("-avgframes", int, ("demo",), "Darknet's average of the network outputs of this many frames (default 3)",
                "each frame is detected on its own here"),
    DarknetFlag("-dontdraw_bbox", None, ("demo",), "Darknet's video without the boxes drawn",
                "the -out_filename video always has its boxes here"),
    DarknetFlag("-json_port", int, ("demo",), "Darknet's JSON stream of each frame's detections on this port",
                "no server here: -json_file_output FILE writes them; `darknetpy serve` answers HTTP requests"),
    DarknetFlag("-http_post_host", str, ("demo",), "Darknet's POST of the detections to this host",
                "nothing is sent here; -json_file_output FILE writes them", metavar="HOST"),
    DarknetFlag("-time_limit_sec", int, ("demo",), "Darknet's time limit of the video, in seconds"),
    DarknetFlag("-out_filename", str, ("demo",), "Darknet's annotated video file", metavar="FILE"),
    DarknetFlag("-json_file_output", str, ("demo",), "Darknet's JSON file of each frame's detections",
                "detector test writes JSON with -out FILE", metavar="FILE"),
    DarknetFlag("-out", str, ("test", "valid", "detect"),
                "Darknet's JSON file of the detections (test; pjreddie: the predictions image's name) or result files' prefix (valid)",
                metavar="FILE"),
    DarknetFlag("-prefix", str, ("demo",), "Darknet's PREFIX_%08d.jpg file of each annotated frame, instead of a window",
                "-out_filename writes the annotated video here", metavar="PREFIX"),
    DarknetFlag("-thresh", float, ("test", "train", "map", "demo", "detect"), "Darknet's probability threshold (.25; pjreddie .5)"),
    DarknetFlag("-iou_thresh", float, ("train", "map"), "Darknet's IoU for a detection to match a truth in mAP (.5)"),
    DarknetFlag("-hier", float, ("test", "demo"), "Darknet's hierarchical threshold of YOLO9000's tree (.5)"),
    DarknetFlag("-c", int, ("demo",), "Darknet's camera index, when no video is given (default 0)"),
    DarknetFlag("-s", int, ("demo",), "Darknet's frame skip between the shown detections", "every frame is detected here"),
    DarknetFlag("-num_of_clusters", int, ("calc_anchors",), "Darknet's number of anchors (default 5)"),
    DarknetFlag("-width", int, ("calc_anchors",), "Darknet's network width of the anchors"),
    DarknetFlag("-height", int, ("calc_anchors",), "Darknet's network height of the anchors"),
    DarknetFlag("-ext_output", None, ("test", "demo", "detect"), "Darknet's boxes printed in pixels"),
    DarknetFlag("-save_labels", None, ("test",), "Darknet's label file of each image's detections, beside it (pseudo-labelling)"),
    DarknetFlag("-chart", str, ("train",), "Darknet's loss chart image to continue", metavar="FILE"),
    DarknetFlag("-mAP_epochs", int, ("train",), "Darknet's epochs between two mAP calculations of -map (default 4)"),
    DarknetFlag("-gpus", str, ("train",), "Darknet's GPUs to train on (e.g. 0,1,2,3)",
                "one device per process here: `torchrun --nproc_per_node K darknetpy detector train ...` "
                "for K GPUs, --device cuda:N for one", metavar="LIST"),
    DarknetFlag("-clear", None, ("train",), "Darknet's restart of the iteration count at 0 (seen = 0)"),
    # examples/detector.c:run_detector (pjreddie)
    DarknetFlag("-avg", int, ("demo",), "pjreddie's average of the predictions of this many frames (default 3)",
                "each frame is detected on its own here"),
    DarknetFlag("-fullscreen", None, ("test", "demo", "detect"), "pjreddie's full-screen window", _NO_WINDOW),
    DarknetFlag("-w", int, ("demo",), "pjreddie's camera capture width", "the camera's own size is used here"),
    DarknetFlag("-h", int, ("demo",), "pjreddie's camera capture height", "the camera's own size is used here"),
    DarknetFlag("-fps", int, ("demo",), "pjreddie's camera capture frame rate", "the camera's own rate is used here"),
    # darknet.c:main, every command
    DarknetFlag("-i", int, ALL, "Darknet's GPU index", _ONE_DEVICE),
    DarknetFlag("-nogpu", None, ALL, "pjreddie's switch to the CPU", _ONE_DEVICE),
    DarknetFlag("-cuda_debug_sync", None, ALL, "AlexeyAB's CUDA synchronisation after every call (debugging)",
                "set CUDA_LAUNCH_BLOCKING=1 for the same in PyTorch"),
)


def flag_help(flag: DarknetFlag, verb: str) -> str:
    """What ``flag`` does in Darknet and why it has no effect in ``verb`` here."""
    if flag.verbs == ALL or verb in flag.verbs:
        return f"{flag.darknet}; {flag.instead or 'not implemented here'}"
    return f"{flag.darknet} ({', '.join(flag.verbs)}); Darknet's `{verb}` does not use it either"


def flag_note(flag: DarknetFlag, value: object, verb: str) -> str | None:
    """The one-line note for ``flag`` given to ``verb``, which does not implement it here (``value``:
    the flag's, None for a switch); None for a silent flag."""
    if flag.silent:
        return None
    given = flag.name if value is None else f"{flag.name} {value}"
    return f"{given}: {flag_help(flag, verb)}"

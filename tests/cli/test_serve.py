"""The HTTP prediction service, started for real on a free loopback port and called over HTTP.

Needs the optional extra ``serve`` (fastapi, uvicorn, python-multipart); skipped without it.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from darknetpy import load_detector, sample_image, start_server
from darknetpy.image import load_image

from ..conftest import ROOT

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

pytestmark = pytest.mark.cli

MAX_BYTES = 512 * 1024
DOG = sample_image()  # Darknet's data/dog.jpg, bundled


@pytest.fixture(scope="module")
def model():
    return load_detector(None, None, None)  # the bundled Yolo-Fastest-1.1 with the COCO names


@pytest.fixture(scope="module")
def server(model):
    with start_server(model, "127.0.0.1", 0, max_bytes=MAX_BYTES, max_pixels=4_000_000) as running:
        yield running


def request(server, method: str, path: str, body=None, headers: dict | None = None, chunked: bool = False):
    """(status, parsed JSON, Content-Type) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data), resp.getheader("Content-Type")
    finally:
        conn.close()


def multipart(data: bytes, filename: str = "image.jpg", field: str = "image") -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def dog() -> bytes:
    return DOG.read_bytes()


def test_health(server):
    status, answer, ctype = request(server, "GET", "/health")
    assert status == 200 and ctype == "application/json"
    assert answer["status"] == "ok"
    assert answer["model"] == "yolo-fastest-1.1.cfg" and answer["classes"] == 80
    assert answer["input"] == {"width": 320, "height": 320, "channels": 3}
    assert answer["max_bytes"] == MAX_BYTES and answer["decoder"] == "stb"


def test_predict_upload_gives_model_detect(server, model):
    body, headers = multipart(dog())
    status, answer, _ = request(server, "POST", "/predict", body, headers)
    assert status == 200
    (expected,) = model.detect(DOG)
    assert answer["image"] == {"width": 768, "height": 576}
    assert answer["model"] == "yolo-fastest-1.1.cfg"
    assert "dog" in {d["name"] for d in answer["detections"]}
    assert answer["detections"] == [d.to_dict() for d in expected]  # JSON floats round-trip exactly


def test_predict_raw_body_and_options(server, model):
    status, answer, _ = request(server, "POST", "/predict?thresh=0.5&nms=0.3&letter_box=1", dog(), {"Content-Type": "image/jpeg"})
    assert status == 200
    assert (answer["thresh"], answer["nms"], answer["letter_box"]) == (0.5, 0.3, True)
    (expected,) = model.detect(DOG, thresh=0.5, nms=0.3, letterbox=True)
    assert answer["detections"] == [d.to_dict() for d in expected]


def test_opencv_decoder(model):
    with start_server(model, decoder="opencv") as fast:
        status, answer, _ = request(fast, "POST", "/predict", dog(), {"Content-Type": "image/jpeg"})
        health = request(fast, "GET", "/health")[1]
    assert status == 200 and health["decoder"] == "opencv"
    (expected,) = model.detect(load_image(DOG, decoder="opencv"))
    assert answer["detections"] == [d.to_dict() for d in expected]


@pytest.mark.parametrize("decoder", ["stb", "opencv"])
def test_broken_files_are_400_json(server, model, decoder):
    cut = dog()[:300]  # a JPEG cut inside its headers
    with start_server(model, decoder=decoder) as running:
        for data in (b"\xff\xd8\xff\xe0 this is not really a JPEG" * 20, b"GIF89a garbage", cut):
            body, headers = multipart(data, "broken.jpg")
            status, answer, ctype = request(running, "POST", "/predict", body, headers)
            assert status == 400 and ctype == "application/json", (decoder, data[:12], answer)
            assert answer["status"] == 400 and "not a decodable image" in answer["error"]
        # the service is still up
        assert request(running, "GET", "/health")[0] == 200


def test_broken_file_is_a_400_json(server):
    body, headers = multipart(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 20, "broken.jpg")
    status, answer, ctype = request(server, "POST", "/predict", body, headers)
    assert status == 400 and ctype == "application/json"
    assert answer["status"] == 400 and "not a decodable image" in answer["error"]
    assert "Traceback" not in json.dumps(answer)


def test_oversized_bodies_are_413(server):
    big = b"\0" * (MAX_BYTES + 1)
    status, answer, _ = request(server, "POST", "/predict", big, {"Content-Type": "image/jpeg"})
    assert status == 413 and "limit" in answer["error"]
    # without Content-Length (chunked): refused while reading
    status, answer, _ = request(server, "POST", "/predict", iter([big[:300_000], big[300_000:]]), {"Content-Type": "image/jpeg"}, chunked=True)
    assert status == 413


def test_other_errors_are_json(server):
    assert request(server, "GET", "/nowhere")[:2][0] == 404
    status, answer, _ = request(server, "GET", "/predict")
    assert status == 405 and answer["status"] == 405
    status, answer, _ = request(server, "POST", "/predict", b"{}", {"Content-Type": "application/json"})
    assert status == 415 and "multipart/form-data" in answer["error"]
    status, answer, _ = request(server, "POST", "/predict?thresh=abc", b"x", {"Content-Type": "image/jpeg"})
    assert status == 400 and "thresh" in answer["error"]
    status, answer, _ = request(server, "POST", "/predict", b"", {"Content-Type": "image/jpeg"})
    assert status == 400 and "empty" in answer["error"]
    body, headers = multipart(b"abc", field="note")
    body = body.replace(b'; filename="image.jpg"', b"")  # a plain field, no file
    status, answer, _ = request(server, "POST", "/predict", body, headers)
    assert status == 400 and "no file" in answer["error"]


def test_a_bug_is_a_500_json_without_traceback(server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.app.state.predictor, "predict", broken)
    status, answer, ctype = request(server, "POST", "/predict", b"x", {"Content-Type": "image/jpeg"})
    assert status == 500 and ctype == "application/json"
    assert answer == {"error": "internal error (see the server log)", "status": 500}


def test_too_many_pixels_is_413(server):
    import cv2
    import numpy as np

    ok, png = cv2.imencode(".png", np.zeros((2100, 2100, 3), np.uint8))  # 4.4 MP, a small file
    assert ok and png.nbytes < MAX_BYTES
    status, answer, _ = request(server, "POST", "/predict", png.tobytes(), {"Content-Type": "image/png"})
    assert status == 413 and "pixels" in answer["error"]


def test_concurrent_requests(server, model):
    data = dog()
    (expected,) = model.detect(DOG)
    body, headers = multipart(data)

    def one(i: int):
        if i % 2:
            return request(server, "POST", "/predict", body, headers)
        return request(server, "POST", "/predict", data, {"Content-Type": "image/jpeg"})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    assert [a[0] for a in answers] == [200] * 6
    assert all(a[1]["detections"] == [d.to_dict() for d in expected] for a in answers)


def test_cli_serve_runs_and_stops(tmp_path):
    """``darknetpy serve --port 0`` in a subprocess: it prints its address, answers, stops on SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "darknetpy", "serve", "--port", "0", "--names", str(ROOT / "cfg" / "coco.names")],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "serving" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
        assert "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])

        class Where:
            host = "127.0.0.1"

        Where.port = port
        status, answer, _ = request(Where, "GET", "/health")
        assert status == 200 and answer["model"] == "yolo-fastest-1.1.cfg"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == 0


def test_cli_serve_port_in_use_is_one_line(server, capsys):
    from darknetpy.cli import main

    assert main(["serve", "--port", str(server.port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("darknetpy: cannot listen on 127.0.0.1:")

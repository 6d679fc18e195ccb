"""``darknetpy serve``: an HTTP prediction service around one loaded :class:`~darknetpy.model.Darknet`.

Endpoints (every answer is JSON, errors included: ``{"error": message, "status": code}``):

- ``POST /predict``: one image, as a ``multipart/form-data`` upload (field ``image``, or ``file``,
  or the only file of the form) or as the raw request body (``Content-Type: image/*`` or
  ``application/octet-stream``). Query options ``thresh`` (default: the flavour's, .25 AlexeyAB /
  .5 pjreddie), ``nms`` (.45; 0 turns NMS off), ``letter_box`` (0/1; default the model's rule).
  Answers ``{"detections": [Detection.to_dict()...], "image": {"width", "height"}, "model": name,
  "thresh", "nms", "letter_box", "time_ms"}``; the detections are exactly :meth:`Darknet.detect`'s
  for the decoded image (decoded as :func:`darknetpy.image.load_image` does: JPEGs with stb_image's
  arithmetic by default, like Darknet's CPU builds; ``decoder="opencv"`` is much faster).
- ``GET /health``: ``{"status": "ok", "model": ..., "flavor", "classes", "input": {...}, "max_bytes", ...}``.
- Errors: 413 for a body over ``max_bytes`` (checked on ``Content-Length`` before reading, and
  while reading a body without one) or an image over ``max_pixels``; 400 for an image that does not
  decode, an empty body, a form without a file or a bad option; 415 for a body that is neither a form
  nor an image type; 404/405 for other routes and methods; 500 (logged on the server, no traceback
  sent) for a bug.

Why FastAPI on uvicorn (the optional extra ``serve``: fastapi, uvicorn, python-multipart) rather
than the standard library's ``http.server.ThreadingHTTPServer``:

- robustness: ``http.server``'s own documentation says it is not for production (basic security
  checks only). uvicorn parses HTTP with h11, applies keep-alive timeouts, and bounds the open
  connections (``limit_concurrency``: more get 503), where ``ThreadingHTTPServer`` starts one
  unbounded thread per connection and waits on slow clients forever;
- multipart: the standard library lost its form parser with the ``cgi`` module (removed in Python
  3.13); python-multipart is a streaming, maintained parser with limits on parts and fields,
  instead of an ad-hoc parser or the ``email`` package's buffering one;
- request size: neither checks it for us; here an ASGI middleware refuses a ``Content-Length`` over
  the limit before reading anything and stops reading a chunked body at the limit (memory per request
  is bounded by ``max_bytes``), the same few lines the standard library would need;
- concurrency: requests are received, parsed and decoded concurrently (the event loop, then the
  thread pool); the forward pass runs in the thread pool under one lock, since one model's modules
  and its train/eval flag are shared (PyTorch already uses the cores inside one forward);
- cost: a handful of pure-Python packages (pydantic's core is compiled), all widely used and
  maintained, installed only with ``pip install 'darknetpy[serve]'``; ``import darknetpy`` never
  needs them.

The model is loaded once by the caller and shared by every request.
"""
# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (Request),
# which are imported inside create_app since the web packages are optional.
import io
import logging
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import cv2
import numpy as np

from . import image as image_module
from .errors import DarknetError, DataError

if TYPE_CHECKING:
    from .model import Darknet

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DECODERS",
    "ClientError",
    "Predictor",
    "RunningServer",
    "create_app",
    "decode_image",
    "serve",
    "start_server",
]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # request body
DEFAULT_MAX_PIXELS = 40_000_000  # decoded image (width·height)
DECODERS = ("stb", "opencv")  # as darknetpy.image.load_image
DEFAULT_LIMIT_CONCURRENCY = 32  # open connections + requests in flight (uvicorn answers 503 above)
_RAW_TYPES = ("application/octet-stream", "")
_EXTRA_HINT = "pip install 'darknetpy[serve]'"

log = logging.getLogger("darknetpy.serve")


class ClientError(Exception):
    """A request the service refuses, with its HTTP status (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding the pixels (None if PIL cannot tell)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:
        return (1 << 31, 1)
    except Exception:
        return None


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, decoder: str = "stb") -> np.ndarray:
    """An encoded image as ``(H, W, 3)`` uint8 RGB, decoded as :func:`darknetpy.image.load_image` decodes a file.

    ``decoder="stb"``: JPEGs with stb_image's arithmetic (:func:`darknetpy.jpeg.decode_jpeg`, Darknet's
    pixels), other formats with OpenCV; ``"opencv"``: OpenCV for everything (much faster). Raises
    :class:`ClientError` 400 when it does not decode, 413 when it has more than ``max_pixels`` pixels
    (checked on the header first, so a small file cannot make the service allocate a huge image).
    """
    if decoder not in DECODERS:
        raise DarknetError(f"unknown image decoder {decoder!r} (use {' or '.join(DECODERS)})")
    if not data:
        raise ClientError(400, "empty image: the request carries no bytes")
    size = _header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ClientError(413, f"image of {size[0]}x{size[1]} pixels: over the limit of {max_pixels} pixels")
    try:
        img = image_module.decode_image(data, decoder, "the uploaded image")
    except DataError as err:
        hint = "" if data[:2] == b"\xff\xd8" else " (send a JPEG, PNG, BMP, WebP or TIFF file)"
        raise ClientError(400, f"not a decodable image: {err}{hint}") from None
    except MemoryError:
        raise ClientError(413, "the image is too large to decode") from None
    except cv2.error:
        raise ClientError(400, "not a decodable image (send a JPEG, PNG, BMP, WebP or TIFF file)") from None
    except Exception as err:  # a decoder on untrusted bytes: any failure is the file's
        log.warning("image decoding failed: %s: %s", type(err).__name__, err)
        raise ClientError(400, "not a decodable image (corrupt file)") from None
    if img.shape[0] * img.shape[1] > max_pixels:
        raise ClientError(413, f"image of {img.shape[1]}x{img.shape[0]} pixels: over the limit of {max_pixels} pixels")
    return img


def _float_option(query: Mapping[str, str], key: str, default: float | None) -> float | None:
    text = query.get(key)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ClientError(400, f"query option {key}={text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ClientError(400, f"query option {key}={text} must be between 0 and 1")
    return value


def _bool_option(query: Mapping[str, str], key: str) -> bool | None:
    text = query.get(key)
    if text is None or text == "":
        return None
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ClientError(400, f"query option {key}={text!r}: use 1 or 0")


class Predictor:
    """The model and the service's defaults; :meth:`predict` is safe to call from many threads."""

    def __init__(
        self,
        model: "Darknet",
        thresh: float | None = None,
        nms: float = 0.45,
        letterbox: bool | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        decoder: str = "stb",
    ) -> None:
        from .detect import default_letterbox

        if decoder not in DECODERS:
            raise DarknetError(f"unknown image decoder {decoder!r} (use {' or '.join(DECODERS)})")
        if max_bytes < 1 or max_pixels < 1:
            raise DarknetError(f"max_bytes and max_pixels must be positive (got {max_bytes}, {max_pixels})")
        self.model = model.eval()
        self.thresh = model.flavor.detect_thresh if thresh is None else thresh
        self.nms = nms
        self.letterbox = default_letterbox(model) if letterbox is None else letterbox
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.decoder = decoder
        self.lock = threading.Lock()
        cfg_path = getattr(model.cfg, "path", None)
        self.name = str(cfg_path).replace("\\", "/").rsplit("/", 1)[-1] if cfg_path else "darknet"
        heads = model.heads
        self.classes = len(model.names) if model.names else (getattr(getattr(heads[-1], "options", None), "classes", 0) if heads else 0)

    def info(self) -> dict:
        c, h, w = self.model.input_shape
        return {
            "model": self.name,
            "flavor": self.model.flavor.name,
            "classes": self.classes,
            "names": bool(self.model.names),
            "input": {"width": w, "height": h, "channels": c},
            "thresh": self.thresh,
            "nms": self.nms,
            "letter_box": self.letterbox,
            "max_bytes": self.max_bytes,
            "max_pixels": self.max_pixels,
            "decoder": self.decoder,
        }

    def options(self, query: Mapping[str, str]) -> dict:
        """``thresh``, ``nms``, ``letter_box`` of a request's query (400 on bad values)."""
        letterbox = _bool_option(query, "letter_box")
        return {
            "thresh": _float_option(query, "thresh", self.thresh),
            "nms": _float_option(query, "nms", self.nms),
            "letterbox": self.letterbox if letterbox is None else letterbox,
        }

    def predict(self, data: bytes, thresh: float | None = None, nms: float | None = None, letterbox: bool | None = None) -> dict:
        """Decode ``data`` and detect: the JSON answer of ``POST /predict``."""
        image = decode_image(data, self.max_pixels, self.decoder)
        thresh = self.thresh if thresh is None else thresh
        nms = self.nms if nms is None else nms
        letterbox = self.letterbox if letterbox is None else letterbox
        with self.lock:
            start = time.perf_counter()
            (dets,) = self.model.detect(image, thresh=thresh, nms=nms, letterbox=letterbox)
            ms = (time.perf_counter() - start) * 1000
        return {
            "detections": [d.to_dict() for d in dets],
            "image": {"width": int(image.shape[1]), "height": int(image.shape[0])},
            "model": self.name,
            "thresh": thresh,
            "nms": nms,
            "letter_box": letterbox,
            "time_ms": round(ms, 3),
        }


def _require_web() -> None:
    for module in ("fastapi", "uvicorn", "multipart"):
        try:
            __import__(module)
        except ImportError:
            raise DarknetError(f"the HTTP service needs the Python package {module}: {_EXTRA_HINT}") from None


async def _send_json(send, status: int, payload: dict) -> None:
    import json

    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 JSON and is never held in memory.

    A ``Content-Length`` over the limit is refused without keeping anything; a body without one
    (chunked) is kept up to the limit. The body read is handed on to the app, so nothing downstream
    reads more. Before the 413 the rest of the body is read and dropped (up to ``drain_limit``
    bytes; not when the client waits for ``100-continue``): closing a connection with unread data
    makes the kernel reset it, and the client would see a broken pipe instead of the answer.
    """

    def __init__(self, app, max_bytes: int, drain_limit: int = 64 * 1024 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_limit = drain_limit

    async def _refuse(self, receive, send, headers: dict, finished: bool) -> None:
        if not finished and b"100-continue" not in headers.get(b"expect", b"").lower():
            drained = 0
            while drained <= self.drain_limit:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        await _send_json(send, 413, {"error": f"request body over the limit of {self.max_bytes} bytes", "status": 413})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _send_json(send, 400, {"error": "bad Content-Length header", "status": 400})
                return
            if int(length) > self.max_bytes:
                await self._refuse(receive, send, headers, finished=False)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            more = message.get("more_body", False)
            total += len(body)
            if total > self.max_bytes:
                chunks.clear()
                await self._refuse(receive, send, headers, finished=not more)
                return
            chunks.append(body)
            if not more:
                break
        data = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    model: "Darknet",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thresh: float | None = None,
    nms: float = 0.45,
    letterbox: bool | None = None,
    decoder: str = "stb",
):
    """The FastAPI application serving ``model`` (see the module documentation for the endpoints).

    ``decoder``: how uploads are decoded, as :func:`darknetpy.image.load_image` (``"stb"``: JPEGs with
    Darknet's stb_image arithmetic, so the answers equal ``model.detect(path)``; ``"opencv"``: faster).
    """
    _require_web()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    from . import __version__

    predictor = Predictor(model, thresh, nms, letterbox, max_bytes, max_pixels, decoder)
    app = FastAPI(title="darknetpy", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.predictor = predictor
    app.add_middleware(BodyLimit, max_bytes=max_bytes)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path} (use POST /predict or GET /health)"
        return JSONResponse({"error": message, "status": exc.status_code}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "bad request: " + "; ".join(str(e.get("msg", e)) for e in exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, "internal error (see the server log)")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **predictor.info()}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        options = predictor.options(request.query_params)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=16, max_part_size=max_bytes)
            try:
                uploads = [v for v in form.values() if isinstance(v, UploadFile)]
                upload = next((form[k] for k in ("image", "file") if isinstance(form.get(k), UploadFile)), uploads[0] if uploads else None)
                if upload is None:
                    raise ClientError(400, "the form has no file: upload the image in the field 'image'")
                data = await upload.read()
            finally:
                await form.close()
        elif content_type.startswith("image/") or content_type in _RAW_TYPES:
            data = await request.body()
        else:
            raise ClientError(
                415,
                f"unsupported Content-Type {content_type!r}: send multipart/form-data with the field 'image', "
                "or the image itself as the body with Content-Type image/* or application/octet-stream",
            )
        return await run_in_threadpool(predictor.predict, data, **options)

    return app


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one); a DarknetError when the address cannot be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise DarknetError(f"cannot resolve host {host!r}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise DarknetError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app, quiet: bool, limit_concurrency: int | None):
    import uvicorn

    return uvicorn.Config(
        app,
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        lifespan="off",
        timeout_keep_alive=5,
        limit_concurrency=limit_concurrency,
        server_header=False,
    )


@dataclass
class RunningServer:
    """A service running in a background thread of this process (see :func:`start_server`)."""

    url: str
    host: str
    port: int
    app: Any
    _server: Any
    _thread: threading.Thread
    _sock: socket.socket

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish the requests in flight, close; waits up to ``timeout`` seconds."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(
    model: "Darknet",
    host: str = "127.0.0.1",
    port: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limit_concurrency: int | None = DEFAULT_LIMIT_CONCURRENCY,
    startup_timeout: float = 20.0,
    **options,
) -> RunningServer:
    """Serve ``model`` from a background thread and return once it accepts connections (port 0: a free port).

    ``options`` go to :func:`create_app` (``max_pixels``, ``thresh``, ``nms``, ``letterbox``, ``decoder``). Use it as a
    context manager, or call :meth:`RunningServer.stop`.
    """
    _require_web()
    import uvicorn

    app = create_app(model, max_bytes=max_bytes, **options)
    sock = _bind(host, port)
    server = uvicorn.Server(_config(app, quiet=True, limit_concurrency=limit_concurrency))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="darknetpy-serve", daemon=True)
    thread.start()
    url = _url(sock)
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(startup_timeout)
            sock.close()
            raise DarknetError(f"the HTTP service did not start on {url}")
        time.sleep(0.02)
    actual_host, actual_port = sock.getsockname()[:2]
    return RunningServer(url, actual_host, actual_port, app, server, thread, sock)


def serve(
    model: "Darknet",
    host: str = "127.0.0.1",
    port: int = 8080,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limit_concurrency: int | None = DEFAULT_LIMIT_CONCURRENCY,
    **options,
) -> None:
    """Serve ``model`` over HTTP until interrupted (Ctrl+C / SIGTERM stop it gracefully).

    ``options`` go to :func:`create_app` (``max_pixels``, ``thresh``, ``nms``, ``letterbox``, ``decoder``).
    """
    _require_web()
    import uvicorn

    app = create_app(model, max_bytes=max_bytes, **options)
    sock = _bind(host, port)
    print(f"darknetpy: serving {app.state.predictor.name} on {_url(sock)} (POST /predict, GET /health)", file=sys.stderr, flush=True)
    try:
        uvicorn.Server(_config(app, quiet=False, limit_concurrency=limit_concurrency)).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then re-raises the Ctrl+C it caught
        pass
    finally:
        sock.close()

"""The web application: pages, static files and the JSON API (Starlette).

Routes (``docs/serve.md`` documents each request and answer):

====================  ======  ===============================================================
``/``                 GET     the page (three views)
``/static/{file}``    GET     the page's own style sheet and script, from the package
``/api/options``      GET     samples, kernels, paddings, limits, and the run's model (or null)
``/api/upload``       POST    an image file (raw body); answers an id for the playground
``/api/convolution``  POST    one image and kernel: output, size formula, one element
``/api/signal1d``     POST    the 1-D view: full, same and valid, every element explained
``/api/multichannel`` POST    three channels into several filters, summed, plus bias
``/api/pooling``      POST    max or average pooling: output, formula, one window
``/api/predict``      POST    an image file (raw body) through the run's model
``/api/featuremap``   POST    one feature map of an image file in detail, one pixel written out
``/run/{file}``       GET     the run's report.html and its figures
====================  ======  ===============================================================

A refused request gets a 4xx answer ``{"error": message}`` with cnnkit's own message; the
server keeps serving. Computations run on worker threads, so one slow request does not hold up
the others. Decoding an upload and running the model take room in a memory budget
(:class:`cnnkit.serve.network.MemoryGate`); when it is full the answer is 503 with
``Retry-After``. A request body must arrive within
:data:`~cnnkit.serve.connections.BODY_TIMEOUT` seconds (else 408), and a client that leaves
in the middle of its upload is one line in the log. No request names a path: images come as
uploaded bytes or built-in samples, kernels as names or numbers, and the only files served are
the package's static files and the run's own files (regular files inside the run folder, not
links out of it).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import (
    CnnkitError,
    InvalidArgument,
    MissingPackage,
    NotAFolder,
    NotFound,
    TooLarge,
)
from cnnkit.imageio import image_memory, image_shape, read_image, to_grayscale
from cnnkit.runfolder import CONFIG_NAME, CURVES_NAME, METRICS_NAME, REPORT_NAME
from cnnkit.serve import playground
from cnnkit.serve.network import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    RETRY_AFTER,
    Inspector,
    MemoryGate,
    ServerBusy,
    default_memory_budget,
    saved_upload,
)

__all__ = [
    "LOOPBACK_HOSTS",
    "MAX_JSON_BYTES",
    "UPLOADS_KEPT",
    "Uploads",
    "create_app",
    "require_packages",
]

#: Largest JSON request body, in bytes.
MAX_JSON_BYTES = 256 * 1024
#: Uploaded playground images kept in memory (the oldest is forgotten first).
UPLOADS_KEPT = 16
#: The run's files that ``/run/{file}`` serves, and their media types.
RUN_FILES = {REPORT_NAME: "text/html", CURVES_NAME: "image/png", METRICS_NAME: "text/csv",
             CONFIG_NAME: "application/json"}

STATIC = Path(__file__).with_name("static")


class RequestTimeout(CnnkitError, TimeoutError):
    """A request's body did not arrive in time; answered 408."""


class _ClientGone(Exception):
    """The client closed its connection before its request body was complete."""


_STATUS = {NotFound: 404, TooLarge: 413, RequestTimeout: 408, ServerBusy: 503}
#: Extra headers of the answers to some refusals.
_HEADERS = {408: {"connection": "close"}, 503: {"retry-after": str(RETRY_AFTER)}}


def require_packages() -> None:
    """Refuse, in one line, to serve without the ``serve`` extra."""
    import importlib.util

    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingPackage(f"cnnkit serve needs the package(s) {', '.join(missing)}; install "
                             "them with pip install 'cnnkit[serve]'")


@dataclass(frozen=True)
class Upload:
    """A playground image: RGB ``(H, W, 3)`` and its gray, float64 in [0, 1]."""

    rgb: np.ndarray
    gray: np.ndarray


class Uploads:
    """The last :data:`UPLOADS_KEPT` uploaded playground images, by id; safe across threads.
    Decoding takes room in ``gate`` (default: a gate of its own, of the default budget)."""

    def __init__(self, gate: MemoryGate | None = None) -> None:
        self.gate = MemoryGate(default_memory_budget()) if gate is None else gate
        self._images: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()
        self._count = 0

    def add(self, data: bytes) -> tuple[str, Upload, list[str]]:
        """Decode an image file (shrunk to fit the playground); its id, pixels and notes."""
        notes = []
        with saved_upload(data) as path:
            rows, columns = image_shape(path)[:2]
            scale = min(1.0, playground.MAX_IMAGE_SIDE / max(rows, columns))
            size = None  # as it is, unless it is larger than the playground
            if scale < 1.0:
                size = (max(1, round(rows * scale)), max(1, round(columns * scale)))
                notes.append(f"shrunk from {columns}×{rows} to {size[1]}×{size[0]}")
            with self.gate.hold(image_memory(path, size=size), "decoding an upload"):
                rgb = read_image(path, color="rgb", size=size, max_pixels=MAX_UPLOAD_PIXELS)
        upload = Upload(rgb, to_grayscale(rgb))
        with self._lock:
            self._count += 1
            key = f"u{self._count}"
            self._images[key] = upload
            while len(self._images) > UPLOADS_KEPT:
                self._images.popitem(last=False)
        return key, upload, notes

    def get(self, key: object) -> Upload:
        with self._lock:
            upload = self._images.get(key) if isinstance(key, str) else None
        if upload is None:
            raise NotFound(f"no uploaded image {key!r} (the server keeps the last "
                           f"{UPLOADS_KEPT}); upload it again")
        return upload


def _run_folder(run_dir: str | os.PathLike) -> Path:
    folder = Path(run_dir)
    if not folder.exists():
        raise NotFound(f"run folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise NotAFolder(f"{str(folder)!r} is not a run folder (a folder written by cnnkit "
                         "train)")
    return folder.resolve()


class _HostGuard:
    """Answer only requests whose Host header names one of ``hosts`` (port aside).

    A server on 127.0.0.1 is still reachable from web pages through DNS rebinding (a page's
    own host name made to point at 127.0.0.1); checking the Host header refuses those.
    """

    def __init__(self, app, hosts: Sequence[str]) -> None:
        self.app, self.hosts = app, {host.lower() for host in hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            from starlette.datastructures import Headers
            from starlette.responses import JSONResponse

            header = Headers(scope=scope).get("host", "")
            host = header.rsplit(":", 1)[0] if not header.endswith("]") else header
            if host.lower() not in self.hosts:
                response = JSONResponse({"error": f"host {header!r} is not served here; open "
                                                  "the address cnnkit serve printed"},
                                        status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: Host names a server bound to a loopback address answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def create_app(run_dir: str | os.PathLike | None = None, *,
               allowed_hosts: Sequence[str] | None = None, memory_budget: int | None = None):
    """The Starlette application; with ``run_dir``, the run's model is loaded once, here.

    ``allowed_hosts``: the Host header values answered (default: any); ``cnnkit serve`` on a
    loopback address passes :data:`LOOPBACK_HOSTS`. ``memory_budget``: bytes that decoding
    uploads and running the model may take at once (default
    :func:`~cnnkit.serve.network.default_memory_budget`). Raises the cnnkit error of a missing
    run folder or checkpoint before anything is served.
    """
    require_packages()
    import anyio
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from cnnkit.serve.connections import BODY_TIMEOUT, NOTICES, OUT_OF_DESCRIPTORS

    folder = None if run_dir is None else _run_folder(run_dir)
    gate = MemoryGate(default_memory_budget() if memory_budget is None else memory_budget)
    inspector = None if folder is None else Inspector(folder, gate=gate)
    uploads = Uploads(gate)

    async def body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"the request body has {declared} bytes, more than the limit of "
                           f"{limit}")
        chunks, size = [], 0
        try:
            with anyio.fail_after(BODY_TIMEOUT):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"the request body is larger than the limit of {limit} "
                                       "bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {BODY_TIMEOUT:g} s "
                                 f"({size} bytes came)") from None
        except ClientDisconnect:
            raise _ClientGone(f"{size} bytes came") from None
        if not size:
            raise InvalidArgument("the request has an empty body")
        return b"".join(chunks)

    async def json_body(request: Request) -> dict:
        from cnnkit._json import parse

        data = await body(request, MAX_JSON_BYTES)
        # Depth and integer digits are bounded before parsing: a hostile body is a 400.
        value = parse(data, "the request body")
        if not isinstance(value, dict):
            raise InvalidArgument(f"the request body must be a JSON object, got "
                                  f"{type(value).__name__}")
        return value

    def computed(function):
        """A JSON endpoint whose work runs on a worker thread."""
        async def endpoint(request: Request) -> Response:
            payload = await json_body(request)
            return JSONResponse(await run_in_threadpool(function, payload))
        return endpoint

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def options(request: Request) -> Response:
        report = folder is not None and (folder / REPORT_NAME).is_file()
        return JSONResponse({**playground.options(),
                             "run": None if inspector is None else {
                                 "name": folder.name, **inspector.describe(),
                                 "report": f"/run/{REPORT_NAME}" if report else None}})

    async def upload(request: Request) -> Response:
        data = await body(request, MAX_UPLOAD_BYTES)
        key, image, notes = await run_in_threadpool(uploads.add, data)
        return JSONResponse({"id": key, "shape": list(image.gray.shape), "notes": notes,
                             "png": playground.picture(image.gray, "clip")})

    async def predict(request: Request) -> Response:
        if inspector is None:
            raise NotFound("no run is loaded: start the server with a run folder, "
                           "cnnkit serve RUN")
        data = await body(request, MAX_UPLOAD_BYTES)
        query = request.query_params
        top, layers = query.get("top", "3"), query.get("layers", "shown")
        if not top.isdigit():
            raise InvalidArgument(f"top must be a positive integer, got {top!r}")
        if layers not in ("shown", "all"):
            raise InvalidArgument(f"layers must be 'shown' or 'all', got {layers!r}")
        result = await run_in_threadpool(
            inspector.inspect, data, invert=query.get("invert"),
            method=query.get("method", "gradcam"), top_k=int(top),
            every_layer=layers == "all")
        return JSONResponse(result)

    async def featuremap(request: Request) -> Response:
        if inspector is None:
            raise NotFound("no run is loaded: start the server with a run folder, "
                           "cnnkit serve RUN")
        data = await body(request, MAX_UPLOAD_BYTES)
        query = request.query_params
        numbers = {}
        for key in ("layer", "channel", "row", "column"):
            text = query.get(key)
            if text is not None and not text.isdigit():
                raise InvalidArgument(f"{key} must be a non-negative integer, got {text!r}")
            numbers[key] = None if text is None else int(text)
        if numbers["layer"] is None or numbers["channel"] is None:
            raise InvalidArgument("give the map as ?layer=L&channel=C (and a pixel as "
                                  "&row=R&column=C)")
        if (numbers["row"] is None) != (numbers["column"] is None):
            raise InvalidArgument("give a pixel as both row and column, or neither")
        pixel = None if numbers["row"] is None else [numbers["row"], numbers["column"]]
        result = await run_in_threadpool(
            inspector.featuremap, data, layer=numbers["layer"], channel=numbers["channel"],
            pixel=pixel, invert=query.get("invert"))
        return JSONResponse(result)

    async def run_file(request: Request) -> Response:
        name = request.path_params["name"]
        if folder is None:
            raise NotFound("no run is loaded: start the server with a run folder, "
                           "cnnkit serve RUN")
        if name not in RUN_FILES:
            raise NotFound(f"{name!r} is not one of the run's files served here "
                           f"({', '.join(RUN_FILES)})")
        path = (folder / name).resolve()
        if not path.is_relative_to(folder):
            raise NotFound(f"the run's {name} is a link to a file outside the run folder, "
                           "which is not served")
        if not path.is_file():  # missing, or not a regular file (a folder, a FIFO, ...)
            hint = " (write it with cnnkit report RUN)" if name == REPORT_NAME else ""
            raise NotFound(f"the run has no {name}{hint}")
        return FileResponse(path, media_type=RUN_FILES[name])

    async def cnnkit_error(request: Request, exc: CnnkitError) -> Response:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
        return JSONResponse({"error": str(exc).strip().splitlines()[0]}, status_code=status,
                            headers=_HEADERS.get(status))

    async def client_gone(request: Request, exc: _ClientGone) -> Response:
        client = request.client
        who = f" ({client.host}:{client.port})" if client else ""
        NOTICES.say("disconnects", f"a client{who} disconnected before its request body "
                                   f"was complete ({exc}); nothing was done with it")
        return Response(status_code=400)  # not sent: the client is gone

    async def os_error(request: Request, exc: OSError) -> Response:
        if exc.errno not in OUT_OF_DESCRIPTORS:
            raise exc
        NOTICES.say("descriptors", f"out of file descriptors ({exc.strerror}); requests "
                                   "that need a file are answered 503 until some close")
        return JSONResponse({"error": "the server has run out of file descriptors; try again "
                                      f"in {RETRY_AFTER} s"}, status_code=503,
                            headers=_HEADERS[503])

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                            headers=exc.headers)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"internal error ({type(exc).__name__}): this is a bug "
                                      "in cnnkit; the server goes on serving"}, status_code=500)

    routes = [
        Route("/", index),
        Route("/api/options", options),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/convolution", computed(lambda r: playground.convolution(r, uploads)),
              methods=["POST"]),
        Route("/api/signal1d", computed(playground.signal1d), methods=["POST"]),
        Route("/api/multichannel", computed(lambda r: playground.multichannel(r, uploads)),
              methods=["POST"]),
        Route("/api/pooling", computed(lambda r: playground.pooling(r, uploads)),
              methods=["POST"]),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/featuremap", featuremap, methods=["POST"]),
        Route("/run/{name}", run_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {CnnkitError: cnnkit_error, HTTPException: http_error, _ClientGone: client_gone,
                OSError: os_error, Exception: internal_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.gate = gate
    return app if allowed_hosts is None else _HostGuard(app, allowed_hosts)

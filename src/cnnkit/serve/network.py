"""Inside a trained network: one image through the model, every step shown.

:class:`Inspector` reads a run's checkpoint once into :class:`cnnkit.model.TrainedModel` on the
NumPy engine (no PyTorch needed) and answers :meth:`Inspector.inspect` for image files sent by
the page: the image as the model sees it (the steps of
:meth:`~cnnkit.model.TrainedModel.prepare`), the top classes, the feature maps of the layers
worth showing, and an attribution map (:meth:`~cnnkit.model.TrainedModel.attribute`); and
:meth:`Inspector.featuremap` for one map in detail (:mod:`cnnkit.featuremaps`). The NumPy
layers keep what their backward pass needs between calls, so each request borrows a copy of the
model of its own (one per core, two at most); everything else runs in parallel.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.budget import FLOAT32_BYTES, available_memory, format_bytes
from cnnkit.data.imagefolder import default_workers
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.errors import CnnkitError, TooLarge
from cnnkit.featuremaps import map_detail
from cnnkit.imageio import image_memory, image_shape
from cnnkit.model import (
    INVERT_MODES,
    METHODS,
    PATH_ROWS,
    PreparedImage,
    TrainedModel,
    softmax,
    top_classes,
)
from cnnkit.pictures import (
    as_picture,
    attribution_overlay,
    coloured,
    flat_map,
    png_data_uri,
)

__all__ = ["ATTRIBUTION_STEPS", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "MEMORY_BUDGET",
           "RETRY_AFTER", "Inspector", "MemoryGate", "ServerBusy", "default_memory_budget",
           "saved_upload"]

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 8 * 2**20
#: Largest upload accepted, in pixels (well below Pillow's decompression-bomb limit).
MAX_UPLOAD_PIXELS = 4096 * 4096
#: Memory that decoding uploads and running the model may take at once, at most (less where
#: the machine has less to give: :func:`default_memory_budget`).
MEMORY_BUDGET = 512 * 2**20
#: Seconds a client is asked to wait (``Retry-After``) when the server is full.
RETRY_AFTER = 1
#: Steps of integrated gradients along the path from the baseline to the image.
ATTRIBUTION_STEPS = 16


class ServerBusy(CnnkitError, RuntimeError):
    """The server has no room for the request now; it is answered 503 with ``Retry-After``."""


def default_memory_budget() -> int:
    """:data:`MEMORY_BUDGET`, or half the memory the machine can give now if that is less."""
    return max(1, min(MEMORY_BUDGET, available_memory() // 2))


class MemoryGate:
    """Admits decoding and inference while the memory they are estimated to need fits in
    ``budget`` bytes; safe across threads.

    A request that would overflow the budget is refused at once with :class:`ServerBusy`
    rather than queued, so that no worker thread waits and the memory stays bounded however
    many clients send at once. A request estimated above the whole budget runs alone.

    >>> gate = MemoryGate(100)
    >>> with gate.hold(60, "one upload"), gate.hold(60, "another"):
    ...     pass
    Traceback (most recent call last):
    cnnkit.serve.network.ServerBusy: the server is busy: another needs about 60 B of memory ...
    """

    def __init__(self, budget: int) -> None:
        self.budget = check_int(budget, "memory budget", minimum=1)
        self._used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, needed: int, what: str) -> Iterator[None]:
        """Hold ``needed`` bytes of the budget for ``what`` while the block runs."""
        needed = min(int(needed), self.budget)
        with self._lock:
            if self._used + needed > self.budget:
                raise ServerBusy(
                    f"the server is busy: {what} needs about {format_bytes(needed)} of memory "
                    f"and {format_bytes(self._used)} of its budget of "
                    f"{format_bytes(self.budget)} is in use; try again in {RETRY_AFTER} s")
            self._used += needed
        try:
            yield
        finally:
            with self._lock:
                self._used -= needed


@contextlib.contextmanager
def saved_upload(data: bytes) -> Iterator[Path]:
    """The bytes of an upload as a temporary file, removed afterwards; its pixel count is
    checked from the header before anything is decoded.

    cnnkit's image readers take paths; a file of its own per request (``mkstemp``) keeps
    concurrent requests apart and costs far less than a temporary folder. A cnnkit error about
    the file speaks of "the upload", not of the server's temporary file.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"the upload has {len(data)} bytes, more than the limit of "
                       f"{MAX_UPLOAD_BYTES}")
    try:
        handle, name = tempfile.mkstemp(prefix="cnnkit-serve-")
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        raise ServerBusy(f"the server has run out of file descriptors ({exc.strerror}); try "
                         f"again in {RETRY_AFTER} s") from None
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        shape = image_shape(path)
        if shape[0] * shape[1] > MAX_UPLOAD_PIXELS:
            raise TooLarge(f"the uploaded image has {shape[1]}x{shape[0]} pixels, more than "
                           f"the limit of {MAX_UPLOAD_PIXELS}")
        yield path
    except CnnkitError as exc:
        message = str(exc).replace(repr(name), "the upload").replace(name, "the upload")
        raise type(exc)(message) from None
    finally:
        path.unlink(missing_ok=True)


class Inspector:
    """A run's model, loaded once, and what it makes of an image.

    Parameters
    ----------
    run_dir : path-like
        A training run folder (or a checkpoint file).
    replicas : int, optional
        Copies of the model, one per request served at once (default: one per core, two at
        most).
    gate : MemoryGate, optional
        The memory budget that reading an image and one pass through the model take room in
        (default: a gate of its own, :func:`default_memory_budget`); :attr:`model_memory` is
        the estimate of the pass.
    """

    def __init__(self, run_dir: str | os.PathLike, *, replicas: int | None = None,
                 gate: MemoryGate | None = None) -> None:
        replicas = check_int(replicas or min(2, default_workers()), "replicas", minimum=1)
        self.gate = MemoryGate(default_memory_budget()) if gate is None else gate
        checkpoint = load_checkpoint(run_dir)
        # Each copy of the model serves one request at a time (its layers keep what their
        # backward pass needs); with one copy per core, requests run in parallel.
        models = [TrainedModel(checkpoint, where=str(run_dir), engine="numpy")
                  for _ in range(replicas)]
        self._models: queue.SimpleQueue = queue.SimpleQueue()
        for model in models:
            self._models.put(model)
        self._reader = models[0]
        self.info = models[0].info
        self.kinds = self.info.kinds
        self.shown = self.info.shown_layers()
        # One request's pass: the image and every layer's output for the path points of
        # integrated gradients at once (the most images a request sends through the model),
        # kept for the backward pass, their gradients, and room for the windows that a
        # convolution gathers.
        values = math.prod(self.info.input_shape) + sum(
            math.prod(row.output_shape) for row in self.info.layers)
        self.model_memory = FLOAT32_BYTES * values * min(ATTRIBUTION_STEPS, PATH_ROWS) * 8

    def describe(self) -> dict:
        """What the page shows about the model before any image."""
        return {
            "input_shape": list(self.info.input_shape),
            "class_names": list(self.info.class_names),
            "background": self.info.background,
            "mean": float(self.info.normalisation.mean),
            "std": float(self.info.normalisation.std),
            "layers": self.kinds,
            "names": self.info.names,
            "shown_layers": self.shown,
            "methods": list(METHODS),
        }

    @contextlib.contextmanager
    def _model(self) -> Iterator[TrainedModel]:
        """A copy of the model that no other request uses meanwhile."""
        model = self._models.get()
        try:
            yield model
        finally:
            self._models.put(model)

    def inspect(self, data: bytes, *, invert: str | None = "auto", method: str = "gradcam",
                top_k: int = 3, every_layer: bool = False) -> dict:
        """What the model makes of the image file ``data``.

        ``invert`` is that of :meth:`~cnnkit.model.TrainedModel.prepare` (None: ``'auto'``).
        Returns the prepared image with the notes on each step and the warnings where it looks
        unlike the training images, the normalised input's range,
        the ``top_k`` classes, a picture of every feature map of each shown layer (one colour
        scale per layer; with ``every_layer`` also the convolutions that an activation follows)
        and the attribution of the most probable class over the image (or the note that it is
        flat), with the time each part took.
        """
        invert = check_choice("auto" if invert is None else invert, "invert", INVERT_MODES)
        method = check_choice(method, "method", METHODS)
        top_k = check_int(top_k, "top", minimum=1)
        started = time.perf_counter()
        shown = self.info.shown_layers(every=every_layer)
        # Reading the image touches no layer, so it runs outside the borrowed copy.
        with self._admitted(data, invert) as prepared:
            inputs = self._reader.normalise(prepared.pixels[np.newaxis])
            with self._model() as model:
                model_started = time.perf_counter()
                maps, logits = model.layer_outputs(inputs, shown)
                indices, values = top_classes(softmax(logits), top_k)
                target = int(indices[0, 0])
                baseline = model.normalise(np.zeros_like(inputs, np.uint8))
                attribution = model.attribute(inputs, [target], method=method,
                                              baseline=baseline, steps=ATTRIBUTION_STEPS)[0]
                model_ms = 1000 * (time.perf_counter() - model_started)
            names = self.info.class_names
            gray = prepared.pixels.astype(np.float64).mean(axis=0)
            return {
                "image": {"png": png_data_uri(as_picture(prepared.pixels)),
                          "notes": prepared.notes, "warnings": prepared.warnings,
                          "shape": list(prepared.pixels.shape)},
                "normalised": {"min": float(inputs.min()), "max": float(inputs.max()),
                               "mean": float(inputs.mean())},
                "top": [{"class": names[i], "index": int(i), "probability": float(p)}
                        for i, p in zip(indices[0].tolist(), values[0].tolist())],
                "layers": [self._maps(index, maps[index][0]) for index in shown],
                "attribution": {"method": method, "class": names[target],
                                "png": png_data_uri(attribution_overlay(attribution, gray, method)),
                                "flat": flat_map(attribution)},
                "timing_ms": {"model": round(model_ms, 2),
                              "total": round(1000 * (time.perf_counter() - started), 2)},
            }

    def _maps(self, index: int, maps: np.ndarray) -> dict:
        """One layer's maps, each its own picture on the layer's colour scale."""
        low, high = float(maps.min()), float(maps.max())
        count, height, width = maps.shape
        return {"index": index, "name": self.info.names[index], "kind": self.kinds[index],
                "shape": [count, height, width], "min": low, "max": high,
                "maps": [png_data_uri(coloured(values, "viridis", low, high))
                         for values in maps]}

    def featuremap(self, data: bytes, *, layer: object, channel: object,
                   pixel: list[int] | None = None, invert: str | None = "auto") -> dict:
        """One feature map of the image file ``data`` in detail, with one pixel written out
        (:func:`cnnkit.featuremaps.map_detail`); the image is prepared as :meth:`inspect`
        prepares it."""
        invert = check_choice("auto" if invert is None else invert, "invert", INVERT_MODES)
        with self._admitted(data, invert) as prepared:
            inputs = self._reader.normalise(prepared.pixels[np.newaxis])
            with self._model() as model:
                return map_detail(model, inputs, layer, channel, pixel)

    @contextlib.contextmanager
    def _admitted(self, data: bytes, invert: str) -> Iterator[PreparedImage]:
        """The image file ``data`` prepared for the model, while :attr:`gate` holds the memory
        that reading it and one request's pass through the model take."""
        with saved_upload(data) as path:
            needed = self.model_memory + image_memory(path, size=self.info.input_shape[1:],
                                                      fit="pad")
            with self.gate.hold(needed, "an image through the model"):
                yield self._reader.prepare(path, invert=invert)

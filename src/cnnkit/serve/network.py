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
import os
import queue
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnkit._validate import check_choice, check_int
from cnnkit.data.imagefolder import default_workers
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.errors import CnnkitError, TooLarge
from cnnkit.featuremaps import map_detail
from cnnkit.imageio import image_shape
from cnnkit.model import INVERT_MODES, METHODS, TrainedModel, softmax, top_classes
from cnnkit.pictures import (
    as_picture,
    attribution_overlay,
    coloured,
    flat_map,
    png_data_uri,
)

__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "Inspector", "saved_upload"]

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 8 * 2**20
#: Largest upload accepted, in pixels (well below Pillow's decompression-bomb limit).
MAX_UPLOAD_PIXELS = 4096 * 4096


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
    handle, name = tempfile.mkstemp(prefix="cnnkit-serve-")
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
    """

    def __init__(self, run_dir: str | os.PathLike, *, replicas: int | None = None) -> None:
        replicas = check_int(replicas or min(2, default_workers()), "replicas", minimum=1)
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
        with saved_upload(data) as path:
            prepared = self._reader.prepare(path, invert=invert)
        inputs = self._reader.normalise(prepared.pixels[np.newaxis])
        with self._model() as model:
            model_started = time.perf_counter()
            maps, logits = model.layer_outputs(inputs, shown)
            indices, values = top_classes(softmax(logits), top_k)
            target = int(indices[0, 0])
            baseline = model.normalise(np.zeros_like(inputs, np.uint8))
            attribution = model.attribute(inputs, [target], method=method,
                                          baseline=baseline)[0]
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
        with saved_upload(data) as path:
            prepared = self._reader.prepare(path, invert=invert)
        inputs = self._reader.normalise(prepared.pixels[np.newaxis])
        with self._model() as model:
            return map_detail(model, inputs, layer, channel, pixel)

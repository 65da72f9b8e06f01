"""Inside a trained network: one image through the model, every step shown.

:class:`Inspector` loads a run's checkpoint once into the NumPy engine (no PyTorch needed) and
answers :meth:`Inspector.inspect` for image files sent by the page: the image as the model sees
it (the steps of :func:`cnnkit.explain.prepare_for_model`), the top classes, the feature maps of
the layers :func:`cnnkit.explain.layers_to_show` picks, and an attribution map from
:func:`cnnkit.explain.attribute_numpy`. The NumPy layers keep what their backward pass needs
between calls, so each request borrows a copy of the model of its own (one per core, two at
most); everything else runs in parallel.
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
from cnnkit.arch import load_architecture, trace
from cnnkit.engines.evaluation import INVERT_MODES
from cnnkit.errors import CnnkitError, TooLarge
from cnnkit.explain import METHODS, attribute_numpy, layers_to_show, prepare_for_model, tile_maps
from cnnkit.imageio import image_shape
from cnnkit.report import _attribution_overlay, _colour_table, _coloured, _png

__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "Inspector", "saved_upload"]

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 8 * 2**20
#: Largest upload accepted, in pixels (well below Pillow's decompression-bomb limit).
MAX_UPLOAD_PIXELS = 4096 * 4096
#: Choices of the white-on-black conversion, as ``cnnkit predict --invert``.


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
        from cnnkit.data.imagefolder import default_workers
        from cnnkit.engines.evaluation import default_invert, open_model

        replicas = check_int(replicas or min(2, default_workers()), "replicas", minimum=1)
        # Each copy of the model serves one request at a time (its layers keep what their
        # backward pass needs); with one copy per core, requests run in parallel.
        self._models: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(replicas):
            runner, checkpoint = open_model(run_dir, engine="numpy")
            self._models.put(runner.model.eval())
        self.info = checkpoint.model_info
        self.default_invert = default_invert(checkpoint.config.get("dataset", "synthetic-digits"))
        rows = trace(load_architecture(self.info["arch"]), self.info["input_shape"],
                     self.info["num_classes"])
        self.kinds = [row.type for row in rows]
        self.shown = layers_to_show(self.kinds)

    def describe(self) -> dict:
        """What the page shows about the model before any image."""
        return {
            "input_shape": list(self.info["input_shape"]),
            "class_names": list(self.info["class_names"]),
            "background": self.info.get("background"),
            "mean": float(self.info["mean"]),
            "std": float(self.info["std"]),
            "layers": self.kinds,
            "shown_layers": self.shown,
            "methods": list(METHODS),
        }

    @contextlib.contextmanager
    def _model(self) -> Iterator[object]:
        """A copy of the model that no other request uses meanwhile."""
        model = self._models.get()
        try:
            yield model
        finally:
            model.zero_grad()  # the attribution's parameter gradients are not kept
            self._models.put(model)

    def inspect(self, data: bytes, *, invert: str | None = None, method: str = "gradcam",
                top_k: int = 3, every_layer: bool = False) -> dict:
        """What the model makes of the image file ``data``.

        Returns the prepared image and the notes on each step, the normalised input's range,
        the ``top_k`` classes, a picture of each shown layer's feature maps (tiled, one colour
        scale per layer; with ``every_layer`` also the convolutions that an activation follows)
        and the attribution of the most probable class over the image, with the time each part
        took.
        """
        from cnnkit.engines.evaluation import normalise, softmax, top_classes

        invert = self.default_invert if invert is None else invert
        check_choice(invert, "invert", INVERT_MODES)
        method = check_choice(method, "method", METHODS)
        top_k = check_int(top_k, "top", minimum=1)
        started = time.perf_counter()
        with saved_upload(data) as path:
            prepared = prepare_for_model(path, self.info, invert=invert)
        inputs = normalise(prepared.pixels[np.newaxis], self.info)
        with self._model() as model:
            model_started = time.perf_counter()
            outputs = [inputs]
            for index in range(len(model)):
                outputs.append(model.forward_layer(index, outputs[-1]))
            probabilities = softmax(outputs[-1])
            indices, values = top_classes(probabilities, top_k)
            target = int(indices[0, 0])
            baseline = normalise(np.zeros_like(prepared.pixels)[np.newaxis], self.info)
            attribution = attribute_numpy(model, inputs, [target], method=method,
                                          baseline=baseline)[0]
            model_ms = 1000 * (time.perf_counter() - model_started)
        names = self.info["class_names"]
        gray = prepared.pixels.astype(np.float64).mean(axis=0)
        return {
            "image": {"png": _png(prepared.pixels[0] if len(prepared.pixels) == 1
                                  else prepared.pixels.transpose(1, 2, 0)),
                      "notes": prepared.notes, "shape": list(prepared.pixels.shape)},
            "normalised": {"min": float(inputs.min()), "max": float(inputs.max()),
                           "mean": float(inputs.mean())},
            "top": [{"class": names[i], "index": int(i), "probability": float(p)}
                    for i, p in zip(indices[0].tolist(), values[0].tolist())],
            "layers": [self._maps(index, outputs[index + 1][0])
                       for index in layers_to_show(self.kinds, every=every_layer)],
            "attribution": {"method": method, "class": names[target],
                            "png": _png(_attribution_overlay(attribution, gray, method))},
            "timing_ms": {"model": round(model_ms, 2),
                          "total": round(1000 * (time.perf_counter() - started), 2)},
        }

    def _maps(self, index: int, maps: np.ndarray) -> dict:
        tiles = tile_maps(maps)
        picture = _coloured(tiles, _colour_table("viridis"), float(maps.min()), float(maps.max()))
        count, height, width = maps.shape
        return {"index": index, "kind": self.kinds[index], "shape": [count, height, width],
                "min": float(maps.min()), "max": float(maps.max()), "png": _png(picture)}

"""Exporting a trained run to ONNX, checked with onnxruntime.

The exported graph takes pixels scaled to [0, 1] (``float32``, ``(batch, C, H, W)``, any batch
size) and returns the logits: the run's normalisation ``(x - mean) / std`` is folded into the
graph, so a deployment needs nothing from cnnkit. After writing, the file is loaded with
onnxruntime and its logits on a batch of test images are compared with the engine's; an export
whose logits differ by more than ``tolerance`` is not kept.

The exporter needs the optional packages of ``pip install 'cnnkit[export]'`` (onnx, onnxscript,
onnxruntime; PyTorch's exporter uses the first two).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit._files import atomic_write
from cnnkit.errors import AlreadyExists, CnnkitError, InvalidArgument, MissingPackage
from cnnkit.modelinfo import Normalisation
from cnnkit.runfolder import RunFolder

__all__ = ["EXPORT_PACKAGES", "ExportCheck", "MissingPackage", "export_onnx"]

#: The optional packages ONNX export needs (``pip install 'cnnkit[export]'``).
EXPORT_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


@dataclass(frozen=True)
class ExportCheck:
    """What the check after export found."""

    path: Path
    images: int  # test images compared
    source: str  # where they came from
    max_abs_difference: float  # largest |logit(onnxruntime) - logit(engine)|
    tolerance: float
    size_bytes: int

    def format(self) -> str:
        return (
            f"wrote {self.path} ({self.size_bytes / 1e6:.1f} MB, input 'pixels' in [0, 1], "
            f"batch dimension dynamic); onnxruntime on {self.images} {self.source}: largest "
            f"logit difference {self.max_abs_difference:.2e} (allowed {self.tolerance:.0e})"
        )


def _require_packages() -> None:
    missing = [name for name in EXPORT_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingPackage(
            f"ONNX export needs the package(s) {', '.join(missing)}; install them with "
            "pip install 'cnnkit[export]'"
        )


def export_onnx(
    run: str | os.PathLike,
    path: str | os.PathLike | None = None,
    *,
    best: bool = False,
    overwrite: bool = False,
    tolerance: float = 1e-4,
    check_images: int = 256,
    data_dir: str | os.PathLike | None = None,
) -> ExportCheck:
    """Export a run's model to one ONNX file and check it with onnxruntime.

    Parameters
    ----------
    run : path-like
        A run folder or checkpoint file.
    path : path-like, optional
        The ``.onnx`` file; default ``model.onnx`` in the run folder (a file the run owns,
        replaced on a later export).
    best : bool
        Export the run's best checkpoint instead of the last.
    overwrite : bool
        Replace an existing file at an explicit ``path``.
    tolerance : float
        Largest allowed absolute difference between onnxruntime's logits and the engine's.
    check_images : int
        Test images to compare on (random pixels when the run's data set cannot be found).

    Returns
    -------
    ExportCheck
    """
    from cnnkit.model import TrainedModel

    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise InvalidArgument(f"tolerance must be a positive number, got {tolerance!r}")
    if isinstance(check_images, bool) or not isinstance(check_images, int) or check_images < 1:
        raise InvalidArgument(f"check_images must be a positive integer, got {check_images!r}")
    run = Path(run)
    if path is None:
        target, replace = RunFolder.of(run).onnx, True
    else:
        target, replace = Path(path), overwrite
        if target.suffix.lower() != ".onnx":
            raise InvalidArgument(f"the output must end in .onnx, got {str(target)!r}")
        if target.exists() and not overwrite:
            raise AlreadyExists(f"{target} exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise InvalidArgument(f"the folder of {target} does not exist")
    _require_packages()
    model = TrainedModel.load(run, engine="torch", device="cpu", best=best)
    pixels, source = _check_batch(model, check_images, data_dir)
    images = pixels.astype(np.float32) / np.float32(255.0)
    wrapped = _with_normalisation(model.runner.model, model.info.normalisation)
    expected = model.logits(model.normalise(pixels))
    measured: list[float] = []

    def write(temporary: Path) -> None:
        # Checked before the rename: a file that disagrees with the engine is never kept.
        _torch_export(wrapped, model.info.input_shape, temporary)
        difference = float(np.abs(_onnxruntime_logits(temporary, images) - expected).max())
        if not difference <= tolerance:
            raise CnnkitError(
                f"the exported model's logits differ from the engine's by {difference:.2e}, more "
                f"than {tolerance:.0e}; the file was not written"
            )
        measured.append(difference)

    atomic_write(target, write, overwrite=replace)
    return ExportCheck(target, len(pixels), source, measured[0], tolerance,
                       target.stat().st_size)


def _check_batch(model, count: int, data_dir) -> tuple[np.ndarray, str]:
    """Up to ``count`` uint8 test images, or seeded random pixels without the data."""
    from cnnkit.evaluation import load_split

    try:
        _, _, images, _ = load_split(model.checkpoint, "the exported model", None, split="test",
                                     data_dir=data_dir)
        return images[:count], "test images"
    except CnnkitError:
        shape = model.info.input_shape
        pixels = np.random.default_rng(0).integers(0, 256, (min(count, 64), *shape), np.uint8)
        return pixels, "random images (the run's data set was not found)"


def _with_normalisation(network, normalisation: Normalisation):
    """The network behind the run's normalisation of [0, 1] pixels, ``pixels * 255 * scale -
    shift`` (the formula of :class:`cnnkit.modelinfo.Normalisation`), so the graph takes plain
    pixels."""
    import torch

    class Normalised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network
            self.register_buffer("scale", torch.tensor(255.0 * float(normalisation.scale)))
            self.register_buffer("shift", torch.tensor(float(normalisation.shift)))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.network(pixels * self.scale - self.shift)

    return Normalised().eval()


def _torch_export(model, input_shape: tuple[int, ...], path: Path) -> None:
    """One self-contained file (no external data), the batch dimension dynamic."""
    import torch

    example = torch.zeros((2, *input_shape))
    batch = torch.export.Dim("batch", min=1)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it notes each optional library it does not find
    try:
        with warnings.catch_warnings():
            # The exporter reports its progress and its own deprecations as warnings.
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=["pixels"], output_names=["logits"],
                dynamic_shapes=({0: batch},), external_data=False, verbose=False,
            )
            program.save(str(path), external_data=False)
    finally:
        exporter_log.setLevel(level)


def _onnxruntime_logits(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"pixels": images})[0]

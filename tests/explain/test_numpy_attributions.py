"""Attributions by the NumPy engine's own backward pass agree with PyTorch's autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.engines.evaluation import load_model
from cnnkit.errors import InvalidArgument
from cnnkit.explain import METHODS, _bilinear_resize, attribute, attribute_numpy


@pytest.fixture(scope="module")
def both(run_dir):
    """One checkpoint, loaded by both engines, and a batch of normalised inputs."""
    torch_model, checkpoint = load_model(run_dir, engine="torch")
    numpy_model, _ = load_model(run_dir, engine="numpy")
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((5, *checkpoint.model_info["input_shape"])).astype(np.float32)
    return torch_model, numpy_model, inputs, np.array([0, 3, 7, 9, 2])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layer", [None, 1])
def test_numpy_and_torch_attributions_agree(both, method, layer):
    """Saliency, Grad-CAM (default and chosen layer) and integrated gradients: the NumPy
    engine's maps equal autograd's within float32 rounding."""
    torch_model, numpy_model, inputs, targets = both
    expected = attribute(torch_model, torch.from_numpy(inputs), targets, method=method,
                         layer=layer, steps=8)
    got = attribute_numpy(numpy_model, inputs, targets, method=method, layer=layer, steps=8)
    assert got.shape == expected.shape == (len(inputs), *inputs.shape[2:])
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale, rtol=0)


def test_bilinear_resize_matches_torch():
    """The map upsampling equals torch's bilinear interpolation with align_corners=False."""
    maps = np.random.default_rng(1).random((2, 7, 5)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], size=(28, 13),
                                               mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(_bilinear_resize(maps, (28, 13)), expected.numpy(), atol=1e-6)


def test_unknown_layer_is_refused(both):
    """Grad-CAM on a layer without feature maps is refused, naming the allowed ones."""
    _, numpy_model, inputs, targets = both
    with pytest.raises(InvalidArgument, match=r"layer must be the index .*\(0, 1, 2, 3, 4, 5\)"):
        attribute_numpy(numpy_model, inputs, targets, method="gradcam", layer=7)

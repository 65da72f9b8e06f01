"""Explanations, nearest classic kernels, the PCA map and image preparation, on constructed
cases (the attributions themselves are checked in test_attributions.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tests.specs import SMALL, feature_map_shapes, shown_layers

from cnnkit.errors import InvalidArgument
from cnnkit.evidence import classic_kernels, nearest_classic_kernel
from cnnkit.explain import explain_images, explanation_figure, pca_2d
from cnnkit.filters.kernels import gaussian_kernel, laplacian_kernel, scharr_kernel, sobel_kernel
from cnnkit.model import TrainedModel
from cnnkit.modelinfo import ModelInfo, Normalisation
from cnnkit.pictures import tile_maps


def _tutorial_info() -> ModelInfo:
    return ModelInfo.from_dict({"arch": "tutorial", "input_shape": [1, 28, 28],
                                "num_classes": 10, "class_names": list("0123456789"),
                                "mean": 0.2, "std": 0.3, "background": "dark"})


def _dark_background_model() -> TrainedModel:
    """A 1x28x28 model trained (as it says) on light-on-dark images, normalised 0.2/0.3."""
    weights = {"1.weight": np.zeros((2, 784), np.float32), "1.bias": np.zeros(2, np.float32)}
    return TrainedModel.from_weights(
        {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}]}, (1, 28, 28),
        weights, normalisation=Normalisation(0.2, 0.3), background="dark", engine="numpy")


def test_feature_map_layers_follow_the_traced_kinds():
    """The tutorial's layers 0-5 have maps; shown are those after each activation and pooling
    (a convolution followed by ReLU is shown through its ReLU); Grad-CAM looks at the last
    convolution's ReLU."""
    info = _tutorial_info()
    assert info.spatial_layers == [0, 1, 2, 3, 4, 5]
    assert info.shown_layers() == [1, 2, 4, 5]
    assert info.shown_layers(every=True) == info.spatial_layers
    assert info.gradcam_layer == 4
    assert [info.layers[i].output_shape for i in (0, 2, 5)] == [(32, 28, 28), (32, 14, 14),
                                                               (64, 7, 7)]


def test_sobel_first_layer_is_labelled_sobel():
    """A network whose first layer was set to classic kernels gets each one's name back."""
    kernels = {
        "sobel-x": (sobel_kernel(1), 1),
        "sobel-y": (-sobel_kernel(0), -1),
        "scharr-diag": (np.array([[-10.0, -3, 0], [-3, 0, 3], [0, 3, 10]]), 1),
        "prewitt-antidiag": (np.array([[0.0, 1, 1], [-1, 0, 1], [-1, -1, 0]]), 1),
        "laplacian-4": (laplacian_kernel(4) * 0.3 + 0.05, 1),
        "gaussian σ=1": (gaussian_kernel(1.0, radius=1), 1),
        "box": (np.full((3, 3), -0.2), -1),
        "identity": (np.eye(3)[1][:, None] * np.eye(3)[1][None, :], 1),
    }
    stacked = np.stack([k for k, _ in kernels.values()])[:, None].astype(np.float32)
    model = TrainedModel.from_weights(
        {"layers": [{"type": "conv2d", "out_channels": len(kernels), "kernel_size": 3},
                    {"type": "flatten"}, {"type": "linear", "out_features": 2}]}, (1, 3, 3),
        {"0.weight": stacked, "0.bias": np.zeros(len(kernels), np.float32),
         "2.weight": np.zeros((2, len(kernels)), np.float32), "2.bias": np.zeros(2, np.float32)},
        engine="numpy")
    (_, weights), = model.conv_weights()
    for (name, (_, sign)), kernel in zip(kernels.items(), weights[:, 0], strict=True):
        match = nearest_classic_kernel(kernel)
        assert (match.name, match.sign) == (name, sign)
        assert match.similarity == pytest.approx(1.0)


def test_nearest_kernel_in_a_larger_kernel_and_with_noise():
    """A 3x3 Sobel inside a 5x5 kernel, plus a little noise, is still Sobel, less similar."""
    rng = np.random.default_rng(7)
    kernel = np.zeros((5, 5))
    kernel[1:4, 1:4] = scharr_kernel(0)
    noisy = kernel + rng.normal(0, 0.3, (5, 5))
    match = nearest_classic_kernel(noisy)
    assert match.name == "scharr-y" and 0.8 < match.similarity < 1.0


def test_classic_kernels_fit_the_size():
    """Every classic kernel has the requested size; those larger than it are left out."""
    assert all(k.shape == (5, 5) for k in classic_kernels(5).values())
    assert "sobel-x 5×5" in classic_kernels(5)
    assert set(classic_kernels(1)) == {"identity", "box", "gaussian σ=0.5", "gaussian σ=1",
                                       "gaussian σ=2"}


def test_pca_matches_the_covariance_eigenvectors():
    """The two coordinates are the projections on the covariance's top two eigenvectors."""
    rng = np.random.default_rng(8)
    features = rng.normal(size=(200, 6)) * [5, 3, 1, 0.5, 0.2, 0.1] + 10
    coordinates, explained = pca_2d(features)
    centred = features - features.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = vectors[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(coordinates), np.abs(centred @ top), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(explained, values[::-1][:2] / values.sum(), rtol=1e-8)


def test_pca_separates_separated_classes():
    """Two clusters far apart in feature space fall on opposite sides of the first axis."""
    rng = np.random.default_rng(9)
    features = np.concatenate([rng.normal(0, 1, (50, 20)), rng.normal(6, 1, (50, 20))])
    coordinates, _ = pca_2d(features)
    first, second = coordinates[:50, 0], coordinates[50:, 0]
    assert first.max() < second.min() or second.max() < first.min()


def test_tile_maps_places_each_map():
    """Map i lands in row i // columns, column i % columns, with NaN gaps between."""
    maps = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    grid = tile_maps(maps, columns=3)
    assert grid.shape == (5, 11)
    assert grid[3, 4] == 4.0 and grid[0, 8] == 2.0 and np.isnan(grid[2, 0])
    assert np.isnan(grid[3, 8])


def test_prepare_notes_conversion_resizing_and_inversion(tmp_path):
    """An RGBA image of another size, light background: each step is noted."""
    picture = np.full((40, 56, 4), 255, np.uint8)
    picture[10:30, 20:36, :3] = 0
    Image.fromarray(picture, "RGBA").save(tmp_path / "shoe.png")
    prepared = _dark_background_model().prepare(tmp_path / "shoe.png", invert="auto")
    assert prepared.pixels.shape == (1, 28, 28)
    assert prepared.notes[:4] == ["converted from RGBA to grayscale",
                                  "padded to the input's aspect ratio with its background colour",
                                  "resized from 56×40 to 28×28",
                                  "inverted to light on dark, as the training images are"]
    assert prepared.notes[4].startswith("normalised: (pixel/255 - 0.200) / 0.300")


def test_prepare_notes_nothing_for_a_matching_image(tmp_path):
    """A grayscale 28x28 image on a dark background needs only normalising."""
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    assert len(_dark_background_model().prepare(tmp_path / "digit.png").notes) == 1


def test_prepare_refuses_a_non_image(tmp_path):
    """A text file is refused with its name."""
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        _dark_background_model().prepare(tmp_path / "notes.txt")


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_explain_images_of_a_trained_run(trained_run, tmp_path, engine):
    """Top classes sorted, maps of the shown layers, one attribution per image; --layer
    keeps one layer (with that layer's shape); a layer without maps is refused; on either
    engine."""
    shapes = feature_map_shapes(SMALL, (1, 28, 28))
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    (result,) = explain_images(trained_run, [tmp_path / "blank.png"], method="saliency",
                               top_k=4, engine=engine)
    assert len(result.top_classes) == 4
    assert result.top_probabilities == sorted(result.top_probabilities, reverse=True)
    assert sorted(result.maps) == shown_layers(SMALL)
    assert result.attribution.shape == (28, 28)
    layer = shown_layers(SMALL)[-2]  # the last convolution's ReLU
    (single,) = explain_images(trained_run, [tmp_path / "blank.png"], layer=layer,
                               engine=engine)
    assert list(single.maps) == [layer] and single.maps[layer].shape == shapes[layer]
    assert len(explanation_figure(single).axes) >= 4
    flatten = len(shapes)  # the first layer without maps
    with pytest.raises(InvalidArgument, match=f"got {flatten}"):
        explain_images(trained_run, [tmp_path / "blank.png"], layer=flatten, engine=engine)

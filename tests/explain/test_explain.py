"""Feature maps, attributions, nearest classic kernels and the PCA map, on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.arch import load_architecture, trace
from cnnkit.engines.model import build_model
from cnnkit.errors import InvalidArgument
from cnnkit.explain import (
    attribute,
    classic_kernels,
    conv_weights,
    explain_images,
    explanation_figure,
    feature_maps,
    nearest_classic_kernel,
    pca_2d,
    prepare_for_model,
    shown_layers,
    spatial_layers,
    tile_maps,
)
from cnnkit.filters.kernels import gaussian_kernel, laplacian_kernel, scharr_kernel, sobel_kernel

INFO = {"input_shape": [1, 28, 28], "mean": 0.2, "std": 0.3, "background": "dark"}


def _left_half_network(seed: int = 0) -> nn.Sequential:
    """conv 3x3 (padding 1), ReLU, linear on 16x16 inputs; the linear layer ignores the conv
    outputs in columns 7 and up, so the right half (input columns 8 and up) cannot change any
    score."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 16 * 16, 3))
    with torch.no_grad():
        model[3].weight.view(3, 4, 16, 16)[..., 7:] = 0.0
    return model.eval()


def test_feature_map_shapes_equal_the_summary():
    """Every spatial layer's feature maps have the shape the architecture summary traces."""
    arch = load_architecture("tutorial")
    model = build_model(arch, (1, 28, 28)).eval()
    maps = feature_maps(model, torch.randn(2, 1, 28, 28))
    rows = trace(arch, (1, 28, 28))
    assert sorted(maps) == spatial_layers(model) == [0, 1, 2, 3, 4, 5]
    for index, values in maps.items():
        assert values.shape == (2, *rows[index].output_shape)


def test_shown_layers_are_after_activation_and_pooling():
    """A convolution followed by ReLU is shown through its ReLU; pooling layers are shown."""
    model = build_model(load_architecture("tutorial"), (1, 28, 28))
    assert shown_layers(model) == [1, 2, 4, 5]


@pytest.mark.parametrize("method", ["saliency", "integrated-gradients"])
def test_network_seeing_only_the_left_half_gives_zero_attribution_on_the_right(method):
    """Inputs the scores cannot depend on get exactly zero attribution; the left half does not."""
    model = _left_half_network()
    inputs = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    result = attribute(model, inputs, [0, 1, 2], method=method)
    assert result.shape == (3, 16, 16)
    assert np.all(result[:, :, 8:] == 0.0)
    assert np.all(np.abs(result[:, :, :6]).sum(axis=(1, 2)) > 0)


def test_saliency_of_a_linear_model_is_the_weight_size():
    """For score = w·x the saliency is |w| (largest over channels)."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).eval()
    result = attribute(model, torch.randn(1, 2, 5, 5), [1], method="saliency")
    expected = model[1].weight[1].detach().abs().view(2, 5, 5).amax(dim=0).numpy()
    np.testing.assert_allclose(result[0], expected, rtol=1e-6)


def test_integrated_gradients_of_a_linear_model_are_exact():
    """For score = w·x + b, integrated gradients are (x - x0)·w summed over channels."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 2)).eval()
    inputs, baseline = torch.randn(2, 2, 4, 4), torch.full((1, 2, 4, 4), -0.5)
    result = attribute(model, inputs, [0, 1], method="integrated-gradients", baseline=baseline,
                       steps=4)
    weights = model[1].weight.detach().view(2, 2, 4, 4)
    expected = ((inputs - baseline) * weights).sum(dim=1).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_add_up_to_the_score_difference():
    """Completeness: the attributions sum to score(x) - score(baseline) (midpoint rule, 1%)."""
    model = _left_half_network(seed=4)
    inputs = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    result = attribute(model, inputs, [2, 0], method="integrated-gradients", steps=128)
    with torch.no_grad():
        scores = model(inputs)[[0, 1], [2, 0]] - model(torch.zeros(1, 1, 16, 16))[0, [2, 0]]
    np.testing.assert_allclose(result.sum(axis=(1, 2)), scores.numpy(), rtol=1e-2, atol=1e-3)


def test_gradcam_of_a_summing_network_is_the_rectified_activation():
    """With score = sum of the activation every channel weight is 1, so Grad-CAM equals the
    activation (same size: nothing to interpolate)."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(36, 1, bias=False)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(sobel_kernel(1)).view(1, 1, 3, 3))
        model[3].weight.fill_(1.0)
    inputs = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(6))
    result = attribute(model, inputs, [0], method="gradcam")
    expected = torch.relu(model[0](inputs)).detach().numpy()[:, 0]
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_gradcam_refuses_a_layer_without_maps():
    """Grad-CAM on the flatten layer is refused, naming the layers that have maps."""
    with pytest.raises(InvalidArgument, match=r"\(0, 1\), got 2"):
        attribute(_left_half_network(), torch.rand(1, 1, 16, 16), [0], method="gradcam",
                  layer=2)


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
    model = nn.Sequential(nn.Conv2d(1, len(kernels), 3), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(np.stack([k for k, _ in kernels.values()]))[:, None])
    (_, weights), = conv_weights(model)
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
    prepared = prepare_for_model(tmp_path / "shoe.png", INFO)
    assert prepared.pixels.shape == (1, 28, 28)
    assert prepared.notes[:4] == ["converted from RGBA to grayscale",
                                  "padded to the input's aspect ratio with its background colour",
                                  "resized from 56×40 to 28×28",
                                  "inverted to light on dark, as the training images are"]
    assert prepared.notes[4].startswith("normalised: (pixel/255 - 0.200) / 0.300")


def test_prepare_notes_nothing_for_a_matching_image(tmp_path):
    """A grayscale 28x28 image on a dark background needs only normalising."""
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    assert len(prepare_for_model(tmp_path / "digit.png", INFO).notes) == 1


def test_prepare_refuses_a_non_image(tmp_path):
    """A text file is refused with its name."""
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        prepare_for_model(tmp_path / "notes.txt", INFO)


def test_explain_images_of_a_trained_run(run_dir, tmp_path):
    """Top classes sorted, maps of the shown layers, one attribution per image; --layer
    keeps one layer."""
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    (result,) = explain_images(run_dir, [tmp_path / "blank.png"], method="saliency", top_k=4)
    assert len(result.top_classes) == 4
    assert result.top_probabilities == sorted(result.top_probabilities, reverse=True)
    assert sorted(result.maps) == [1, 2, 4, 5]
    assert result.attribution.shape == (28, 28)
    (single,) = explain_images(run_dir, [tmp_path / "blank.png"], layer=4)
    assert list(single.maps) == [4] and single.maps[4].shape == (8, 14, 14)
    assert len(explanation_figure(single).axes) >= 4
    with pytest.raises(InvalidArgument, match="got 6"):
        explain_images(run_dir, [tmp_path / "blank.png"], layer=6)

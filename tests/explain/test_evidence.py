"""Evidence with baselines: learned kernels against random ones, the patches a filter responds
to, and the sanity checks of the attributions, each against an independent reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from scipy.signal import correlate2d
from scipy.stats import spearmanr

from cnnkit import evidence
from cnnkit.cli import main
from cnnkit.data import load_dataset
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.errors import InvalidArgument
from cnnkit.evidence import (
    classic_kernels,
    compare_kernels,
    kernel_baseline,
    nearest_classic_kernels,
    rank_correlation,
    top_patches,
)
from cnnkit.filters.kernels import scharr_kernel, sobel_kernel
from cnnkit.model import TrainedModel
from cnnkit.pictures import flat_map
from cnnkit.runfolder import RunFolder


def _one_by_one(kernel: np.ndarray) -> tuple[str, float, int]:
    """The nearest classic kernel written as a plain loop (the definition), as the reference."""
    def cosine(a, b):
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        return float((a * b).sum() / norm) if norm > 1e-12 else 0.0

    best = None
    for name, template in classic_kernels(kernel.shape[0]).items():
        shape = template - template.mean()
        similarity = (cosine(kernel, template) if np.linalg.norm(shape) < 1e-12
                      else cosine(kernel - kernel.mean(), shape))
        key = (round(abs(similarity), 9), abs(cosine(kernel, template)))
        if best is None or key > best[0]:
            best = (key, name, similarity)
    return best[1], abs(best[2]), -1 if best[2] < 0 else 1


@given(st.integers(1, 7), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_all_kernels_at_once_equal_the_loop(size, count, seed):
    """The vectorised matcher gives the loop's name, similarity and sign for every kernel."""
    kernels = np.random.default_rng(seed).standard_normal((count, size, size))
    kernels[0] = np.round(kernels[0])  # ties and zeros happen with whole numbers
    for kernel, match in zip(kernels, nearest_classic_kernels(kernels), strict=True):
        name, similarity, sign = _one_by_one(kernel)
        assert (match.name, match.sign) == (name, sign) or similarity < 1e-9
        assert match.similarity == pytest.approx(similarity, abs=1e-12)


def _conv_model(weights: np.ndarray, size: int = 8, engine: str = "numpy") -> TrainedModel:
    """conv (the given weights, padding 1) -> flatten -> linear to 2 classes, 1xSxS inputs."""
    out, channels, k, _ = weights.shape
    layers = [{"type": "conv2d", "out_channels": out, "kernel_size": k, "padding": 1},
              {"type": "flatten"}, {"type": "linear", "out_features": 2}]
    features = out * (size + 2 - k + 1) ** 2
    return TrainedModel.from_weights(
        {"layers": layers}, (channels, size, size),
        {"0.weight": weights.astype(np.float32), "0.bias": np.zeros(out, np.float32),
         "2.weight": np.zeros((2, features), np.float32), "2.bias": np.zeros(2, np.float32)},
        engine=engine)


def test_baseline_is_the_layers_own_initialiser():
    """Kernels drawn by torch.nn.Conv2d's default initialisation (an independent draw) beat
    the baseline's 95th percentile about 5% of the time and its median about half."""
    model = _conv_model(np.zeros((1, 2, 5, 5)))
    baseline = kernel_baseline(model, 0)
    torch.manual_seed(3)
    fresh = torch.nn.Conv2d(2, 2000, 5).weight.detach().double().numpy().sum(axis=1)
    scores = np.array([m.similarity for m in nearest_classic_kernels(fresh)])
    assert np.mean(scores > baseline.percentile(95)) == pytest.approx(0.05, abs=0.02)
    assert np.mean(scores > baseline.percentile(50)) == pytest.approx(0.5, abs=0.05)
    assert baseline.channels == 2 and baseline.kernel_size == 5


def test_classic_kernels_are_close_and_random_ones_mostly_not():
    """A layer holding Sobel and Scharr kernels matches them far above every random kernel;
    kernels as initialised have 'no close match' about 95% of the time."""
    rng = np.random.default_rng(4)
    classic = np.stack([sobel_kernel(1), -scharr_kernel(0)])[:, None]
    random = rng.uniform(-1, 1, (40, 1, 3, 3))
    comparisons = compare_kernels(_conv_model(np.concatenate([classic, random])), 0)
    assert [c.match.name for c in comparisons[:2]] == ["sobel-x", "scharr-y"]
    assert all(c.close and c.rank > 99.5 for c in comparisons[:2])
    assert "beats 100% of random" in comparisons[0].label
    close = sum(c.close for c in comparisons[2:])
    assert close <= 8
    assert any(c.label.startswith("no close match") for c in comparisons[2:])


def test_training_keeps_the_initial_weights(tmp_path):
    """A run keeps its weights before the first step: the NumPy engine's initialisation drawn
    from the run's seed, and different from the trained weights."""
    from cnnkit.arch import load_architecture
    from cnnkit.engines.training import TrainConfig, train
    from cnnkit.nn import build_model

    config = TrainConfig(dataset="synthetic-digits", arch="tutorial", epochs=1, train_limit=64,
                         val_size=32, engine="numpy", seed=7)
    train(config, tmp_path / "run", evaluate_test=False)
    initial = load_checkpoint(RunFolder(tmp_path / "run").initial)
    expected = build_model(load_architecture("tutorial"), (1, 28, 28), 10, seed=7,
                           dtype=np.float32).state_dict()
    assert initial.epoch == 0
    np.testing.assert_array_equal(initial.model["0.weight"], expected["0.weight"])
    model = TrainedModel.load(tmp_path / "run", engine="numpy")
    assert not np.array_equal(evidence.initial_kernels(model, 0),
                              dict(model.conv_weights())[0])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_top_patches_are_the_strongest_windows(engine):
    """Each channel's patches are the images with the largest response, strongest first, cut
    to the receptive field around the strongest position (padding at the background)."""
    rng = np.random.default_rng(5)
    weights = rng.standard_normal((2, 1, 3, 3))
    images = rng.integers(0, 256, (30, 1, 8, 8), dtype=np.uint8)
    model = _conv_model(weights, engine=engine)
    patches = top_patches(model, images, 0, per_channel=4, batch_size=7)
    inputs = model.normalise(images)
    for channel, found in enumerate(patches):
        responses = np.stack([correlate2d(x[0], weights[channel, 0], mode="same")
                              for x in inputs.astype(np.float64)])
        best = responses.reshape(30, -1).max(axis=1)
        assert [p.image for p in found] == list(np.argsort(-best, kind="stable")[:4])
        for patch in found:
            assert patch.value == pytest.approx(best[patch.image], rel=1e-5, abs=1e-5)
            assert responses[patch.image, patch.row, patch.column] == pytest.approx(
                best[patch.image], rel=1e-5, abs=1e-5)
            padded = np.pad(images[patch.image, 0], 1)  # dark background: zeros
            top, left = patch.box[0] + 1, patch.box[1] + 1
            np.testing.assert_array_equal(patch.pixels[0], padded[top:top + 3, left:left + 3])


def test_top_patches_refuse_bad_input():
    """A layer without maps and images of another shape are refused by name."""
    model = _conv_model(np.zeros((1, 1, 3, 3)))
    with pytest.raises(InvalidArgument, match="layer must be the index"):
        top_patches(model, np.zeros((2, 1, 8, 8), np.uint8), 2)
    with pytest.raises(InvalidArgument, match=r"images must be uint8 \(N, 1, 8, 8\)"):
        top_patches(model, np.zeros((2, 1, 9, 9), np.uint8), 0)


@given(st.lists(st.integers(-3, 3), min_size=3, max_size=30), st.integers(0, 2**32 - 1))
def test_rank_correlation_equals_scipy(values, seed):
    """Spearman's correlation (with ties) equals scipy.stats.spearmanr; constant maps give 0."""
    first = np.array(values, np.float64)
    second = np.random.default_rng(seed).permutation(first) + np.arange(len(first)) % 2
    if np.ptp(first) == 0 or np.ptp(second) == 0:
        assert rank_correlation(first, second) == 0.0
    else:
        assert rank_correlation(first, second) == pytest.approx(
            spearmanr(first, second).statistic, abs=1e-12)


def test_flat_maps_are_named():
    """A constant or nearly constant map is called flat, with its range; a real one is not."""
    assert flat_map(np.zeros((4, 4))) == "flat map (range 0 to 0)"
    assert flat_map(np.full((2, 2), 0.1) + np.eye(2) * 1e-9).startswith("flat map (range 0.1")
    assert flat_map(np.eye(3)) is None


def test_attributions_pass_and_a_method_that_ignores_the_weights_fails(trained_run, monkeypatch):
    """On a trained run, randomising every layer decorrelates saliency and Grad-CAM; a
    'method' that draws the input itself keeps a correlation of 1 and fails both checks."""
    model = TrainedModel.load(trained_run, engine="numpy")
    data = load_dataset("synthetic-digits")
    pixels = data.test_images[:6]
    steps = evidence.cascading_randomisation(model, pixels, methods=("saliency", "gradcam"))
    assert [step.randomised for step in steps][-1].startswith(model.info.names[0])
    assert steps[-1].passed("saliency") and steps[-1].passed("gradcam")

    def input_only(self, inputs, targets, **options):
        return np.abs(np.asarray(inputs)).sum(axis=1)  # the same whatever the weights

    monkeypatch.setattr(TrainedModel, "attribute", input_only)
    steps = evidence.cascading_randomisation(model, pixels, methods=("saliency",))
    assert all(step.correlations["saliency"] == pytest.approx(1.0) for step in steps)
    assert not steps[-1].passed("saliency")
    shuffled = evidence.label_randomisation(model, pixels, data.train_images[:256],
                                            data.train_labels[:256], steps=4,
                                            methods=("saliency",))
    assert not shuffled.passed("saliency")


def test_weights_and_explain_commands_show_the_evidence(trained_run, tmp_path, capsys):
    """weights prints the baseline, a verdict per kernel and the counts, and draws the kernels
    and the patches; explain --sanity-check prints both checks for every method."""
    Image.fromarray(load_dataset("synthetic-digits").test_images[0, 0]).save(tmp_path / "d.png")
    assert main(["weights", str(trained_run), "-o", str(tmp_path / "w.png"), "--patches",
                 str(tmp_path / "p.png"), "--images", "300", "--engine", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "random baseline: 2,000 kernels drawn as the layer is initialised" in out
    assert "beat the random 95th percentile:" in out and "at initialisation" in out
    assert out.count("  kernel ") == 6 and "% of random)" in out
    assert "patches of conv1, conv2 over 300 test images" in out
    for name in ("w.png", "p.png"):
        with Image.open(tmp_path / name) as figure:
            assert np.asarray(figure).std() > 0
    assert main(["explain", str(trained_run), str(tmp_path / "d.png"), "-o",
                 str(tmp_path / "e.png"), "--sanity-check", "--engine", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "trained 200 steps on shuffled labels" in out
    for method in ("saliency", "gradcam", "integrated-gradients"):
        assert f"  {method}: " in out

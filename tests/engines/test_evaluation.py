"""Evaluation and prediction against the model run directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import load_dataset
from cnnkit.engines.training import TrainConfig, train
from cnnkit.evaluation import confusion_matrix, evaluate, predict
from cnnkit.model import TrainedModel


def _direct(run, images):
    """Probabilities of the checkpoint's model on uint8 images, computed here step by step."""
    loaded = TrainedModel.load(run, engine="torch")
    model, info = loaded.runner.model, loaded.checkpoint.model_info
    x = (torch.from_numpy(images).float() / 255 - info["mean"]) / info["std"]
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def test_evaluation_matches_direct_computation(trained_run):
    """Accuracy, confusion matrix, precision and recall equal those computed directly."""
    data = load_dataset("synthetic-digits")
    result = evaluate(trained_run, device="cpu")
    predicted = _direct(trained_run, data.test_images).argmax(1)
    expected = np.zeros((10, 10), dtype=np.int64)
    np.add.at(expected, (data.test_labels, predicted), 1)
    np.testing.assert_array_equal(result.confusion, expected)
    assert result.accuracy == pytest.approx((predicted == data.test_labels).mean())
    for c in range(10):
        hits = ((predicted == c) & (data.test_labels == c)).sum()
        assert result.recall[c] == pytest.approx(hits / (data.test_labels == c).sum())
        assert result.precision[c] == pytest.approx(hits / max((predicted == c).sum(), 1))
    text = result.format()
    assert "accuracy" in text and "confusion matrix" in text and len(text.splitlines()) > 20


def test_train_reports_the_test_accuracy_that_evaluate_gives(tmp_path, small_arch):
    """A run trained in bf16 reports the fp32 test accuracy and loss of cnnkit evaluate."""
    lines = []
    config = TrainConfig(dataset="synthetic-digits", arch=small_arch, epochs=1, val_size=100,
                         train_limit=600, seed=4, device="cpu", precision="bf16")
    result = train(config, tmp_path / "run", log=lines.append)
    again = evaluate(tmp_path / "run", device="cpu")
    assert result.precision == "bf16"
    assert result.test_accuracy == again.accuracy
    assert result.test_loss == pytest.approx(again.loss, rel=1e-6)
    assert any("(computed in fp32, as cnnkit evaluate does)" in line for line in lines)


def test_confusion_matrix_counts_pairs():
    """The confusion matrix counts (true, predicted) pairs, rows true."""
    matrix = confusion_matrix(np.array([2, 2, 0, 1]), np.array([2, 0, 0, 1]), 3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 0], [1, 0, 1]])


def test_prediction_inverts_light_backgrounds(trained_run, tmp_path):
    """A dark-on-light scan is inverted automatically and classified like the original."""
    data = load_dataset("synthetic-digits")
    images = data.test_images[:4]
    paths = []
    for index, image in enumerate(images):
        path = tmp_path / f"{index}.png"
        Image.fromarray(255 - image[0]).save(path)
        paths.append(path)
    results = predict(trained_run, paths, top_k=3)
    direct = _direct(trained_run, images)
    for result, probabilities in zip(results, direct, strict=True):
        assert result.inverted
        order = np.argsort(-probabilities)[:3]
        assert result.indices == order.tolist()
        np.testing.assert_allclose(result.probabilities, probabilities[order], atol=1e-5)
    kept = predict(trained_run, paths[:1], invert="never")[0]
    assert not kept.inverted


def test_prediction_pads_to_square_resizes_and_converts_colour(trained_run, tmp_path):
    """An RGB 50-wide, 60-high image on black is padded with 5 black columns on each side, then
    brought to 1x28x28 (Pillow grayscale + resize), and said to be padded."""
    path = tmp_path / "big.png"
    rgb = np.zeros((60, 50, 3), dtype=np.uint8)
    rgb[10:50, 20:30] = (255, 255, 255)
    Image.fromarray(rgb).save(path)
    result = predict(trained_run, [path], top_k=10)[0]
    assert result.padded and not result.inverted
    assert sorted(result.indices) == list(range(10))
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-4)
    square = np.zeros((60, 60, 3), dtype=np.uint8)
    square[:, 5:55] = rgb
    expected = np.array(Image.fromarray(square).convert("L").resize(
        (28, 28), Image.Resampling.BILINEAR))
    direct = _direct(trained_run, expected[None, None])[0]
    np.testing.assert_allclose(result.probabilities[0], direct.max(), atol=1e-5)


def test_unreadable_image_is_refused(trained_run, tmp_path):
    """A file that is not an image is refused by name."""
    path = tmp_path / "broken.png"
    path.write_bytes(b"nope")
    with pytest.raises(ValueError, match=r"broken\.png"):
        predict(trained_run, [path])


def test_prediction_arguments_are_checked(trained_run, tmp_path):
    """Empty image lists, bad top-k and bad invert values are refused."""
    with pytest.raises(ValueError, match="non-empty list"):
        predict(trained_run, [])
    with pytest.raises(ValueError, match="top_k"):
        predict(trained_run, ["x.png"], top_k=0)
    with pytest.raises(ValueError, match="invert"):
        predict(trained_run, [tmp_path / "x.png"], invert="maybe")


def test_evaluating_on_another_input_shape_is_refused(trained_run, tmp_path):
    """A model evaluated on images of another shape is refused with both shapes named."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "x.png")
    with pytest.raises(ValueError, match=r"trained for 10 classes, not 2"):
        evaluate(trained_run, f"imagefolder:{tmp_path}", device="cpu")

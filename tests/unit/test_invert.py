"""One invert rule for every model: a picture is inverted when its border and the training
images' background lie on two sides of one half; pictures unlike the training data get warnings.

Regression: a Fashion-MNIST model used to default to ``invert='never'`` (only digit data sets
defaulted to ``'auto'``), so a dark drawing of trousers on white came out as "Shirt" without a
word.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from cnnkit.cli import main
from cnnkit.engines.training import image_statistics
from cnnkit.evaluation import predict
from cnnkit.model import (
    UNLIKE_TRAINING_STDS,
    TrainedModel,
    border_brightness,
    inverts,
)
from cnnkit.modelinfo import ModelInfo, Normalisation, background_of

#: Fashion-MNIST's pixel mean and standard deviation, and its two confusable classes.
FASHION = Normalisation(0.286, 0.353)
CLASSES = ["Shirt", "Trouser"]

images = arrays(np.uint8, st.tuples(st.sampled_from([1, 3]), st.integers(2, 9),
                                    st.integers(2, 9)))


def _trousers(size: int = 28) -> np.ndarray:
    """Two light trouser legs on black, as Fashion-MNIST draws them: uint8 (size, size)."""
    picture = np.zeros((size, size), np.uint8)
    top, bottom = size // 7, size - size // 7
    picture[top:bottom, size // 4:size // 2 - 1] = 230
    picture[top:bottom, size // 2 + 1:3 * size // 4] = 230
    picture[top:top + size // 7, size // 4:3 * size // 4] = 230
    return picture


def _trouser_model(background: str | None = "dark", dataset: str = "fashion-mnist",
                   normalisation: Normalisation = FASHION) -> TrainedModel:
    """A linear model that answers "Trouser" for light trousers on dark and "Shirt" for the
    negative (its two rows are plus and minus the centred light-on-dark trousers)."""
    template = normalisation.apply(_trousers()).ravel()
    template -= template.mean()
    weights = {"1.weight": np.stack([-template, template]).astype(np.float32),
               "1.bias": np.zeros(2, np.float32)}
    return TrainedModel.from_weights(
        {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}]}, (1, 28, 28),
        weights, class_names=CLASSES, normalisation=normalisation, background=background,
        dataset=dataset, engine="numpy")


def _save(path, picture: np.ndarray):
    Image.fromarray(picture).save(path)
    return path


@settings(max_examples=60, deadline=None)
@given(images)
def test_border_brightness_is_the_mean_of_the_outermost_pixels(picture):
    """Against numpy: the four edges concatenated (corners twice, as training counts them)."""
    edges = np.concatenate([picture[:, 0].ravel(), picture[:, -1].ravel(),
                            picture[:, :, 0].ravel(), picture[:, :, -1].ravel()])
    assert border_brightness(picture) == pytest.approx(edges.mean() / 255, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(images)
def test_auto_never_inverts_a_training_image_and_always_inverts_its_negative(picture):
    """The background that training records for an image (image_statistics) is the one that
    'auto' compares with: the image itself is kept, its negative is inverted (unless its border
    is exactly one half, which both call light)."""
    _, _, background = image_statistics(picture[np.newaxis])
    assert not inverts("auto", border_brightness(picture), background)
    assume(border_brightness(picture) != 0.5)
    assert inverts("auto", border_brightness(255 - picture), background)


@given(st.floats(0, 1), st.sampled_from(["dark", "light", None]))
def test_always_and_never_ignore_the_border(border, background):
    """'always' and 'never' say it whatever the border and background; 'auto' without a
    recorded background does not invert."""
    assert inverts("always", border, background) and not inverts("never", border, background)
    if background is None:
        assert not inverts("auto", border, background)


def test_background_of_splits_at_one_half():
    """Below one half is dark, one half and above light."""
    assert [background_of(b) for b in (0.0, 0.4999, 0.5, 1.0)] == ["dark", "dark", "light",
                                                                  "light"]


def test_fashion_model_inverts_a_dark_drawing_on_white_by_default(tmp_path):
    """Regression: trousers drawn dark on white paper are inverted for a Fashion-MNIST model
    (trained light on dark), classified as Trouser like the light-on-dark original, with no
    warning; with invert='never' they come out as Shirt and the warnings say why."""
    model = _trouser_model()
    paper = _save(tmp_path / "trousers.png", 255 - _trousers(56))
    prepared = model.prepare(paper)
    assert prepared.inverted and prepared.warnings == []
    assert "inverted to light on dark, as the training images are" in prepared.notes
    original = model.normalise(_trousers()[None, None])
    assert model.probabilities(original).argmax() == 1
    assert model.probabilities(model.normalise(prepared.pixels[None])).argmax() == 1
    kept = model.prepare(paper, invert="never")
    assert not kept.inverted
    assert model.probabilities(model.normalise(kept.pixels[None])).argmax() == 0
    assert len(kept.warnings) == 2
    assert kept.warnings[0].startswith("its border is light (brightness 1.00) but the training "
                                       "images' background is dark")


def test_prepare_takes_auto_as_default_and_none_as_auto(tmp_path):
    """The default, 'auto' and None prepare the same pixels."""
    model = _trouser_model()
    paper = _save(tmp_path / "trousers.png", 255 - _trousers())
    pixels = [model.prepare(paper, invert=invert).pixels for invert in ("auto", None)]
    np.testing.assert_array_equal(model.prepare(paper).pixels, pixels[0])
    np.testing.assert_array_equal(pixels[0], pixels[1])


def test_light_background_model_inverts_a_light_drawing_on_black(tmp_path):
    """A model of dark-on-light images inverts a picture on black, noted as such."""
    model = _trouser_model("light", "imagefolder:photos", Normalisation(0.7, 0.3))
    prepared = model.prepare(_save(tmp_path / "night.png", _trousers()))
    assert prepared.inverted
    np.testing.assert_array_equal(prepared.pixels[0], 255 - _trousers())
    assert "inverted to dark on light, as the training images are" in prepared.notes
    assert not model.prepare(_save(tmp_path / "day.png", 255 - _trousers())).inverted


def test_checkpoint_without_background_does_not_invert_and_warns(tmp_path):
    """An older checkpoint (no background recorded): 'auto' keeps the picture and says why;
    'always' still inverts, with no such warning."""
    model = _trouser_model(background=None)
    paper = _save(tmp_path / "trousers.png", 255 - _trousers())
    prepared = model.prepare(paper)
    assert not prepared.inverted
    assert prepared.warnings[0].startswith("the checkpoint does not record its training "
                                           "images' background")
    forced = model.prepare(paper, invert="always")
    assert forced.inverted and not any("record" in w for w in forced.warnings)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 255))
def test_mean_brightness_warning_follows_the_training_statistics(tmp_path_factory, level):
    """A flat picture of brightness level/255 (after preparation) is flagged exactly when it
    lies more than UNLIKE_TRAINING_STDS pixel deviations from the training mean; the warning
    gives the picture's mean as numpy computes it."""
    folder = tmp_path_factory.mktemp("flat")
    model = _trouser_model(background=None)  # no border warning: only the mean is judged
    prepared = model.prepare(_save(folder / "flat.png", np.full((28, 28), level, np.uint8)),
                             invert="never")
    mean = prepared.pixels.mean() / 255
    far = abs(mean - FASHION.mean) > UNLIKE_TRAINING_STDS * FASHION.std
    flagged = [w for w in prepared.warnings if w.startswith("its mean brightness")]
    assert bool(flagged) == far
    if far:
        assert f"its mean brightness {mean:.2f} is far from the training images' 0.29" in flagged[0]


def test_a_background_other_than_dark_or_light_is_refused():
    """A checkpoint naming another background is refused, naming the value."""
    with pytest.raises(ValueError, match=r"background must be 'dark', 'light' or absent.*purple"):
        ModelInfo.from_dict({"arch": "tutorial", "input_shape": [1, 28, 28], "num_classes": 10,
                             "class_names": list("0123456789"), "mean": 0.1, "std": 0.3,
                             "background": "purple"})


def test_bad_invert_is_refused_by_name(tmp_path):
    """invert must be auto, always or never."""
    with pytest.raises(ValueError, match="invert"):
        _trouser_model().prepare(_save(tmp_path / "t.png", _trousers()), invert="sometimes")
    with pytest.raises(ValueError, match="invert"):
        inverts("yes", 0.5, "dark")


def _checkpoint(tmp_path):
    return _trouser_model().checkpoint.save(tmp_path / "fashion.safetensors")


def test_predict_command_inverts_by_default_and_warns_on_stderr(tmp_path, capsys):
    """`cnnkit predict` on a Fashion-MNIST checkpoint: the dark drawing on white is inverted
    and called Trouser with no warning; with --invert never it is Shirt, one warning line per
    image on stderr, and the --json output stays JSON (warnings as a field)."""
    checkpoint = _checkpoint(tmp_path)
    paper = _save(tmp_path / "trousers.png", 255 - _trousers(56))
    assert main(["predict", str(checkpoint), str(paper), "--engine", "numpy"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{paper} (inverted): Trouser 100.0%")
    assert captured.err == ""
    assert main(["predict", str(checkpoint), str(paper), str(paper), "--engine", "numpy",
                 "--invert", "never", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data[0]["top"][0]["class"] == "Shirt" and len(data[0]["warnings"]) == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"warning: {paper}: its border is light")
                                   for line in lines)
    assert main(["predict", str(checkpoint), str(paper), "--engine", "numpy", "--invert",
                 "never", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_predict_function_keeps_the_warnings(tmp_path):
    """cnnkit.evaluation.predict returns each picture's warnings (empty for a matching one)."""
    checkpoint = _checkpoint(tmp_path)
    good = _save(tmp_path / "good.png", _trousers())
    white = _save(tmp_path / "white.png", np.full((28, 28), 255, np.uint8))
    results = predict(checkpoint, [good, white], engine="numpy", invert="never")
    assert results[0].warnings == [] and len(results[1].warnings) == 2
    assert results[1].to_dict()["warnings"] == results[1].warnings

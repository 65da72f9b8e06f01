"""cnnkit predict over folders: the CSV against the engine's own predictions, unreadable files,
automatic inversion of digits, aspect-ratio padding, and refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main
from cnnkit.data import load_dataset
from cnnkit.imageio import pad_to_aspect
from cnnkit.model import TrainedModel


def _digits(count):
    return load_dataset("synthetic-digits").test_images[:count, 0]


def _folder(tmp_path, images):
    """images/ with a nested folder and a non-image file: digits 0.png ... as given."""
    root = tmp_path / "images"
    (root / "more").mkdir(parents=True)
    paths = []
    for index, image in enumerate(images):
        path = root / ("more" if index % 2 else "") / f"{index}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    (root / "notes.txt").write_text("not an image")
    return root, paths


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _expected_top(run, images, k):
    """The engine's top-k names and probabilities of uint8 images, computed directly."""
    model = TrainedModel.load(run)
    info = model.checkpoint.model_info
    scaled = (images[:, None].astype(np.float32) / 255 - info["mean"]) / info["std"]
    logits = model.logits(scaled).astype(np.float64)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    names = info["class_names"]
    return [([names[i] for i in row], probabilities[n, row]) for n, row in enumerate(order)]


def test_csv_holds_the_engines_top_classes_for_every_image(trained_run, tmp_path, capsys):
    """Every image found (recursively, sorted) has a row with the engine's own top-2 classes
    and probabilities; nothing was inverted or padded, nothing warned of; the terminal names
    the CSV."""
    images = _digits(5)
    root, paths = _folder(tmp_path, images)
    out = tmp_path / "out.csv"
    assert main(["predict", str(trained_run), str(root), "--csv", str(out), "--top", "2"]) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["image", "class_1", "probability_1", "class_2", "probability_2",
                             "inverted", "padded", "warnings"]
    assert [row["image"] for row in rows] == sorted(str(path) for path in paths)
    expected = dict(zip(map(str, paths), _expected_top(trained_run, images, 2), strict=True))
    for row in rows:
        names, probabilities = expected[row["image"]]
        assert [row["class_1"], row["class_2"]] == names
        np.testing.assert_allclose([float(row["probability_1"]), float(row["probability_2"])],
                                   probabilities, atol=2e-6)
        assert (row["inverted"], row["padded"], row["warnings"]) == ("0", "0", "")
    assert f"5 image(s) classified: {out}" in capsys.readouterr().out


def test_unreadable_files_are_skipped_and_listed_or_refused(trained_run, tmp_path, capsys):
    """A corrupt file: skipped and named on stderr by default; with --on-error raise, one error
    line naming it and no CSV; with every file corrupt, one error line."""
    root, _ = _folder(tmp_path, _digits(3))
    (root / "more" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out.csv"
    assert main(["predict", str(trained_run), str(root), "--csv", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "bad.png" in captured.err
    assert "skipped 1 unreadable file(s)" in captured.out
    assert len(_rows(out)) == 3
    out.unlink()
    assert main(["predict", str(trained_run), str(root), "--csv", str(out), "--on-error",
                 "raise"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.png" in err[0]
    assert not out.exists()
    for corrupt in (root / "0.png", root / "more" / "1.png", root / "2.png"):
        corrupt.write_bytes(b"not an image")
    assert main(["predict", str(trained_run), str(root), "--csv", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none of the 4 image file(s) could be read" in err[0], err


def test_dark_digit_on_light_paper_is_inverted_automatically(trained_run, tmp_path, capsys):
    """A digit model inverts a dark-on-light picture by default (CSV column and a terminal
    line) and then predicts what it predicts for the light-on-dark original; --invert never
    keeps it, with a warning in the CSV's column and one line on stderr."""
    image = _digits(1)
    path = tmp_path / "paper.png"
    Image.fromarray(255 - image[0]).save(path)
    out = tmp_path / "out.csv"
    assert main(["predict", str(trained_run), str(path), "--csv", str(out)]) == 0
    assert "inverted 1 of 1 image(s) to match the training images' background" in \
        capsys.readouterr().out
    row = _rows(out)[0]
    names, probabilities = _expected_top(trained_run, image, 3)[0]
    assert row["inverted"] == "1" and row["class_1"] == names[0]
    assert float(row["probability_1"]) == pytest.approx(probabilities[0], abs=2e-6)
    assert main(["predict", str(trained_run), str(path), "--csv", str(out), "--overwrite",
                 "--invert", "never"]) == 0
    row = _rows(out)[0]
    assert row["inverted"] == "0" and row["warnings"].startswith("its border is light")
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"warning: {path}: {row['warnings']}"


def test_pad_to_aspect_by_hand():
    """A 2x4 image becomes 4x4 with one row of its border median above and below; a 3x2 image
    becomes 3x3 with the extra column after (odd total); per-channel medians for colour."""
    image = np.array([[0.2, 0.2, 0.9, 0.2], [0.2, 0.2, 0.2, 0.7]])
    padded = pad_to_aspect(image, 1, 1)
    np.testing.assert_array_equal(padded, [[0.2] * 4, image[0], image[1], [0.2] * 4])
    narrow = np.array([[1.0, 2.0], [1.0, 5.0], [1.0, 1.0]])
    np.testing.assert_array_equal(pad_to_aspect(narrow, 1, 1),
                                  [[1.0, 2.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    colour = np.zeros((1, 2, 3))
    colour[..., 2] = 0.5
    assert pad_to_aspect(colour, 1, 1)[0, 0].tolist() == [0.0, 0.0, 0.5]
    assert pad_to_aspect(image, 2, 4) is image


def test_non_square_picture_is_padded_and_said(trained_run, tmp_path, capsys):
    """A 28-wide, 14-high digit strip is padded (not squashed) and predicted like the strip
    padded by hand with 7 rows of its border median above and below; the terminal says so."""
    digit = _digits(1)[0]
    strip = digit[7:21]
    path = tmp_path / "strip.png"
    Image.fromarray(strip).save(path)
    assert main(["predict", str(trained_run), str(path), "--json", "--top", "1"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["padded"] is True
    border = np.concatenate([strip[0], strip[-1], strip[:, 0], strip[:, -1]])
    by_hand = np.full((1, 28, 28), np.median(border), np.uint8)
    by_hand[0, 7:21] = strip
    names, probabilities = _expected_top(trained_run, by_hand, 1)[0]
    assert result["top"][0]["class"] == names[0]
    assert result["top"][0]["probability"] == pytest.approx(probabilities[0], abs=2e-6)
    assert main(["predict", str(trained_run), str(path)]) == 0
    out = capsys.readouterr().out
    assert "(padded)" in out and "padded 1 of 1 image(s)" in out


def _refused(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_refusals(trained_run, tmp_path, capsys):
    """No images found, an existing CSV (kept as it was), --csv with --json, and a CSV in a
    missing folder are refused in one line."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    _refused(capsys, ["predict", str(trained_run), str(empty)], "no images found")
    _refused(capsys, ["predict", str(trained_run), str(tmp_path / "missing")],
             "no image file or folder")
    existing = tmp_path / "old.csv"
    existing.write_text("keep me")
    digit = tmp_path / "d.png"
    Image.fromarray(_digits(1)[0]).save(digit)
    _refused(capsys, ["predict", str(trained_run), str(digit), "--csv", str(existing)],
             "already exists")
    assert existing.read_text() == "keep me"
    _refused(capsys, ["predict", str(trained_run), str(digit), "--csv", str(existing), "--json"],
             "choose one")
    _refused(capsys, ["predict", str(trained_run), str(digit), "--csv",
                      str(tmp_path / "nowhere" / "x.csv")], "does not exist")

"""The explain, weights and report commands, and their one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tests.specs import SMALL, feature_map_shapes, shown_layers

from cnnkit.cli import main


@pytest.fixture
def shirt(tmp_path):
    """An RGB 40x30 image with a light background (needs converting, resizing, inverting)."""
    picture = np.full((30, 40, 3), 230, np.uint8)
    picture[5:25, 10:30] = (40, 60, 90)
    path = tmp_path / "shirt.png"
    Image.fromarray(picture).save(path)
    return path


def _refused(capsys, argv, *fragments):
    """argv exits with 2 and one 'cnnkit: error:' line naming the fragments."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnkit: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


def test_explain_writes_a_figure_and_says_what_it_changed(capsys, trained_run, shirt,
                                                          tmp_path):
    """explain prints the top classes and each conversion step, and writes the figure."""
    figure = tmp_path / "out.png"
    assert main(["explain", str(trained_run), str(shirt), "-o", str(figure), "--top-k", "2",
                 "--method", "integrated-gradients"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{shirt}: ") and out.splitlines()[0].count("%") == 2
    assert "converted from RGB to grayscale" in out and "resized from 40×30 to 28×28" in out
    assert "inverted" in out
    with Image.open(figure) as written:
        assert written.format == "PNG" and written.size[0] > 500


def test_explain_warns_when_the_picture_is_unlike_the_training_images(capsys, trained_run,
                                                                      shirt, tmp_path):
    """By default (--invert auto) the light shirt picture is inverted for the dark-background
    digit run and nothing is warned of; with --invert never one warning line on stderr names
    its light border."""
    figure = tmp_path / "out.png"
    assert main(["explain", str(trained_run), str(shirt), "-o", str(figure)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["explain", str(trained_run), str(shirt), "-o", str(figure), "--overwrite",
                 "--invert", "never"]) == 0
    captured = capsys.readouterr()
    assert "inverted" not in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"warning: {shirt}: its border is light")


def test_explain_several_images_one_figure_each(capsys, trained_run, shirt, tmp_path):
    """With several images, -o FIG gives FIG-<image>.png per image; existing ones are kept."""
    other = tmp_path / "other.png"
    Image.open(shirt).convert("L").save(other)
    argv = ["explain", str(trained_run), str(shirt), str(other), "-o",
            str(tmp_path / "fig.png"), "--layer", str(shown_layers(SMALL)[-2])]
    assert main(argv) == 0
    assert (tmp_path / "fig-shirt.png").is_file() and (tmp_path / "fig-other.png").is_file()
    capsys.readouterr()
    _refused(capsys, argv, "fig-shirt.png exists", "--overwrite")


def test_weights_labels_the_first_layer(capsys, trained_run, tmp_path):
    """weights prints one nearest classic kernel per first-layer kernel and writes a figure."""
    assert main(["weights", str(trained_run), "-o", str(tmp_path / "w.png"), "--patches",
                 str(tmp_path / "p.png"), "--images", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kernels = SMALL["layers"][0]["out_channels"]
    assert lines[0] == f"conv1 (layer 0): {kernels} kernels of 3x3"
    assert len([line for line in lines if line.strip().startswith("kernel")]) == kernels
    assert (tmp_path / "w.png").is_file()


def test_report_command_writes_and_refuses_to_replace(capsys, trained_run, tmp_path):
    """report -o writes the file once; a second time needs --overwrite."""
    target = tmp_path / "r.html"
    argv = ["report", str(trained_run), "-o", str(target)]
    assert main(argv) == 0
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    capsys.readouterr()
    _refused(capsys, argv, "r.html exists", "--overwrite")
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize("command", [["explain", "{run}", "{image}"], ["weights", "{run}"],
                                     ["report", "{run}"]])
def test_run_folder_without_checkpoint_is_refused(capsys, tmp_path, shirt, command):
    """A folder without checkpoint.pt: one line naming the missing checkpoint, exit 2."""
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [part.format(run=empty, image=shirt) for part in command]
    _refused(capsys, argv, "no checkpoint at", "empty")


def test_explain_refuses_a_non_image(capsys, trained_run, tmp_path):
    """A text file given as an image is refused by name."""
    (tmp_path / "notes.txt").write_text("hello")
    _refused(capsys, ["explain", str(trained_run), str(tmp_path / "notes.txt"), "-o",
                      str(tmp_path / "x.png")], "is not an image file", "notes.txt")


def test_explain_refuses_an_unknown_layer(capsys, trained_run, shirt, tmp_path):
    """--layer must name a layer with feature maps; the message lists them."""
    with_maps = tuple(feature_map_shapes(SMALL, (1, 28, 28)))
    beyond = len(SMALL["layers"]) + 1
    _refused(capsys, ["explain", str(trained_run), str(shirt), "--layer", str(beyond), "-o",
                      str(tmp_path / "x.png")], "layer must be", str(with_maps), f"got {beyond}")


def test_run_figures_are_refreshed_and_named_files_kept(capsys, run_copy, shirt, tmp_path):
    """Regression: 'evaluate RUN --best' after 'evaluate RUN' failed because the run's confusion
    figure existed, and a stale figure stayed after a resume. A run's own figures (evaluate,
    explain, weights) are rewritten on every call; a file named with -o/--figure is replaced
    only with --overwrite."""
    run = run_copy  # the run's own figures are written into it
    commands = [
        (["evaluate", str(run), "--device", "cpu"], run / "confusion-test.png"),
        (["evaluate", str(run), "--device", "cpu", "--best"], run / "confusion-test.png"),
        (["explain", str(run), str(shirt)], run / "explain-shirt.png"),
        (["weights", str(run)], run / "weights.png"),
    ]
    for argv, own in commands:
        if own.exists():
            own.write_bytes(b"stale")
        assert main(argv) == 0, capsys.readouterr().err
        assert own.read_bytes()[:4] == b"\x89PNG", argv
        if argv[0] == "evaluate":  # the title says which checkpoint the matrix is of
            with Image.open(own) as written:
                checkpoint = "best" if "--best" in argv else "last"
                assert f"(test), {checkpoint} checkpoint: " in written.text["Title"]
    capsys.readouterr()
    named = tmp_path / "mine.png"
    for argv in (["evaluate", str(run), "--figure", str(named)],
                 ["explain", str(run), str(shirt), "-o", str(named)],
                 ["weights", str(run), "-o", str(named)]):
        named.write_bytes(b"the user's own file")
        _refused(capsys, argv, "mine.png exists", "--overwrite")
        assert named.read_bytes() == b"the user's own file"


def _class_folder(root, names):
    """An image folder with one sub-folder of three 28x28 gray images per class name."""
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def test_evaluate_warns_about_other_class_names_and_refuses_another_count(
    capsys, run_copy, tmp_path
):
    """Regression: a data set with other classes was evaluated silently (9.58%). Other names
    with the same count give a warning on stderr naming both; another count is refused."""
    run = run_copy  # evaluate writes its confusion figure into the run
    letters = _class_folder(tmp_path / "letters", "abcdefghij")
    assert main(["evaluate", str(run), "--dataset", f"imagefolder:{letters}"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: warning: the data set's classes ['a', 'b', 'c', ...] are "
                          "not the model's"), err
    assert "label 0 means 'a' here and '0' to the model" in err
    with Image.open(run / "confusion-test.png") as written:
        assert written.text["Title"].startswith(f"imagefolder:{letters} (all images), last "
                                                "checkpoint: ")
        assert written.text["Title"].endswith("(the data set's class names are not the model's)")
    three = _class_folder(tmp_path / "three", "abc")
    _refused(capsys, ["evaluate", str(run), "--dataset", f"imagefolder:{three}"],
             "was trained for 10 classes, not 3")

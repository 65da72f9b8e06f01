"""Messages and printouts a learner reads alone: command-line words, titles, hints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main
from cnnkit.commands.demo import demo_figures, tour_convolution
from cnnkit.filters import make_kernel


def _run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_large_kernel_prints_its_centre_row_and_a_title_with_its_parameters(capsys, tmp_path):
    """Regression: 'kernel gaussian --sigma 3' printed a 25x25 wall of numbers under the bare
    title 'gaussian'. The title names sigma and the size (also on the figure); a kernel over
    15x15 prints its centre row, and --all prints every row."""
    figure = tmp_path / "g.png"
    status, out, _ = _run(capsys, "kernel", "gaussian", "--sigma", 3, "--plot", figure)
    lines = out.splitlines()
    assert status == 0 and lines[0] == "gaussian sigma=3: 25 x 25, sum 1"
    assert lines[1] == "centre row (row 12; --all prints all 625 weights):"
    np.testing.assert_allclose([float(v) for v in lines[2].split()],
                               make_kernel("gaussian", sigma=3.0)[12], rtol=1e-5)
    with Image.open(figure) as written:
        assert written.text["Title"] == "gaussian sigma=3: 25 x 25"
    _, out, _ = _run(capsys, "kernel", "gaussian", "--sigma", 3, "--all")
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 25
    _, out, _ = _run(capsys, "kernel", "gaussian")
    assert out.startswith("gaussian sigma=1: 9 x 9, sum 1")


def test_colour_edges_print_the_gray_hint(capsys, tmp_path):
    """Regression: a colour photo gave per-channel (rainbow) edges without a word about --gray.
    A signed result of a colour image names --gray; a gray one and a blur do not."""
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(photo)
    _, out, _ = _run(capsys, "filter", photo, "--kernel", "sobel-x", "-o", tmp_path / "a.png")
    assert "add --gray to filter its brightness only" in out
    _, out, _ = _run(capsys, "filter", photo, "--gray", "--kernel", "sobel-x", "-o",
                     tmp_path / "b.png")
    assert "--gray" not in out
    _, out, _ = _run(capsys, "filter", photo, "--kernel", "box", "-o", tmp_path / "c.png")
    assert "--gray" not in out


def test_existing_file_message_speaks_command_line(capsys, tmp_path):
    """Regression: the refusal to replace a file said 'pass overwrite=True' first. It names
    --overwrite first, Python's keyword only in brackets."""
    target = tmp_path / "out.npy"
    target.write_bytes(b"mine")
    status, _, err = _run(capsys, "filter", "--sample", "grid", "--kernel", "box", "-o", target)
    assert status == 2
    assert "already exists; add --overwrite to replace it (in Python: overwrite=True)" in err
    assert target.read_bytes() == b"mine"


def test_padding_figure_limit_speaks_command_line(capsys, tmp_path):
    """Regression: 'padding_figure draws n and kernel_size up to 40' reached the command line."""
    status, _, err = _run(capsys, "outsize", "--input", 41, "--kernel", 3, "--plot",
                          tmp_path / "p.png")
    assert status == 2
    assert "the padding figure draws inputs and kernels of up to 40 elements" in err
    assert "padding_figure" not in err and "kernel_size" not in err


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--stride", "2", "--dilation", "1"], "stride 2, padding 0, dilation 1"),
    (["--padding", "full", "--dilation", "2"], "stride 1, padding full, dilation 2"),
])
def test_outsize_plot_title_states_its_arguments(capsys, tmp_path, arguments, expected):
    """Regression: the figure was titled 'stride 1' whatever --stride said."""
    figure = tmp_path / "p.png"
    status, _, _ = _run(capsys, "outsize", "--input", 7, "--kernel", 3, *arguments, "--plot",
                        figure)
    with Image.open(figure) as written:
        assert status == 0 and written.text["Title"] == f"input size 7, kernel size 3, {expected}"


def test_demo_says_which_border_its_same_size_results_use(capsys, tmp_path):
    """Regression: correlate2d(image, k, 'same') pads with zeros while the demo's rows and
    figures used reflect without saying so. The printed call and both figure titles say it."""
    tour_convolution()
    out = capsys.readouterr().out
    assert "correlate2d(image, K_x, 'same', padding_mode='reflect')" in out
    assert "correlate2d's default border is zeros" in out
    titles = {}
    for path in demo_figures(tmp_path):
        with Image.open(path) as written:
            titles[path.name] = written.text["Title"]
    assert titles == {
        "edges.png": "Sobel 3x3 edges by correlation (kernels as written), reflect border",
        "blur.png": "Gaussian blur of the grid image, reflect border",
    }


def test_edges_titles_differ_between_correlation_and_convolution(capsys, tmp_path):
    """Regression: 'edges' and 'edges --convolve' drew identically titled figures."""
    titles = []
    for extra in ([], ["--convolve"]):
        figure = tmp_path / f"edges{len(extra)}.png"
        assert main(["edges", "-o", str(figure), *extra]) == 0
        with Image.open(figure) as written:
            titles.append(written.text["Title"])
    assert titles == ["Sobel 3x3 edges by correlation (kernels as written), reflect border",
                      "Sobel 3x3 edges by convolution (kernels flipped), reflect border"]

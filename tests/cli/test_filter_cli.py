"""The filter, edges, kernel and outsize commands through main(argv), plus one real process each."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main
from cnnkit.filters import (
    filter_image,
    gaussian_kernel,
    grid_lines,
    sample_image,
    sobel,
    sobel_kernel,
)
from cnnkit.imageio import read_image, to_uint8

SOURCE = Path(__file__).resolve().parents[2] / "src"


def run_cli(capsys, *argv):
    """Run main(argv); return (status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_usage_error(capsys, argv, message):
    """Exit status 2 and exactly one line on stderr containing `message`, no traceback."""
    status, out, err = run_cli(capsys, *argv)
    assert status == 2
    assert err.startswith("cnnkit: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err + out


@pytest.fixture
def photo(tmp_path):
    """A small colour PNG with some structure."""
    rng = np.random.default_rng(30)
    pixels = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


# --- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["filter", "edges", "kernel", "outsize"])
def test_help_shows_an_example(capsys, command):
    """Every command's --help exits 0 and shows an example."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"cnnkit {command}" in out


# --- filter ------------------------------------------------------------------------------------


def test_filter_sample_to_npy_is_exact(capsys, tmp_path):
    """--sample grid --kernel sobel-x -o out.npy saves exactly sobel(grid, 1)."""
    out = tmp_path / "edges.npy"
    status, stdout, _ = run_cli(capsys, "filter", "--sample", "grid", "--kernel", "sobel-x",
                                "-o", out)
    assert status == 0 and "exact float64" in stdout
    np.testing.assert_array_equal(np.load(out), sobel(grid_lines(128), 1))


def test_filter_convolve_and_padding_mode(capsys, tmp_path):
    """--convolve flips the kernel; --padding-mode reaches the filter."""
    out = tmp_path / "flipped.npy"
    kernel = "[[1, 2, 0], [0, 0, 0], [0, 0, -1]]"
    run_cli(capsys, "filter", "--sample", "circles", "--kernel", kernel, "--convolve",
            "--padding-mode", "zeros", "-o", out)
    expected = filter_image(sample_image("circles"), kernel, operation="convolve",
                            padding_mode="zeros")
    np.testing.assert_array_equal(np.load(out), expected)


def test_filter_photo_to_png_rescales_signed_results(capsys, tmp_path, photo):
    """A signed result (edges) is rescaled to 0..255, and the command says so."""
    out = tmp_path / "edges.png"
    status, stdout, _ = run_cli(capsys, "filter", photo, "--kernel", "sobel-y", "-o", out)
    assert status == 0 and "rescaled" in stdout
    expected = to_uint8(filter_image(read_image(photo), sobel_kernel(0)), "rescale")
    with Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), expected)


def test_filter_blur_keeps_brightness(capsys, tmp_path, photo):
    """A blur stays within [0, 1], so --display auto clips instead of stretching."""
    out = tmp_path / "blur.png"
    status, stdout, _ = run_cli(capsys, "filter", photo, "--kernel", "gaussian:sigma=2",
                                "-o", out)
    assert status == 0 and "scaled by 255" in stdout
    expected = to_uint8(filter_image(read_image(photo), gaussian_kernel(2.0)), "clip")
    with Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), expected)


def test_filter_gray_resize_and_kernel_file(capsys, tmp_path, photo):
    """--gray and --resize shape the input; a .npy kernel file is read."""
    kernel_path = tmp_path / "kernel.npy"
    np.save(kernel_path, np.array([[0.0, 1.0], [1.0, 0.0]]))
    out = tmp_path / "small.npy"
    run_cli(capsys, "filter", photo, "--gray", "--resize", 12, 16, "--kernel", kernel_path,
            "-o", out)
    image = read_image(photo, color="gray", size=(12, 16))
    np.testing.assert_array_equal(np.load(out), filter_image(image, kernel_path))


def test_filter_overwrite(capsys, tmp_path):
    """An existing output is refused unless --overwrite."""
    out = tmp_path / "out.npy"
    arguments = ["filter", "--sample", "step", "--kernel", "box", "-o", out]
    assert run_cli(capsys, *arguments)[0] == 0
    assert_usage_error(capsys, arguments, "already exists")
    assert run_cli(capsys, *arguments, "--overwrite")[0] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.png", "--kernel", "box", "-o", "o.png"], "does not exist"),
        (["--kernel", "box", "-o", "o.png"], "give an IMAGE file or --sample NAME"),
        (["--sample", "grid", "--kernel", "nope", "-o", "o.png"], "kernel name must be one of"),
        (["--sample", "grid", "--kernel", "[[1,2],[3]]", "-o", "o.png"], "rectangular"),
        (["--sample", "grid", "--kernel", "gaussian:sigma=-1", "-o", "o.png"], "sigma"),
        (["--sample", "grid", "--kernel", "box", "-o", "o.gif"], "must end in one of"),
        (["--sample", "grid", "--kernel", "box", "-o", "absent/o.png"], "does not exist"),
        (["--sample", "grid", "--kernel", "box", "--padding-mode", "mirror", "-o", "o.png"],
         "invalid choice"),
        (["--sample", "grid", "-o", "o.png"], "--kernel"),
        (["--sample", "plasma", "--kernel", "box", "-o", "o.png"], "invalid choice"),
    ],
)
def test_filter_refusals(capsys, tmp_path, monkeypatch, arguments, message):
    """Bad arguments end with one line on stderr and status 2."""
    monkeypatch.chdir(tmp_path)
    assert_usage_error(capsys, ["filter", *arguments], message)
    assert not (tmp_path / "o.png").exists()


def test_filter_refuses_image_and_sample_together(capsys, tmp_path, photo):
    """IMAGE and --sample exclude each other."""
    assert_usage_error(capsys, ["filter", photo, "--sample", "grid", "--kernel", "box",
                                "-o", tmp_path / "o.png"], "not both")


def test_filter_refuses_broken_files(capsys, tmp_path, photo):
    """Not an image, truncated, and too many pixels (with how to raise the limit)."""
    text = tmp_path / "text.png"
    text.write_text("hello")
    assert_usage_error(capsys, ["filter", text, "--kernel", "box", "-o", tmp_path / "a.png"],
                       "not an image file")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(photo.read_bytes()[:300])
    assert_usage_error(capsys, ["filter", truncated, "--kernel", "box",
                                "-o", tmp_path / "b.png"], "truncated or corrupt")
    assert_usage_error(capsys, ["filter", photo, "--max-pixels", 100, "--kernel", "box",
                                "-o", tmp_path / "c.png"], "--max-pixels 768")


# --- edges -------------------------------------------------------------------------------------


def test_edges_without_image_draws_the_grid(capsys, tmp_path, monkeypatch):
    """`cnnkit edges` writes edges.png for the built-in grid, and will not overwrite it."""
    monkeypatch.chdir(tmp_path)
    status, stdout, _ = run_cli(capsys, "edges")
    assert status == 0 and "edges.png" in stdout
    with Image.open(tmp_path / "edges.png") as written:
        assert written.format == "PNG"
    assert_usage_error(capsys, ["edges"], "already exists")
    assert run_cli(capsys, "edges", "--overwrite")[0] == 0


def test_edges_of_a_photo(capsys, tmp_path, photo):
    """An image file and options give a figure at the requested path."""
    out = tmp_path / "photo-edges.png"
    status, stdout, _ = run_cli(capsys, "edges", photo, "--size", 5, "--convolve", "-o", out)
    assert status == 0 and out.exists() and "24x32" in stdout


def test_edges_of_gray_with_alpha_image(capsys, tmp_path):
    """A gray + alpha PNG is drawn from its gray channel."""
    path = tmp_path / "la.png"
    Image.fromarray(np.zeros((8, 10, 2), dtype=np.uint8)).save(path)
    status, stdout, _ = run_cli(capsys, "edges", path, "-o", tmp_path / "la-edges.png")
    assert status == 0 and "8x10" in stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--size", "4"], "size must be odd"),
        (["-o", "figure.jpg"], "must end in .png"),
        (["missing.png"], "does not exist"),
    ],
)
def test_edges_refusals(capsys, tmp_path, monkeypatch, arguments, message):
    """Bad edges arguments end with one line on stderr and status 2."""
    monkeypatch.chdir(tmp_path)
    assert_usage_error(capsys, ["edges", *arguments], message)


# --- kernel ------------------------------------------------------------------------------------


def printed_numbers(stdout):
    """The numeric rows of `cnnkit kernel` output."""
    rows = [line.split() for line in stdout.splitlines() if line.startswith("  ")]
    return np.array([[float(cell) for cell in row] for row in rows])


def test_kernel_prints_sobel(capsys):
    """`cnnkit kernel sobel-x` prints the 3×3 Sobel numbers and says it is separable."""
    status, stdout, _ = run_cli(capsys, "kernel", "sobel-x")
    assert status == 0 and "rank 1" in stdout
    np.testing.assert_array_equal(printed_numbers(stdout), sobel_kernel(1))


def test_kernel_prints_gaussian_to_six_digits(capsys):
    """--sigma and --radius reach the Gaussian; numbers are printed to 6 significant digits."""
    status, stdout, _ = run_cli(capsys, "kernel", "gaussian", "--sigma", 1.5, "--radius", 2)
    assert status == 0 and "5 x 5, sum 1" in stdout
    np.testing.assert_allclose(printed_numbers(stdout), gaussian_kernel(1.5, radius=2),
                               rtol=5e-6)


def test_kernel_text_and_plot(capsys, tmp_path):
    """A kernel given as text is printed and drawn with --plot."""
    figure = tmp_path / "laplacian.png"
    status, stdout, _ = run_cli(capsys, "kernel", "[[0,1,0],[1,-4,1],[0,1,0]]", "--plot", figure)
    assert status == 0 and "rank 1" not in stdout
    np.testing.assert_array_equal(printed_numbers(stdout)[1], [1, -4, 1])
    with Image.open(figure) as written:
        assert written.format == "PNG"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["sobel"], "kernel name must be one of"),
        (["box", "--sigma", "2"], "takes no parameter 'sigma'"),
        (["[[1, 2]]", "--size", "3"], "apply to named kernels only"),
        (["gaussian", "--sigma", "0"], "sigma must be a positive"),
        (["sobel-x", "--size", "9x"], "invalid int value"),
    ],
)
def test_kernel_refusals(capsys, arguments, message):
    """Bad kernel requests end with one line on stderr and status 2."""
    assert_usage_error(capsys, ["kernel", *arguments], message)


# --- outsize -----------------------------------------------------------------------------------


def test_outsize_tutorial_example(capsys):
    """n=32, m=5, p=2, s=1 gives 32, with the formula filled in."""
    status, stdout, _ = run_cli(capsys, "outsize", "--input", 32, "--kernel", 5, "--padding", 2)
    assert status == 0
    assert stdout.splitlines()[0] == "output size: 32"
    assert "floor((32 + 2*2 - 5) / 1) + 1 = 32" in stdout


def test_outsize_2d_with_named_padding_and_stride(capsys):
    """Two input numbers give the 2-D form; per-axis kernel and stride are used."""
    status, stdout, _ = run_cli(capsys, "outsize", "--input", 28, 28, "--kernel", 2, 3,
                                "--stride", 2, 1, "--padding", "valid")
    assert status == 0 and stdout.splitlines()[0] == "output shape: 14 x 26"


def test_outsize_plot(capsys, tmp_path):
    """--plot draws the 1-D padding figure."""
    figure = tmp_path / "padding.png"
    status, _, _ = run_cli(capsys, "outsize", "--input", 7, "--kernel", 3, "--plot", figure)
    assert status == 0 and figure.exists()


def test_outsize_plot_names_unreached_and_asymmetric_padding(capsys, tmp_path):
    """Regression: --padding 2 --stride 2 on 10 elements drew one zero on the right without
    a word, and dropped the 'same' panel silently; the saved figure's text now names both.
    For a 1-D input, --padding LEFT RIGHT is asymmetric padding, in the formula and figure."""
    figure = tmp_path / "strided.png"
    status, out, _ = run_cli(capsys, "outsize", "--input", 10, "--kernel", 3, "--padding", 2,
                             "--stride", 2, "--plot", figure)
    with Image.open(figure) as written:
        description = written.text["Description"]
    assert status == 0 and out.splitlines()[0] == "output size: 6"
    assert ("full (padding 2 on each side, asked; the last 1 on the right is not reached by any"
            " window): output size 6") in description
    assert "'same' is not drawn: it is only defined for stride 1" in description
    figure = tmp_path / "asymmetric.png"
    status, out, _ = run_cli(capsys, "outsize", "--input", 7, "--kernel", 4, "--padding", 1, 2,
                             "--plot", figure)
    with Image.open(figure) as written:
        text = written.text
    assert status == 0 and out.splitlines()[1].endswith("floor((7 + 1 + 2 - 4) / 1) + 1 = 7")
    assert text["Title"] == "input size 7, kernel size 4, stride 1, padding (1, 2), dilation 1"
    assert ("same (padding 1 on the left, 2 on the right, asked): output size 7"
            in text["Description"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--input", "7", "--kernel", "3", "--padding", "same", "--stride", "2"],
         "only defined for stride 1"),
        (["--input", "3", "--kernel", "5"], "does not fit"),
        (["--input", "7", "7", "--kernel", "3", "3", "3"],
         "--kernel takes one or two integers for a 2-D --input, got 3"),
        (["--input", "7", "--kernel", "3", "3"],
         "--kernel takes one integer for a 1-D --input, got 2"),
        (["--input", "7", "--kernel", "3", "--padding", "1", "1", "1"],
         "--padding takes one or two integers (left, right) for a 1-D --input, got 3"),
        (["--input", "7", "--kernel", "3", "--padding", "-1"], "--padding takes non-negative"),
        (["--input", "7", "--kernel", "3", "--stride", "0"], "--stride takes positive integers"),
        (["--input", "7", "--kernel", "3", "--padding", "lots"], "--padding must be"),
        (["--input", "7", "7", "7", "--kernel", "3"], "--input takes N or ROWS COLUMNS"),
        (["--input", "7", "7", "--kernel", "3", "--plot", "p.png"], "1-D case"),
        (["--input", "0", "--kernel", "3"], "--input takes positive integers, got [0]"),
        (["--kernel", "3"], "--input"),
    ],
)
def test_outsize_refusals(capsys, arguments, message):
    """Bad sizes end with one line on stderr and status 2."""
    assert_usage_error(capsys, ["outsize", *arguments], message)


# --- real processes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["filter", "--sample", "grid", "--kernel", "sobel-x", "-o", "out.png"], "wrote"),
        (["edges", "--sample", "checkerboard", "-o", "edges.png"], "wrote"),
        (["kernel", "sobel-y"], "-1 -2 -1"),
        (["outsize", "--input", "28", "--kernel", "2", "--stride", "2"], "output size: 14"),
    ],
)
def test_commands_run_as_real_processes(tmp_path, arguments, expected):
    """`python -m cnnkit COMMAND ...` exits 0 and prints the expected text."""
    environment = {**os.environ, "PYTHONPATH": str(SOURCE)}
    completed = subprocess.run([sys.executable, "-m", "cnnkit", *arguments], cwd=tmp_path,
                               capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert expected in completed.stdout


def test_bad_file_in_a_real_process_gives_one_line(tmp_path):
    """A broken image in a real process: exit 2, one stderr line, no traceback."""
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    environment = {**os.environ, "PYTHONPATH": str(SOURCE)}
    completed = subprocess.run(
        [sys.executable, "-m", "cnnkit", "filter", "broken.jpg", "--kernel", "box", "-o", "x.png"],
        cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "Traceback" not in completed.stderr


# --- README ------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_filter_commands_work_as_written(capsys, tmp_path, monkeypatch):
    """The shell block of the README's 'Filters and images' section runs, in order, in an
    empty folder, every command exiting 0."""
    section = README.read_text().split("## Filters and images", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert len(commands) >= 5 and all(command[0] == "cnnkit" for command in commands)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        status, _, err = run_cli(capsys, *command[1:])
        assert status == 0, (command, err)
    assert {"edges.png", "blurred.png", "blurred-edges.png", "sobel.npy", "padding.png"} <= {
        path.name for path in tmp_path.iterdir()
    }

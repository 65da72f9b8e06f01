"""Figures: what each panel shows, the padding windows, saving, and lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnkit.commands.demo import demo_figures
from cnnkit.filters import (
    gaussian_blur,
    grid_lines,
    noisy_gradient,
    sobel,
    sobel_kernel,
)
from cnnkit.plots import (
    SIGNED_LABEL,
    edge_figure,
    figure_text,
    filter_figure,
    kernel_figure,
    padding_figure,
    padding_windows,
    save_figure,
    unreached_padding,
)
from cnnkit.shapes import output_size

SOURCE = Path(__file__).resolve().parents[1] / "src"


def panel_data(axes):
    return np.asarray(axes.images[0].get_array())


def test_edge_figure_shows_image_edges_and_magnitude():
    """The four panels hold the gray image, sobel-x, sobel-y and their magnitude."""
    image = grid_lines(48)
    figure = edge_figure(image, sobel(image, 1), sobel(image, 0))
    original, vertical, horizontal, magnitude = figure.axes[:4]
    np.testing.assert_array_equal(panel_data(original), image)
    np.testing.assert_array_equal(panel_data(vertical), sobel(image, 1))
    np.testing.assert_array_equal(panel_data(horizontal), sobel(image, 0))
    np.testing.assert_array_equal(panel_data(magnitude),
                                  np.hypot(sobel(image, 1), sobel(image, 0)))


def test_edge_figure_refuses_panels_of_another_shape():
    """Edge panels must have the image's height and width."""
    image = grid_lines(16)
    with pytest.raises(ValueError, match="must have the image's height and width"):
        edge_figure(image, np.zeros((16, 15)), np.zeros((16, 16)))


def test_filter_figure_panels_and_titles():
    """The original comes first, then one titled panel per filtered image."""
    ramp = noisy_gradient(32)
    blurred = gaussian_blur(ramp, 2.0)
    figure = filter_figure(ramp, {"blur": blurred, "edges": sobel(ramp, 1)}, title="demo")
    assert [axes.get_title() for axes in figure.axes[:3]] == ["Original image", "blur", "edges"]
    np.testing.assert_array_equal(panel_data(figure.axes[1]), blurred)
    assert figure.get_suptitle() == "demo"
    # Images and blurs keep the 0..1 scale; signed edges are centred on 0, with a colour bar.
    assert figure.axes[1].images[0].get_clim() == (0.0, 1.0)
    edges = sobel(ramp, 1)
    extent = np.abs(edges).max()
    assert figure.axes[2].images[0].get_clim() == (-extent, extent)
    assert figure.axes[3].get_label() == "<colorbar>"
    assert figure.axes[3].get_xlabel() == SIGNED_LABEL


def test_filter_figure_refuses_empty_or_bad_panels():
    """An empty mapping, a non-mapping and a 1-D panel are refused."""
    image = np.zeros((4, 4))
    with pytest.raises(ValueError, match="non-empty mapping"):
        filter_figure(image, {})
    with pytest.raises(ValueError, match="non-empty mapping"):
        filter_figure(image, [image])
    with pytest.raises(ValueError, match=r"filtered\['flat'\] must have 2 or 3 dimensions"):
        filter_figure(image, {"flat": np.zeros(4)})


def test_kernel_figure_writes_every_weight_with_symmetric_colours():
    """A 3×3 kernel gets its nine numbers in the cells and a colour scale centred on 0."""
    kernel = sobel_kernel(1)
    axes = kernel_figure(kernel).axes[0]
    texts = {(text.get_position(), text.get_text()) for text in axes.texts}
    expected = {((column, row), f"{value:.0f}") for (row, column), value in np.ndenumerate(kernel)}
    assert texts == expected
    np.testing.assert_array_equal(panel_data(axes), kernel)
    assert axes.images[0].get_clim() == (-2.0, 2.0)


def test_kernel_figure_formats_fractions_and_skips_numbers_when_large():
    """Non-integers are written to 3 significant digits; kernels over 15×15 have no numbers."""
    axes = kernel_figure([[0.125, 1 / 3]]).axes[0]
    assert sorted(text.get_text() for text in axes.texts) == ["0.125", "0.333"]
    assert len(kernel_figure(np.ones((16, 16))).axes[0].texts) == 0


@pytest.mark.parametrize("n", [1, 4, 7])
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", ["full", "same", "valid"])
def test_padding_windows_match_numpy_and_scipy(n, kernel_size, padding):
    """Output i sees exactly the input positions whose impulse reaches output i: np.correlate
    for 'full'/'valid', scipy.signal.correlate2d for 'same' (PyTorch's even-kernel rule)."""
    if padding == "valid" and kernel_size > n:
        with pytest.raises(ValueError, match="does not fit"):
            padding_windows(n, kernel_size, padding)
        return
    windows = padding_windows(n, kernel_size, padding)
    assert len(windows) == output_size(n, kernel_size, padding=padding)
    ones = np.ones(kernel_size)
    for position in range(n):
        impulse = np.zeros(n)
        impulse[position] = 1.0
        if padding == "same":
            reached = scipy.signal.correlate2d(impulse[None], ones[None], mode="same")[0]
        else:
            reached = np.correlate(impulse, ones, mode=padding)
        seen_by = [start <= position <= stop for start, stop in windows]
        np.testing.assert_array_equal(reached != 0, seen_by)


def test_padding_figure_draws_one_bar_per_output():
    """Each panel's title gives the output size and it has that many window bars."""
    figure = padding_figure(6, 3)
    assert [axes.get_title() for axes in figure.axes] == [
        "full (padding 2 on each side): output size 8",
        "same (padding 1 on each side): output size 6", "valid (no padding): output size 4"
    ]
    for axes, size in zip(figure.axes, (8, 6, 4), strict=True):
        bars = [label for label in axes.texts if label.get_text().startswith("y")]
        assert len(bars) == size


def test_padding_figure_leaves_out_valid_when_kernel_is_longer():
    """With a kernel longer than the input there is no 'valid' output to draw."""
    assert len(padding_figure(2, 3).axes) == 2


def test_padding_figure_refuses_large_sizes():
    """The figure draws up to 40 cells, and says so in words a command-line user knows."""
    with pytest.raises(ValueError, match="inputs and kernels of up to 40 elements, got input "
                       "size 41 and kernel size 3"):
        padding_figure(41, 3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        padding_figure(0, 3)


def test_save_figure_writes_png_of_the_figure_size(tmp_path):
    """The PNG has figsize × dpi pixels; an existing file needs overwrite."""
    figure = padding_figure(4, 3)
    width, height = figure.get_size_inches()
    path = save_figure(figure, tmp_path / "padding.png", dpi=50)
    with Image.open(path) as written:
        assert written.format == "PNG"
        assert written.size == (round(width * 50), round(height * 50))
    with pytest.raises(FileExistsError, match="already exists"):
        save_figure(figure, path)
    save_figure(figure, path, overwrite=True)


def test_save_figure_refuses_other_suffixes_and_missing_folders(tmp_path):
    """Only .png into an existing folder."""
    figure = kernel_figure([[1.0]])
    with pytest.raises(ValueError, match=r"must end in \.png"):
        save_figure(figure, tmp_path / "kernel.pdf")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_figure(figure, tmp_path / "absent" / "kernel.png")


def test_demo_figures_writes_edge_and_blur_pngs(tmp_path):
    """demo_figures writes edges.png and blur.png, and refuses to replace them unasked."""
    paths = demo_figures(tmp_path)
    assert [path.name for path in paths] == ["edges.png", "blur.png"]
    for path in paths:
        with Image.open(path) as written:
            assert written.format == "PNG" and written.size[0] > 400
    with pytest.raises(FileExistsError):
        demo_figures(tmp_path)
    assert len(demo_figures(tmp_path, overwrite=True)) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        demo_figures(tmp_path / "absent")


def test_import_cnnkit_loads_neither_matplotlib_nor_pillow():
    """`import cnnkit` stays numpy-only: figures and files import their libraries lazily."""
    code = (
        "import sys, cnnkit, cnnkit.filters, cnnkit.plots, cnnkit.imageio;"
        "heavy = [m for m in ('matplotlib', 'PIL', 'scipy', 'torch', 'cv2') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    environment = {**os.environ, "PYTHONPATH": str(SOURCE)}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=environment, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _bars(axes):
    return [label for label in axes.texts if label.get_text().startswith("y")]


@pytest.mark.parametrize(("n", "kernel_size", "stride", "padding", "dilation"), [
    (7, 3, 2, 0, 1), (7, 3, 1, 1, 2), (9, 2, 3, "full", 1), (8, 3, 1, "same", 2), (6, 4, 2, 3, 1),
])
def test_padding_figure_draws_the_asked_stride_padding_and_dilation(
    n, kernel_size, stride, padding, dilation
):
    """Regression: the figure ignored stride, padding and dilation. Every panel's bar count and
    title equal output_size with the figure's arguments, the asked padding is marked, and the
    title names every argument."""
    figure = padding_figure(n, kernel_size, stride=stride, padding=padding, dilation=dilation)
    assert figure.get_suptitle() == (f"input size {n}, kernel size {kernel_size}, stride "
                                     f"{stride}, padding {padding}, dilation {dilation}")
    asked = [axes for axes in figure.axes if "asked" in axes.get_title()]
    assert len(asked) == 1
    expected = output_size(n, kernel_size, stride, padding, dilation)
    assert asked[0].get_title().endswith(f": output size {expected}")
    assert len(_bars(asked[0])) == expected
    for axes in figure.axes:
        name = axes.get_title().split(" ")[0].rstrip(":")
        if name in ("full", "same", "valid"):
            size = output_size(n, kernel_size, stride, name, dilation)
            assert axes.get_title().endswith(f"output size {size}") and len(_bars(axes)) == size
    if stride > 1:  # 'same' is only defined for stride 1
        assert not any(axes.get_title().startswith("same") for axes in figure.axes)


@pytest.mark.parametrize(("n", "kernel_size", "stride", "dilation"),
                         [(7, 3, 2, 1), (8, 3, 1, 2), (9, 2, 3, 2), (5, 1, 2, 1)])
@pytest.mark.parametrize("padding", [0, 1, 2, "full"])
def test_padding_windows_with_stride_and_dilation_match_numpy(
    n, kernel_size, stride, dilation, padding
):
    """Output i reads exactly the taps first, first + d, ..., last: the input positions whose
    impulse reaches output i through np.correlate with a dilated kernel of ones, every
    stride-th output kept."""
    windows = padding_windows(n, kernel_size, padding, stride=stride, dilation=dilation)
    span = dilation * (kernel_size - 1)
    pad = span if padding == "full" else padding
    dilated = np.zeros(span + 1)
    dilated[::dilation] = 1.0
    assert len(windows) == output_size(n, kernel_size, stride, padding, dilation)
    for position in range(n):
        impulse = np.zeros(n + 2 * pad)
        impulse[pad + position] = 1.0
        reached = np.correlate(impulse, dilated, mode="valid")[::stride]
        taps = [position in range(first, last + 1, dilation) for first, last in windows]
        np.testing.assert_array_equal(reached != 0, taps)


def test_edge_figure_has_labelled_colour_bars_and_a_zero_centred_scale():
    """Regression: edge panels had no colour bar. Each edge panel has one saying what the
    grays mean; the signed panels are symmetric about 0 even when one sign is missing."""
    ramp = np.tile(np.linspace(0.0, 1.0, 16), (16, 1))
    vertical = sobel(ramp, 1)
    figure = edge_figure(ramp, vertical, sobel(ramp, 0), title="how")
    bars = [axes for axes in figure.axes if axes.get_label() == "<colorbar>"]
    assert [axes.get_xlabel() for axes in bars] == [SIGNED_LABEL, SIGNED_LABEL,
                                                    "magnitude: black 0 (no edge), white "
                                                    "strongest"]
    low, high = figure.axes[1].images[0].get_clim()
    assert vertical.min() >= 0.0 and low == -high == -np.abs(vertical).max()
    assert figure.get_suptitle() == "how"


@pytest.mark.parametrize("make", [
    lambda image: filter_figure(image, {"sigma = 1": image, "sigma = 3": image},
                                title="Gaussian blur of the grid image"),
    lambda image: edge_figure(image, sobel(image, 1), sobel(image, 0), title="A title"),
])
def test_figure_title_stands_clear_of_panel_titles(make):
    """Regression: the blur figure's title touched its panels' titles (1 pixel apart). The gap
    between the figure title and every panel title is at least half a line of text."""
    figure = make(grid_lines(128))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    title = figure._suptitle.get_window_extent(renderer)
    for axes in figure.axes:
        if axes.get_title():
            panel = axes.title.get_window_extent(renderer)
            assert title.y0 - panel.y1 >= 0.5 * title.height, axes.get_title()


def test_saved_png_carries_the_figure_text(tmp_path):
    """A saved figure's PNG text chunks hold its title, its panel titles and the note under
    the panels."""
    figure = padding_figure(7, 3, stride=2, padding=0)
    with Image.open(save_figure(figure, tmp_path / "padding.png")) as written:
        assert written.text["Title"] == figure.get_suptitle()
        assert written.text["Description"] == figure_text(figure)["Description"]
        assert "valid (no padding, asked): output size 3" in written.text["Description"]
        assert written.text["Description"].endswith("'same' is not drawn: it is only defined "
                                                    "for stride 1 (the stride here is 2)")


def test_kernel_figure_labels_its_colour_bar():
    """The kernel's colour bar says it shows the weights."""
    figure = kernel_figure(np.ones((20, 20)), title="box")
    assert figure_text(figure) == {"Title": "box", "Description": "box | weight"}


def test_padding_figure_refuses_more_cells_than_it_can_draw():
    """A large dilation or padding would make a figure hundreds of inches wide: refused in
    words that name the arguments."""
    with pytest.raises(ValueError, match=r"up to 120 cells of input and padding, got 207 "
                       r"\(input size 7, padding full, dilation 50\)"):
        padding_figure(7, 3, dilation=50)
    with pytest.raises(ValueError, match=r"got 1007 \(input size 7, padding 500"):
        padding_figure(7, 3, padding=500)


# --- the padding figure draws what the formula does -------------------------------------------


def _cells(axes) -> dict[int, bool]:
    """The input and padding cells of a padding panel: position -> hatched (no window reaches
    it). Cells are the rectangles of height 0.8 (window bars are 0.36 high)."""
    return {round(patch.get_x() + 0.45): bool(patch.get_hatch()) for patch in axes.patches
            if round(patch.get_height(), 2) == 0.8}


def _unreached_by_numpy(n, kernel_size, stride, dilation, before, after):
    """Padding positions whose impulse reaches no output: np.correlate of the padded signal
    with the dilated kernel of ones ('valid'), every stride-th output kept."""
    dilated = np.zeros(dilation * (kernel_size - 1) + 1)
    dilated[::dilation] = 1.0
    padding = [*range(-before, 0), *range(n, n + after)]
    missed = []
    for position in padding:
        impulse = np.zeros(n + before + after)
        impulse[before + position] = 1.0
        if not np.correlate(impulse, dilated, mode="valid")[::stride].any():
            missed.append(position)
    return missed


def test_padding_figure_draws_every_padding_cell_and_names_the_unreached_one():
    """Regression: `outsize --input 10 --kernel 3 --padding 2 --stride 2 --plot` said "padding
    2" but drew 2 zeros on the left and 1 on the right. Both padding cells on each side are
    drawn, the one no window reaches is hatched and named in the title, and the missing 'same'
    panel is explained under the panels."""
    figure = padding_figure(10, 3, stride=2, padding=2)
    (asked,) = [axes for axes in figure.axes if "asked" in axes.get_title()]
    cells = _cells(asked)
    assert sorted(cells) == list(range(-2, 12))
    assert [position for position, hatched in cells.items() if hatched] == [11]
    assert asked.get_title() == ("full (padding 2 on each side, asked; the last 1 on the right "
                                 "is not reached by any window): output size 6")
    assert "'same' is not drawn: it is only defined for stride 1 (the stride here is 2)" in (
        figure.get_supxlabel())
    assert "hatched: zero padding that no window reaches" in figure_text(figure)["Description"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), kernel_size=st.integers(1, 5), stride=st.integers(1, 4),
       dilation=st.integers(1, 3), before=st.integers(0, 6), after=st.integers(0, 6))
def test_unreached_padding_matches_numpy(n, kernel_size, stride, dilation, before, after):
    """For any padding (asymmetric included), the hatched cells of the asked panel are the
    padding positions whose impulse reaches no output, as np.correlate computes it; every
    padding cell is drawn; the title names them only when there are some."""
    span = dilation * (kernel_size - 1)
    assume(n + before + after > span)
    windows = padding_windows(n, kernel_size, (before, after), stride=stride,
                              dilation=dilation)
    left, right = unreached_padding(n, (before, after), windows, dilation=dilation)
    expected = _unreached_by_numpy(n, kernel_size, stride, dilation, before, after)
    assert left + right == expected
    figure = padding_figure(n, kernel_size, stride=stride, padding=(before, after),
                            dilation=dilation)
    (asked,) = [axes for axes in figure.axes if "asked" in axes.get_title()]
    cells = _cells(asked)
    assert sorted(cells) == list(range(-before, n + after))
    assert [position for position, hatched in sorted(cells.items()) if hatched] == expected
    title = " ".join(asked.get_title().split())  # long titles are wrapped
    assert ("not reached by any window" in title) == bool(expected)


def test_padding_figure_names_asymmetric_padding_by_side():
    """'same' with an even kernel pads 1 on the left and 2 on the right (PyTorch's rule), and
    an asked pair is named by side; a symmetric padding says "on each side"."""
    figure = padding_figure(7, 4, padding=(2, 1))
    titles = [axes.get_title() for axes in figure.axes]
    assert "same (padding 1 on the left, 2 on the right): output size 7" in titles
    assert "padding 2 on the left, 1 on the right (asked): output size 7" in titles
    assert titles[0] == "full (padding 3 on each side): output size 10"
    same = _cells(figure.axes[1])
    assert min(same) == -1 and max(same) == 7 + 2 - 1


def test_padding_figure_says_why_valid_is_left_out():
    """With a window longer than the input there is no 'valid' panel, and the figure says so."""
    figure = padding_figure(2, 3)
    assert figure.get_supxlabel() == ("'valid' is not drawn: the window spans 3 elements, more "
                                      "than the input's 2")
    assert padding_figure(5, 3).get_supxlabel() == ""


def test_long_panel_titles_wrap_and_keep_the_output_size_last():
    """A title longer than the figure is wide is wrapped, and still ends with the output
    size on its last line."""
    figure = padding_figure(3, 3, stride=2, padding=(0, 3))
    (asked,) = [axes for axes in figure.axes if "asked" in axes.get_title()]
    title = asked.get_title()
    assert "\n" in title and title.endswith("by any window): output size 2")
    assert " ".join(title.split()) == ("padding 0 on the left, 3 on the right (asked; the last "
                                       "1 on the right is not reached by any window): output "
                                       "size 2")

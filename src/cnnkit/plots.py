"""Figures, drawn with matplotlib's Agg renderer (imported inside each function).

Each function returns a :class:`matplotlib.figure.Figure` that is not attached to pyplot, so
nothing is shown and nothing global changes; :func:`save_figure` writes one as PNG, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnkit._validate import as_float_array, check_int
from cnnkit.errors import InvalidArgument
from cnnkit.shapes import output_size, resolve_padding

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "as_picture",
    "edge_figure",
    "figure_text",
    "filter_figure",
    "kernel_figure",
    "new_figure",
    "padding_figure",
    "padding_windows",
    "save_figure",
    "unreached_padding",
]


def as_picture(pixels: np.ndarray) -> np.ndarray:
    """An image ``(C, H, W)`` as ``(H, W)`` (one channel) or ``(H, W, C)``.

    >>> as_picture(np.zeros((3, 2, 4))).shape
    (2, 4, 3)
    """
    return pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` by ``height`` inches, drawn by Agg, not attached to pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _panel_row(
    count: int, image_shape: tuple[int, ...], *, titled: bool = False, bars: bool = False
) -> Figure:
    """A figure for ``count`` image panels side by side, 4 inches wide each, shaped like them,
    with room for a figure title (``titled``) and colour bars under the panels (``bars``)."""
    rows, columns = image_shape[:2]
    panel_height = min(12.0, max(1.5, 4.0 * rows / columns))
    return new_figure(4.0 * count, panel_height + 0.5 + 0.4 * titled + 0.9 * bars)


#: Colour-bar label of a signed response panel (edges): what its grays mean.
SIGNED_LABEL = "response: white > 0, mid-gray 0, black < 0"


def _show_image(axes: object, image: np.ndarray, title: str) -> object:
    """Colour clipped to [0, 1]; gray on the fixed 0..1 scale when it lies within it (images,
    blurs); a signed response (edges) on a scale symmetric about 0, so that 0 is mid-gray;
    other non-negative values from 0 to their largest. Returns the drawn image."""
    if image.ndim == 3:
        drawn = axes.imshow(np.clip(image if image.shape[2] != 2 else image[:, :, 0], 0.0, 1.0))
    elif image.min() >= 0.0 and image.max() <= 1.0:
        drawn = axes.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
    elif image.min() < 0.0:
        extent = float(np.nanmax(np.abs(image)))
        drawn = axes.imshow(image, cmap="gray", vmin=-extent, vmax=extent)
    else:
        drawn = axes.imshow(image, cmap="gray", vmin=0.0)
    axes.set_title(title)
    axes.set_axis_off()
    return drawn


def _colour_bar(figure: Figure, drawn: object, axes: object, label: str) -> None:
    """A labelled colour bar under one panel."""
    figure.colorbar(drawn, ax=axes, orientation="horizontal", shrink=0.8, label=label)


def figure_text(figure: Figure) -> dict[str, str]:
    """The words a figure shows, as saved in its PNG's text chunks.

    ``Title`` is the figure's title (or, without one, the titles of its panels joined by
    " | "); ``Description`` lists the panel titles, colour-bar labels and the note under the
    panels (the figure's ``supxlabel``), joined by " | ".
    Anyone can then read what a saved figure claims without looking at it, for example with
    Pillow: ``Image.open(path).text["Title"]``.

    >>> figure_text(kernel_figure([[1, 2], [3, 4]], title="mine"))
    {'Title': 'mine', 'Description': 'mine | weight'}
    """
    panels = [axes.get_title() for axes in figure.axes if axes.get_title()]
    labels = [axes.get_xlabel() or axes.get_ylabel() for axes in figure.axes
              if axes.get_label() == "<colorbar>" and (axes.get_xlabel() or axes.get_ylabel())]
    suptitle = figure.get_suptitle()
    notes = [figure.get_supxlabel()] if figure.get_supxlabel() else []
    return {
        "Title": suptitle or " | ".join(panels),
        "Description": " | ".join([*panels, *labels, *notes]),
    }


def save_figure(
    figure: Figure, path: str | os.PathLike, *, overwrite: bool = False, dpi: int = 100
) -> Path:
    """Save ``figure`` as a PNG file at ``path``, atomically, with its words as PNG text.

    The PNG's text chunks ``Title`` and ``Description`` hold :func:`figure_text`.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Any figure, for example from :func:`edge_figure`.
    path : str or os.PathLike
        Ends in ``.png``; its folder must exist.
    overwrite : bool
        Replace an existing file; without it an existing file is refused.
    dpi : int
        Resolution: the PNG has ``figsize * dpi`` pixels.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> figure = kernel_figure([[1, 2], [3, 4]])
    >>> save_figure(figure, pathlib.Path(tempfile.mkdtemp()) / "kernel.png").suffix
    '.png'
    """
    from cnnkit._files import atomic_write

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidArgument(
            f"figures are saved as PNG; the path must end in .png, got {str(path)!r}"
        )
    dpi = check_int(dpi, "dpi", minimum=1)
    return atomic_write(
        path,
        lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, metadata=figure_text(figure)),
        overwrite=overwrite,
    )


def edge_figure(
    image: object, vertical: object, horizontal: object, *, title: str | None = None
) -> Figure:
    """The tutorial's edge figure: original, vertical edges, horizontal edges, edge magnitude.

    The panels are computed by the caller (for example with :func:`cnnkit.filters.sobel` along
    the columns and the rows); this function only draws them, with the magnitude
    ``hypot(vertical, horizontal)`` as the fourth panel. The image is shown on the fixed 0..1
    gray scale; the signed edge panels on a scale symmetric about 0 (mid-gray), the magnitude
    from 0 (black: no edge); each edge panel has a colour bar saying so. ``title`` should say
    how the panels were computed (correlation or convolution, the border).

    Parameters
    ----------
    image : array_like
        ``(H, W)`` or ``(H, W, C)``.
    vertical, horizontal : array_like
        ``(H, W)`` responses to "sobel-x" (brightness changing across the columns) and
        "sobel-y" (down the rows).

    title : str, optional
        A title over all panels.

    Returns
    -------
    matplotlib.figure.Figure
        Four image panels in one row, then the three colour bars.

    Examples
    --------
    >>> ramp = np.tile(np.linspace(0.0, 1.0, 8), (8, 1))
    >>> figure = edge_figure(ramp, np.ones((8, 8)), np.zeros((8, 8)))
    >>> [axes.get_title() for axes in figure.axes[:4]]
    ['Original image', 'Vertical edges (sobel-x)', 'Horizontal edges (sobel-y)', 'Edge magnitude']
    >>> figure.axes[4].get_xlabel()
    'response: white > 0, mid-gray 0, black < 0'
    """
    image = as_float_array(image, "image", ndims=(2, 3))
    vertical = as_float_array(vertical, "vertical", ndims=(2,))
    horizontal = as_float_array(horizontal, "horizontal", ndims=(2,))
    if vertical.shape != image.shape[:2] or horizontal.shape != image.shape[:2]:
        raise InvalidArgument(
            f"vertical {vertical.shape} and horizontal {horizontal.shape} must have the "
            f"image's height and width {image.shape[:2]}"
        )
    panels = {
        "Original image": image,
        "Vertical edges (sobel-x)": vertical,
        "Horizontal edges (sobel-y)": horizontal,
        "Edge magnitude": np.hypot(vertical, horizontal),
    }
    figure = _panel_row(len(panels), image.shape, titled=title is not None, bars=True)
    row_of_axes = figure.subplots(1, len(panels))
    drawn = [_show_image(axes, panel, name)
             for axes, (name, panel) in zip(row_of_axes, panels.items(), strict=True)]
    for axes, picture in zip(row_of_axes[1:3], drawn[1:3], strict=True):
        # Signed panels: a zero response must read as mid-gray even when one sign is missing.
        extent = float(np.nanmax(np.abs(picture.get_array()))) or 1.0
        picture.set_clim(-extent, extent)
        _colour_bar(figure, picture, axes, SIGNED_LABEL)
    drawn[3].set_clim(0.0, float(np.nanmax(drawn[3].get_array())) or 1.0)
    _colour_bar(figure, drawn[3], row_of_axes[3], "magnitude: black 0 (no edge), white strongest")
    if title is not None:
        figure.suptitle(title)
    return figure


def filter_figure(
    image: object, filtered: Mapping[str, object], *, title: str | None = None
) -> Figure:
    """An image next to filtered versions of it, one panel each, titled by the mapping's keys.

    Colour panels are shown clipped to [0, 1]. Gray panels whose values lie in [0, 1] (images,
    blurs) are shown on that fixed scale, so that a blur visibly lowers the contrast; signed
    ones (edge responses) on a scale symmetric about 0 with a colour bar saying what the grays
    mean.

    Parameters
    ----------
    image : array_like
        The original, ``(H, W)`` or ``(H, W, C)``.
    filtered : mapping of str to array_like
        Panel title -> filtered image.
    title : str, optional
        A title over all panels.

    Returns
    -------
    matplotlib.figure.Figure
        One row of panels, the original first.

    Examples
    --------
    >>> ramp = np.tile(np.linspace(0.0, 1.0, 32), (32, 1))
    >>> figure = filter_figure(ramp, {"darker": 0.5 * ramp})
    >>> [axes.get_title() for axes in figure.axes]
    ['Original image', 'darker']
    """
    if not isinstance(filtered, Mapping) or not filtered:
        raise InvalidArgument(
            f"filtered must be a non-empty mapping of title -> image, got {filtered!r}"
        )
    panels = {"Original image": as_float_array(image, "image", ndims=(2, 3))}
    for name, panel in filtered.items():
        panels[str(name)] = as_float_array(panel, f"filtered[{name!r}]", ndims=(2, 3))
    signed = [panel.ndim == 2 and panel.min() < 0.0 for panel in panels.values()]
    figure = _panel_row(len(panels), panels["Original image"].shape, titled=title is not None,
                        bars=any(signed))
    row_of_axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (name, panel), has_sign in zip(row_of_axes, panels.items(), signed, strict=True):
        drawn = _show_image(axes, panel, name)
        if has_sign:
            _colour_bar(figure, drawn, axes, SIGNED_LABEL)
    if title is not None:
        figure.suptitle(title)
    return figure


def _format_weight(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def kernel_figure(kernel: object, *, title: str | None = None) -> Figure:
    """A kernel drawn as a heat map with its weights written in the cells.

    Positive weights are red, negative blue, zero white. Numbers are written for kernels of up
    to 15 × 15.

    Parameters
    ----------
    kernel : array_like
        A 2-D kernel.
    title : str, optional
        Default: the kernel's size.

    Returns
    -------
    matplotlib.figure.Figure
        One heat map with a colour bar.

    Examples
    --------
    >>> figure = kernel_figure([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], title="sobel-x")
    >>> sorted(text.get_text() for text in figure.axes[0].texts)[:3]
    ['-1', '-1', '-2']
    """
    weights = as_float_array(kernel, "kernel", ndims=(2,)).astype(np.float64)
    rows, columns = weights.shape
    figure = new_figure(max(3.0, 0.6 * columns + 1.5), max(2.5, 0.6 * rows + 1.0))
    axes = figure.subplots()
    extent = float(np.abs(weights).max()) or 1.0
    picture = axes.imshow(weights, cmap="RdBu_r", vmin=-extent, vmax=extent)
    figure.colorbar(picture, ax=axes, shrink=0.8, label="weight")
    if rows <= 15 and columns <= 15:
        for (row, column), value in np.ndenumerate(weights):
            shade = "white" if abs(value) > 0.6 * extent else "black"
            axes.text(column, row, _format_weight(value), ha="center", va="center",
                      color=shade, fontsize=9)
    axes.set_xticks(range(columns))
    axes.set_yticks(range(rows))
    axes.set_xlabel("column")
    axes.set_ylabel("row")
    axes.set_title(title if title is not None else f"{rows} x {columns} kernel")
    return figure


def padding_windows(
    n: int, kernel_size: int, padding: object, *, stride: int = 1, dilation: int = 1
) -> list[tuple[int, int]]:
    """First and last input position seen by each output of a 1-D sliding window.

    Positions below 0 or above ``n - 1`` are padding. With ``dilation`` d the window reads
    every d-th position from its first to its last.

    Parameters
    ----------
    n : int
        Input length.
    kernel_size : int
        Window length (number of taps).
    padding : int, (int, int) or {'full', 'same', 'valid'}
        As in :func:`cnnkit.shapes.output_size`.
    stride, dilation : int
        As in :func:`cnnkit.shapes.output_size`.

    Returns
    -------
    list of (int, int)
        One ``(first, last)`` pair per output position.

    Examples
    --------
    >>> padding_windows(4, 3, "valid")
    [(0, 2), (1, 3)]
    >>> padding_windows(3, 3, "full")
    [(-2, 0), (-1, 1), (0, 2), (1, 3), (2, 4)]
    >>> padding_windows(7, 3, 0, stride=2)
    [(0, 2), (2, 4), (4, 6)]
    """
    n = check_int(n, "n", minimum=1)
    kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
    stride = check_int(stride, "stride", minimum=1)
    dilation = check_int(dilation, "dilation", minimum=1)
    ((before, _),) = resolve_padding(padding, (kernel_size,), stride=(stride,),
                                     dilation=(dilation,))
    count = output_size(n, kernel_size, stride, padding, dilation)
    span = dilation * (kernel_size - 1)
    return [(start * stride - before, start * stride - before + span) for start in range(count)]


#: The padding figure draws inputs and kernels of up to this many elements.
PADDING_FIGURE_LIMIT = 40


def _padding_label(padding: object) -> str:
    """'full', 'same', 'valid', '2' or '(1, 2)': a padding as the command line writes it."""
    if isinstance(padding, str):
        return padding
    if isinstance(padding, tuple):
        return f"({padding[0]}, {padding[1]})"
    return str(padding)


def _describe_pads(before: int, after: int) -> str:
    """'no padding', 'padding 2 on each side' or 'padding 1 on the left, 2 on the right'."""
    if before == after == 0:
        return "no padding"
    if before == after:
        return f"padding {before} on each side"
    return f"padding {before} on the left, {after} on the right"


def unreached_padding(
    n: int, pads: tuple[int, int], windows: list[tuple[int, int]], *, dilation: int = 1
) -> tuple[list[int], list[int]]:
    """The padding positions, left and right of an input of length ``n``, that no tap of any
    window reads (the windows of :func:`padding_windows`).

    With a stride, the last windows can stop before the end of the right padding: its last
    cells then hold zeros that nothing uses, and the output is as if they were not there.

    >>> pads = (2, 2)
    >>> unreached_padding(10, pads, padding_windows(10, 3, 2, stride=2))
    ([], [11])
    >>> unreached_padding(7, (1, 1), padding_windows(7, 3, 1))
    ([], [])
    """
    before, after = pads
    taps = {tap for start, stop in windows for tap in range(start, stop + 1, dilation)}
    return ([position for position in range(-before, 0) if position not in taps],
            [position for position in range(n, n + after) if position not in taps])


def _unreached_phrase(n: int, pads: tuple[int, int], left: list[int], right: list[int]) -> str:
    """'the last 1 on the right is not reached by any window', or '' when every cell is."""
    parts = []
    if left:
        parts.append(f"{len(left)} on the left")
    if right:
        at_end = right == list(range(n + pads[1] - len(right), n + pads[1]))
        parts.append(f"{'the last ' if at_end else ''}{len(right)} on the right")
    if not parts:
        return ""
    verb = "is" if len(left) + len(right) == 1 else "are"
    return f"{' and '.join(parts)} {verb} not reached by any window"


#: Characters of a padding panel's title per inch of figure width (at font size 10).
PADDING_TITLE_CHARACTERS = 14


def _panel_title(name: str, sides: tuple[int, int], outputs: int, asked: str | None,
                 unreached: str, *, width: int) -> str:
    """'full (padding 2 on each side, asked; the last 1 on the right is not reached by any
    window): output size 6', wrapped to ``width`` characters with the output size kept on the
    last line."""
    import textwrap

    named = name in ("full", "same", "valid")
    details = ", ".join(([_describe_pads(*sides)] if named else [])
                        + (["asked"] if name == asked else []))
    details = "; ".join(part for part in (details, unreached) if part)
    head = name if named else _describe_pads(*sides)
    words = f"{head} ({details})" if details else head
    return f"{textwrap.fill(words, width)}: output size {outputs}"


def padding_figure(
    n: int = 5,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    padding: object = None,
    dilation: int = 1,
) -> Figure:
    """Which input positions each output position sees, for the padding names and one asked.

    One panel per padding: 'full', 'same' (only defined for stride 1) and 'valid' (when the
    window fits), all with the given ``stride`` and ``dilation``; a numeric ``padding`` adds
    its own panel, and the asked padding's panel is marked "asked". A panel left out is named,
    with the reason, under the panels. Each panel's title names its padding on each side
    (asymmetric padding, such as 'same' with an even kernel, by side) and any padding that no
    window reaches (with a stride, the last windows can stop before the end of the right
    padding). Input cells are drawn in a row at the top: padding cells dashed, holding 0, and
    hatched in gray where no window reaches them. Each output below is a bar spanning its
    window with a dot on every tap, labelled with its index, so the number of bars is the
    output size. The figure's title states every argument.

    Parameters
    ----------
    n : int
        Input length, 1 to 40.
    kernel_size : int
        Kernel length, 1 to 40.
    stride, dilation : int
        As in :func:`cnnkit.shapes.output_size`.
    padding : int, (int, int), {'full', 'same', 'valid'} or None
        The padding asked for (a pair is ``(left, right)``); None draws the three names only.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per padding, stacked.

    Examples
    --------
    >>> figure = padding_figure(5, 3)
    >>> [axes.get_title() for axes in figure.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['full (padding 2 on each side): output size 7',
     'same (padding 1 on each side): output size 5', 'valid (no padding): output size 3']
    >>> figure = padding_figure(10, 3, stride=2, padding=2)
    >>> figure.get_suptitle()
    'input size 10, kernel size 3, stride 2, padding 2, dilation 1'
    >>> [axes.get_title() for axes in figure.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['full (padding 2 on each side, asked; the last 1 on the right is not reached by any
      window): output size 6', 'valid (no padding): output size 4']
    >>> print(figure.get_supxlabel())
    'same' is not drawn: it is only defined for stride 1 (the stride here is 2)
    hatched: zero padding that no window reaches
    """
    from matplotlib.patches import Rectangle

    n = check_int(n, "n", minimum=1)
    kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
    stride = check_int(stride, "stride", minimum=1)
    dilation = check_int(dilation, "dilation", minimum=1)
    limit = PADDING_FIGURE_LIMIT
    if n > limit or kernel_size > limit:
        raise InvalidArgument(
            f"the padding figure draws inputs and kernels of up to {limit} elements, got "
            f"input size {n} and kernel size {kernel_size}"
        )
    span = dilation * (kernel_size - 1)
    # 'same' is only defined for stride 1; 'valid' has no output when the window is longer
    # than the input. Each one left out is named under the panels.
    candidates: dict[str, object] = {"full": "full"}
    left_out = []
    if stride == 1:
        candidates["same"] = "same"
    else:
        left_out.append("'same' is not drawn: it is only defined for stride 1 (the stride here "
                        f"is {stride})")
    if span < n:
        candidates["valid"] = "valid"
    else:
        left_out.append(f"'valid' is not drawn: the window spans {span + 1} elements, more than "
                        f"the input's {n}")
    pads = ((0, 0),) if padding is None else resolve_padding(
        padding, (kernel_size,), stride=(stride,), dilation=(dilation,))
    # 'full' pads the dilated kernel's span on each side.
    cells = n + max(span, pads[0][0]) + max(span, pads[0][1])
    if cells > 3 * limit:
        widest = _padding_label("full" if padding is None else padding)
        raise InvalidArgument(
            f"the padding figure draws up to {3 * limit} cells of input and padding, got "
            f"{cells} (input size {n}, padding {widest}, dilation {dilation}); draw a smaller "
            "case"
        )
    asked = None
    if padding is not None:
        same_as = [name for name in candidates
                   if resolve_padding(name, (kernel_size,), dilation=(dilation,)) == pads]
        asked = same_as[0] if same_as else _padding_label(padding)
        if not same_as:
            candidates[asked] = padding
    panels = []  # (head, padding on each side, windows)
    for name, value in candidates.items():
        sides = resolve_padding(value, (kernel_size,), stride=(stride,), dilation=(dilation,))[0]
        panels.append((name, sides, padding_windows(n, kernel_size, value, stride=stride,
                                                    dilation=dilation)))
    # One horizontal scale for all panels, so that the same input cell lines up in each.
    low = -max(before for _, (before, _), _ in panels)
    high = n - 1 + max(after for _, (_, after), _ in panels)
    figure_width = max(6.0, 0.5 * (high - low + 1) + 1)
    unreached = [unreached_padding(n, sides, windows, dilation=dilation)
                 for _, sides, windows in panels]
    titles = [_panel_title(name, sides, len(windows), asked, _unreached_phrase(n, sides, *cells),
                           width=int(PADDING_TITLE_CHARACTERS * figure_width))
              for (name, sides, windows), cells in zip(panels, unreached, strict=True)]
    if any(left or right for left, right in unreached):
        left_out.append("hatched: zero padding that no window reaches")
    tallest = max(len(windows) for _, _, windows in panels)
    figure = new_figure(figure_width, 1.4 + 0.35 * tallest * len(panels) + 0.3 * len(left_out)
                        + 0.2 * sum(title.count("\n") for title in titles))
    column_of_axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for axes, (_, sides, windows), (left, right), title in zip(
            column_of_axes, panels, unreached, titles, strict=True):
        for position in range(-sides[0], n + sides[1]):
            inside = 0 <= position < n
            idle = position in left or position in right  # padding no window reaches
            axes.add_patch(Rectangle((position - 0.45, 0.6), 0.9, 0.8, fill=inside,
                                     facecolor="0.85", edgecolor="0.6" if idle else "black",
                                     linestyle="-" if inside else "--",
                                     hatch="///" if idle else None))
            axes.text(position, 1.0, f"x{position}" if inside else "0", ha="center",
                      va="center", fontsize=8, color="0.5" if idle else "black")
        for index, (start, stop) in enumerate(windows):
            level = -0.5 - 0.5 * index
            axes.add_patch(Rectangle((start - 0.4, level - 0.18), stop - start + 0.8, 0.36,
                                     facecolor="tab:blue", alpha=0.6))
            taps = range(start, stop + 1, dilation)
            axes.plot(list(taps), [level] * len(taps), "o", color="black", markersize=3)
            axes.text(stop + 0.6, level, f"y{index}", va="center", fontsize=8)
        axes.set_xlim(low - 1, high + 2)
        axes.set_ylim(-0.5 - 0.5 * tallest, 1.6)
        axes.set_axis_off()
        axes.set_title(title, fontsize=10)
    arguments = f"input size {n}, kernel size {kernel_size}, stride {stride}"
    if padding is not None:
        arguments += f", padding {_padding_label(padding)}"
    figure.suptitle(f"{arguments}, dilation {dilation}")
    if left_out:
        figure.supxlabel("\n".join(left_out), fontsize=9)
    return figure

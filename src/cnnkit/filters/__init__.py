"""Image filters: named kernels, applying them to images, and built-in sample images.

>>> from cnnkit.filters import grid_lines, sobel
>>> edges = sobel(grid_lines(64), 1)          # vertical edges of the tutorial's grid
>>> edges.shape
(64, 64)
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnkit.errors import NotFound
from cnnkit.filters.apply import (
    FILTER_MODES,
    PADDING_MODES,
    TO_UINT8_METHODS,
    box_blur,
    edge_magnitude,
    edge_orientation,
    filter_image,
    gaussian_blur,
    laplacian,
    prewitt,
    scharr,
    separable_factors,
    sharpen,
    sobel,
    to_uint8,
)
from cnnkit.filters.kernels import (
    KERNEL_NAMES,
    binomial_kernel,
    box_kernel,
    emboss_kernel,
    gaussian_kernel,
    gaussian_kernel1d,
    identity_kernel,
    laplacian_kernel,
    make_kernel,
    parse_kernel,
    prewitt_kernel,
    scharr_kernel,
    sharpen_kernel,
    sobel_kernel,
    sobel_kernels1d,
)
from cnnkit.filters.samples import (
    SAMPLE_NAMES,
    checkerboard,
    concentric_circles,
    grid_lines,
    noisy_gradient,
    sample_image,
    step_edge,
)

__all__ = [
    "FILTER_MODES",
    "KERNEL_NAMES",
    "PADDING_MODES",
    "SAMPLE_NAMES",
    "TO_UINT8_METHODS",
    "binomial_kernel",
    "box_blur",
    "box_kernel",
    "checkerboard",
    "concentric_circles",
    "demo_figures",
    "edge_magnitude",
    "edge_orientation",
    "emboss_kernel",
    "filter_image",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_kernel1d",
    "grid_lines",
    "identity_kernel",
    "laplacian",
    "laplacian_kernel",
    "make_kernel",
    "noisy_gradient",
    "parse_kernel",
    "prewitt",
    "prewitt_kernel",
    "sample_image",
    "scharr",
    "scharr_kernel",
    "separable_factors",
    "sharpen",
    "sharpen_kernel",
    "sobel",
    "sobel_kernel",
    "sobel_kernels1d",
    "step_edge",
    "to_uint8",
]

#: Blur strengths shown in the demo's blur figure.
DEMO_SIGMAS = (1.0, 3.0)


def demo_figures(out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write the edge figure and the blur figure of the built-in grid image as PNG files.

    ``edges.png`` is the tutorial's figure (original, vertical and horizontal Sobel edges,
    edge magnitude); ``blur.png`` shows the grid blurred with Gaussian sigma 1 and 3.
    Both files are written atomically into the existing folder ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        An existing folder.
    overwrite : bool
        Replace files of the same names; without it existing files are refused.

    Returns
    -------
    list of pathlib.Path
        The two files written.

    Examples
    --------
    >>> import tempfile
    >>> [path.name for path in demo_figures(tempfile.mkdtemp())]
    ['edges.png', 'blur.png']
    """
    from cnnkit.plots import edge_figure, filter_figure, save_figure

    folder = Path(out_dir)
    if not folder.is_dir():
        raise NotFound(f"output folder {str(folder)!r} does not exist")
    image = grid_lines(128)
    blurred = {f"sigma = {sigma:g}": gaussian_blur(image, sigma)
               for sigma in DEMO_SIGMAS}
    figures = {
        "edges.png": edge_figure(image),
        "blur.png": filter_figure(image, blurred, title="Gaussian blur of the grid image"),
    }
    return [
        save_figure(figure, folder / name, overwrite=overwrite)
        for name, figure in figures.items()
    ]

"""The correlation workhorse shared by the signal and neural families.

All convolution-like functions end in :func:`correlate`, with an input in NCHW layout (1-D
signals carry a unit height axis), a weight of shape ``(O, C // groups, kh, kw)`` and zero
padding given as ``((top, bottom), (left, right))``. (Other padding modes are applied by the
caller with :func:`cnnkit.ops.windows.pad`.) Three algorithms:

- **direct** (the default): the outputs are cut into tiles of whole output rows; each tile's
  columns (one per tap and input channel, "im2col") are gathered and multiplied with the
  weight matrix by BLAS. Tiles are sized so the column matrix stays under
  :data:`cnnkit.ops._parallel.TILE_BYTES`, which keeps it in cache and bounds the extra memory
  whatever the kernel. The columns are gathered in one of two ways, whichever copies the
  longer contiguous runs (:func:`_channels_last_pays`): *tap by tap* from the NCHW input, a
  row of outputs at a time, with the zero padding applied virtually (images, first layers);
  or *channels-last*, from one zero-padded (N, H, W, C) copy of the input, a window row's
  channels at a time (``kw * C`` elements), in one copy per tile (layers with many channels
  on small images, where a row of outputs is short).
- **banded**: for one plane and one filter at stride 1 (a filter or a pass of a separable
  filter over an image), a block of neighbouring outputs of a row is one input segment times a
  *band matrix* (a kernel row copied down its diagonals), so a tile of outputs is one matrix
  product per kernel row that reads the input in place, with some multiplications by zero,
  instead of one gathered copy of the input per tap. Segments of ``BAND_COLUMNS + kw - 1``
  inputs are a strided view; a one-column kernel (a vertical pass) uses the transposed form, the
  band matrix times ``BAND_ROWS + kh - 1`` whole input rows.
- **FFT**: for stride 1 when every output channel reads exactly one input channel (a single
  image, or a depthwise filter bank) and the kernel is large: the correlation is a product of
  spectra, computed as 1-D transforms over tiles of rows, then of columns. Chosen when it is
  predicted cheaper (:func:`choose_method`), and never when the data holds NaN or inf, which an
  FFT would spread over the whole output.

All three paths run their tiles through :func:`cnnkit.ops._parallel.map_tiles` (a thread pool for
large arrays, BLAS held to one thread), with results bit-identical for any thread count.

**The cost model** (the one in cnnkit; the filters use it too): the direct path costs one unit
per tap and output element (:func:`direct_cost`), the banded path :func:`banded_cost` units and
the FFT path :func:`fft_cost` units. Their constants (``BAND_*``, ``FFT_*``) are fitted by
``benchmarks/fit_constants.py``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cnnkit.errors import InvalidArgument
from cnnkit.ops import _parallel
from cnnkit.ops._parallel import map_tiles, row_tiles
from cnnkit.ops.windows import pad, tap_windows, window_view

__all__ = [
    "BAND_COLUMNS",
    "BAND_COST",
    "BAND_OVERHEAD",
    "BAND_REARRANGE",
    "BAND_ROWS",
    "BAND_TRANSPOSED_COST",
    "FFT_COST",
    "FFT_OVERHEAD",
    "banded_cost",
    "choose_method",
    "correlate",
    "correlate_backward",
    "direct_cost",
    "fft_cost",
]

#: Cost of one FFT "unit" (S log2 S for a transform of S points) relative to one multiply-add
#: of the direct path. Fitted with ``benchmarks/fit_constants.py`` on 2 x86-64 cores (2.4 on
#: 512² images to 4.4 on 2048², where the transforms leave the cache; see benchmarks/README.md).
FFT_COST = 3.0

#: Fixed cost of the FFT path (three transforms and their set-up), in the same units: below it
#: the direct path always wins.
FFT_OVERHEAD = 50_000

#: Cost of one multiply-add by a band matrix (its zeros included) relative to one of the direct
#: path: BLAS runs it from cache on input read in place. Kernels of several columns (segments of
#: rows times the band), and one-column kernels (the transposed band times whole rows), which
#: multiply fewer, longer rows and measure costlier per multiply-add.
BAND_COST = 0.045
BAND_TRANSPOSED_COST = 0.15

#: Cost per output and kernel row of summing the products and putting them in place.
BAND_REARRANGE = 3.0

#: Fixed cost of the banded path (band matrices, views, calls): small planes stay direct.
BAND_OVERHEAD = 20_000

#: Outputs per band matrix for a row kernel, and for a column kernel.
BAND_COLUMNS = 16
BAND_ROWS = 8

Pads = tuple[tuple[int, int], tuple[int, int]]


def _tiles(n_batch: int, n_rows: int, row_bytes: int) -> list[tuple[slice, int, int]]:
    """Split (batch, output rows) into tiles whose column matrix fits in ``TILE_BYTES``.

    Small images are grouped by whole images; a large image is cut into tiles of rows
    (:func:`cnnkit.ops._parallel.row_tiles`, the one tiling).
    """
    tile_bytes = _parallel.TILE_BYTES
    image_bytes = row_bytes * n_rows
    if image_bytes <= tile_bytes:
        step = max(1, min(n_batch, tile_bytes // max(1, image_bytes)))
        return [
            (slice(b0, min(b0 + step, n_batch)), 0, n_rows) for b0 in range(0, n_batch, step)
        ]
    rows = row_tiles(n_rows, row_bytes)
    return [(slice(b, b + 1), r0, r1) for b in range(n_batch) for r0, r1 in rows]


def _zero_outside(plane: np.ndarray, target: tuple[slice, slice]) -> None:
    """Zero the parts of ``plane[..., rows, cols]`` outside ``target`` (reads of padding)."""
    rows, cols = target
    height, width = plane.shape[-2:]
    if rows.start > 0:
        plane[..., : rows.start, :] = 0
    if rows.stop < height:
        plane[..., rows.stop :, :] = 0
    if cols.start > 0:
        plane[..., rows, : cols.start] = 0
    if cols.stop < width:
        plane[..., rows, cols.stop :] = 0


def _columns(x, kernel_size, stride, dilation, pads, groups, tile, out_width) -> np.ndarray:
    """The im2col matrix of one tile ``(batch, r0, r1)`` of the output of ``x``.

    Shape ``(groups, C//groups * kh * kw, nb * (r1 - r0) * Wo)``: for each group, one row per
    (input channel, tap) and one column per output position of output rows ``r0:r1`` of the
    images in the batch slice, so that one matrix product per group serves the whole tile.
    """
    n, c = x.shape[:2]
    cg = c // groups
    kh, kw = kernel_size
    batch, r0, r1 = tile
    nb = batch.stop - batch.start
    grouped = x.reshape(n, groups, cg, *x.shape[2:])
    columns = np.empty((groups, cg, kh, kw, nb, r1 - r0, out_width), dtype=x.dtype)
    windows = tap_windows(
        x.shape[2:], kernel_size, stride, dilation, pads, ((r0, r1), (0, out_width))
    )
    for (i, j), target, source in windows:
        plane = columns[:, :, i, j]
        if target is None:
            plane[...] = 0
            continue
        _zero_outside(plane, target)
        taken = grouped[(batch, slice(None), slice(None), *source)]
        plane[(Ellipsis, *target)] = taken.transpose(1, 2, 0, 3, 4)
    return columns.reshape(groups, cg * kh * kw, nb * (r1 - r0) * out_width)


def _channels_last_pays(
    channels: int, kernel_width: int, stride: tuple[int, int], dilation: tuple[int, int],
    groups: int, out_width: int,
) -> bool:
    """Whether channels-last columns copy runs at least as long as the tap-by-tap gather's.

    Both gathers cost about one step per contiguous run they copy. Tap by tap, a run is a row
    of outputs (``out_width`` elements at stride 1); channels-last, it is a window row's
    channels (``kw * C`` elements with dilation 1 and one group, else ``C // groups``). Layers
    deep in a network (many channels, small images) gather channels-last; images and the first
    layer (few channels, long rows) tap by tap.
    """
    channels_run = channels // groups
    if dilation[1] == 1 and groups == 1:
        channels_run *= kernel_width
    taps_run = out_width if stride[1] == 1 else 1
    return channels_run >= taps_run


def _padded_channels_last(x: np.ndarray, pads: Pads) -> np.ndarray:
    """``x`` (N, C, H, W) zero-padded by ``pads`` and laid out as (N, H', W', C), contiguous."""
    return np.ascontiguousarray(pad(x.transpose(0, 2, 3, 1), (*pads, (0, 0))))


def _columns_last(padded, kernel_size, stride, dilation, groups, tile, out_width) -> np.ndarray:
    """The im2col matrix of one tile ``(batch, r0, r1)``, channels-last.

    ``padded`` is the input from :func:`_padded_channels_last`. Shape ``(groups, nb * (r1 - r0)
    * Wo, kh * kw * C//groups)``: one row per output position, one column per (tap, input
    channel) of the group, the transpose of :func:`_columns`' layout.
    """
    batch, r0, r1 = tile
    windows = window_view(
        padded[batch, r0 * stride[0] :], kernel_size, stride, dilation, (r1 - r0, out_width),
        channels_last=True,
    )
    nb, rows, cols, kh, kw, c = windows.shape
    cg = c // groups
    columns = np.empty((groups, nb, rows, cols, kh, kw, cg), dtype=padded.dtype)
    np.copyto(columns, windows.reshape(nb, rows, cols, kh, kw, groups, cg).transpose(
        5, 0, 1, 2, 3, 4, 6))
    return columns.reshape(groups, nb * rows * cols, kh * kw * cg)


def _weight_matrix_last(weight: np.ndarray, groups: int) -> np.ndarray:
    """``weight`` (O, C//groups, kh, kw) as ``(groups, kh * kw * C//groups, O//groups)``, the
    right-hand factor of :func:`_columns_last`' columns."""
    o, cg, kh, kw = weight.shape
    grouped = weight.reshape(groups, o // groups, cg, kh, kw).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(grouped).reshape(groups, kh * kw * cg, o // groups)


def _correlate_channels_last(x, weight, stride, dilation, pads, groups, out_shape) -> np.ndarray:
    """The direct path with channels-last columns: tiles of images (or of rows of one image)
    times the weight matrix, each product put back in NCHW order."""
    n, c = x.shape[:2]
    o, _, kh, kw = weight.shape
    og = o // groups
    ho, wo = out_shape
    padded = _padded_channels_last(x, pads)
    weight_matrix = _weight_matrix_last(weight, groups)
    out = np.empty((n, o, ho, wo), dtype=x.dtype)
    out_grouped = out.reshape(n, groups, og, ho, wo)

    def run(tile: tuple[slice, int, int]) -> None:
        batch, r0, r1 = tile
        columns = _columns_last(padded, (kh, kw), stride, dilation, groups, tile, wo)
        product = _matmul(columns, weight_matrix)
        nb = batch.stop - batch.start
        out_grouped[batch, :, :, r0:r1] = product.reshape(groups, nb, r1 - r0, wo, og).transpose(
            1, 0, 4, 2, 3)

    work = direct_cost(weight[0].size, n * o * ho * wo)
    map_tiles(run, _tiles(n, ho, c * kh * kw * wo * x.itemsize), work)
    return out


@functools.lru_cache(maxsize=1024)
def _fast_length(n: int) -> int:
    """Smallest 5-smooth integer >= n (a length the FFT handles fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def _fft_lengths(in_shape, kernel_size, dilation, pads) -> tuple[int, ...]:
    """Transform lengths that keep the wrap-around of circular correlation out of the result."""
    return tuple(
        _fast_length(max(n + max(before, after), d * (k - 1) + 1))
        for n, k, d, (before, after) in zip(in_shape, kernel_size, dilation, pads)
    )


def direct_cost(taps: int, outputs: int) -> float:
    """Predicted cost of the direct path: one unit per tap and output element."""
    return float(taps) * outputs


def banded_cost(kernel_size: tuple[int, int], outputs: int) -> float:
    """Predicted cost of the banded path, in the units of :func:`direct_cost`.

    ``BAND_OVERHEAD``, plus per output: for a one-column kernel, ``BAND_TRANSPOSED_COST`` for
    each of ``BAND_ROWS + kh - 1`` multiply-adds; otherwise, for each of the ``kh`` kernel rows,
    ``BAND_COST`` for each of ``BAND_COLUMNS + kw - 1`` multiply-adds and ``BAND_REARRANGE`` for
    summing the products and putting them in place.
    """
    kh, kw = kernel_size
    if kw == 1:
        per_output = BAND_TRANSPOSED_COST * (BAND_ROWS + kh - 1)
    else:
        per_output = kh * (BAND_COST * (BAND_COLUMNS + kw - 1) + BAND_REARRANGE)
    return BAND_OVERHEAD + per_output * outputs


def fft_cost(
    in_shape: tuple[int, int],
    kernel_size: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    pads: Pads = ((0, 0), (0, 0)),
) -> float:
    """Predicted cost of the FFT path, in units of :func:`direct_cost`.

    About ``FFT_OVERHEAD + FFT_COST * S * log2(S)`` for transforms of ``S`` points, whatever
    the kernel's size.
    """
    points = math.prod(_fft_lengths(in_shape, kernel_size, dilation, pads))
    return FFT_OVERHEAD + FFT_COST * points * math.log2(max(points, 2))


def choose_method(
    in_shape: tuple[int, int],
    kernel_size: tuple[int, int],
    out_shape: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    pads: Pads = ((0, 0), (0, 0)),
    *,
    banded: bool = True,
    fft: bool = True,
) -> str:
    """The path the cost model predicts cheapest for one plane and one filter.

    ``banded`` and ``fft`` say whether those paths apply (the banded one needs stride and
    dilation 1, the FFT one stride 1). Returns
    ``'direct'``, ``'banded'`` or ``'fft'``. Which one wins where depends on the fitted
    constants; only a path that does not apply is never returned:

    >>> choose_method((64, 64), (5, 5), (60, 60), banded=False, fft=False)
    'direct'
    >>> choose_method((64, 64), (5, 5), (56, 56), (2, 2), fft=False)  # no band with a dilation
    'direct'
    """
    outputs = math.prod(out_shape)
    costs = {"direct": direct_cost(math.prod(kernel_size), outputs)}
    if banded and dilation == (1, 1) and math.prod(kernel_size) > 1:
        costs["banded"] = banded_cost(kernel_size, outputs)
    if fft:
        costs["fft"] = fft_cost(in_shape, kernel_size, dilation, pads)
    return min(costs, key=costs.get)


def _spectrum(planes: np.ndarray, lengths: tuple[int, int], work: float) -> np.ndarray:
    """``rfft2(planes, s=lengths)`` over the last two axes, as tiles of rows, then of columns."""
    count, height = planes.shape[:2]
    length_rows, length_columns = lengths
    half = length_columns // 2 + 1
    rows = np.empty((count, height, half), dtype=np.complex128)
    full = np.empty((count, length_rows, half), dtype=np.complex128)

    def transform_rows(tile: tuple[int, int]) -> None:
        r0, r1 = tile
        rows[:, r0:r1] = np.fft.rfft(planes[:, r0:r1], n=length_columns, axis=-1)

    def transform_columns(tile: tuple[int, int]) -> None:
        c0, c1 = tile
        full[..., c0:c1] = np.fft.fft(rows[..., c0:c1], n=length_rows, axis=-2)

    map_tiles(transform_rows, row_tiles(height, count * half * 16), work)
    map_tiles(transform_columns, row_tiles(half, count * length_rows * 16), work)
    return full


def _correlate_fft(x, weight, dilation, pads, out_shape) -> np.ndarray:
    """Depthwise correlation by FFT: channel ``c`` of the output reads channel ``c`` only.

    Circular correlation ``c[m] = sum_t x[(m + t) mod S] k[t]`` is the inverse transform of
    ``X * conj(K)``; output ``o`` is ``c[o - before]``. With ``S >= n + max(before, after)`` every
    read that wraps around lands on the zero extension, which is the zero padding. The 2-D
    transforms are 1-D transforms over tiles of rows and of columns, so that large images use
    the thread pool; only the output's rows are transformed back.
    """
    n, c = x.shape[:2]
    dh, dw = dilation
    kh, kw = weight.shape[2:]
    kernel = np.zeros((weight.shape[0], dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=x.dtype)
    kernel[:, ::dh, ::dw] = weight[:, 0]
    lengths = _fft_lengths(x.shape[2:], (kh, kw), dilation, pads)
    work = fft_cost(x.shape[2:], (kh, kw), dilation, pads) * n * c
    spectrum = _spectrum(x.reshape(n * c, *x.shape[2:]), lengths, work).reshape(
        n, c, lengths[0], -1
    )
    spectrum *= np.conj(_spectrum(kernel, lengths, 0))
    spectrum = spectrum.reshape(n * c, lengths[0], -1)
    rows = (np.arange(out_shape[0]) - pads[0][0]) % lengths[0]
    cols = (np.arange(out_shape[1]) - pads[1][0]) % lengths[1]
    wanted = np.empty((n * c, out_shape[0], spectrum.shape[2]), dtype=np.complex128)
    out = np.empty((n * c, *out_shape), dtype=x.dtype)

    def inverse_columns(tile: tuple[int, int]) -> None:
        c0, c1 = tile
        wanted[..., c0:c1] = np.fft.ifft(spectrum[..., c0:c1], axis=-2)[:, rows]

    def inverse_rows(tile: tuple[int, int]) -> None:
        r0, r1 = tile
        out[:, r0:r1] = np.fft.irfft(wanted[:, r0:r1], n=lengths[1], axis=-1)[..., cols]

    half = spectrum.shape[2]
    map_tiles(inverse_columns, row_tiles(half, n * c * lengths[0] * 16), work)
    map_tiles(inverse_rows, row_tiles(out_shape[0], n * c * half * 16), work)
    return out.reshape(n, c, *out_shape)


def _band_matrix(taps: np.ndarray, block: int) -> np.ndarray:
    """The ``(block + k - 1, block)`` matrix whose column ``j`` holds the ``k`` taps from row ``j``.

    A segment of ``block + k - 1`` inputs times it is ``block`` outputs of their 1-D correlation.

    >>> _band_matrix(np.array([1.0, 2.0]), 3)
    array([[1., 0., 0.],
           [2., 1., 0.],
           [0., 2., 1.],
           [0., 0., 2.]])
    """
    band = np.zeros((block + taps.size - 1, block), dtype=taps.dtype)
    columns = np.arange(block)
    band[np.arange(taps.size)[:, np.newaxis] + columns, columns] = taps[:, np.newaxis]
    return band


def _blocks(length: int, block: int) -> list[tuple[int, int]]:
    """``(start, stop)`` blocks of ``block`` elements covering ``length``; the last may be short."""
    return [(start, min(start + block, length)) for start in range(0, length, block)]


def _correlate_banded(padded: np.ndarray, kernel: np.ndarray, work: float) -> np.ndarray:
    """'valid' correlation of one explicitly padded plane with one kernel, by band matrices.

    Column kernel: each block of ``BAND_ROWS`` output rows is the transposed band matrix times
    the block's input rows, written in place; tiles are runs of blocks. Other kernels: for a tile
    of output rows and each kernel row, ``segments[b, r]`` is the input of output block ``b`` of
    row ``r`` (a view), one matrix product by that kernel row's band matrix gives every block, the
    kernel rows' products are summed, and one copy puts them in place. A last, narrower block
    has its own band matrices.
    """
    kh, kw = kernel.shape
    height, width = padded.shape[0] - kh + 1, padded.shape[1] - kw + 1
    out = np.empty((height, width), dtype=padded.dtype)
    if kw == 1:
        blocks = _blocks(height, BAND_ROWS)
        bands = {
            r1 - r0: np.ascontiguousarray(_band_matrix(kernel[:, 0], r1 - r0).T)
            for r0, r1 in blocks[-2:]
        }
        per_tile = max(1, _parallel.TILE_BYTES // (BAND_ROWS * padded.shape[1] * padded.itemsize))

        def run_blocks(tile: list[tuple[int, int]]) -> None:
            for r0, r1 in tile:
                np.matmul(bands[r1 - r0], padded[r0 : r1 + kh - 1], out=out[r0:r1])

        tiles = [blocks[i : i + per_tile] for i in range(0, len(blocks), per_tile)]
        map_tiles(run_blocks, tiles, work)
        return out
    full = width // BAND_COLUMNS * BAND_COLUMNS
    parts = [(0, full, BAND_COLUMNS)] if full else []
    if full < width:
        parts.append((full, width, width - full))
    bands = {size: [_band_matrix(taps, size) for taps in kernel] for _, _, size in parts}

    def run_rows(tile: tuple[int, int]) -> None:
        r0, r1 = tile
        for c0, c1, size in parts:
            # Kernel row i reads input rows r0 + i : r1 + i; its products are summed.
            total = None
            for i, band in enumerate(bands[size]):
                span = padded[r0 + i : r1 + i, c0 : c1 + kw - 1]
                segments = np.lib.stride_tricks.sliding_window_view(span, size + kw - 1, axis=1)
                product = np.matmul(segments[:, ::size].transpose(1, 0, 2), band)
                total = product if total is None else np.add(total, product, out=total)
            out[r0:r1, c0:c1] = total.transpose(1, 0, 2).reshape(r1 - r0, c1 - c0)

    map_tiles(run_rows, row_tiles(height, 2 * padded.shape[1] * padded.itemsize), work)
    return out


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Per-group matrix product of ``(G, m, k)`` and ``(G, k, n)`` arrays.

    With one group the product is taken on 2-D views: numpy hands those to BLAS directly, while
    a stack of one matrix goes through its slower batched loop (twice as slow for the
    matrix-vector products of one-channel images).
    """
    if a.shape[0] == 1:
        result = np.matmul(a[0], b[0], out=None if out is None else out[0])
        return result[np.newaxis]
    return np.matmul(a, b, out=out)


def correlate(
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    pads: Pads,
    groups: int,
    out_shape: tuple[int, int],
    *,
    method: str = "auto",
) -> np.ndarray:
    """Cross-correlate an NCHW batch, zero-padded by ``pads``, with a weight: ``(N, O, Ho, Wo)``.

    ``method`` is ``'auto'`` (the path the cost model predicts cheapest), ``'direct'``,
    ``'banded'`` or ``'fft'`` (the last two only where they apply).
    """
    n, c = x.shape[:2]
    o, _, kh, kw = weight.shape
    fft_applies = weight.shape[1] == 1 and groups == c == o and stride == (1, 1)
    if method == "fft" and not fft_applies:
        raise InvalidArgument(
            "method='fft' needs stride 1 and one input channel per output channel"
        )
    banded_applies = n == c == o == 1 and stride == dilation == (1, 1)
    if method == "banded" and not banded_applies:
        raise InvalidArgument(
            "method='banded' needs one plane, one filter, stride 1 and dilation 1"
        )
    if method == "auto" and (fft_applies or banded_applies):
        method = choose_method(
            x.shape[2:], (kh, kw), out_shape, dilation, pads, banded=banded_applies,
            fft=fft_applies,
        )
        # Both other paths would spread a NaN or inf beyond its window (over a whole FFT, or
        # over a band's block through a multiplication by zero).
        if method != "direct" and not (np.isfinite(x).all() and np.isfinite(weight).all()):
            method = "direct"
    if method == "fft":
        return _correlate_fft(x, weight, dilation, pads, out_shape)
    if method == "banded":
        work = direct_cost(kh * kw, math.prod(out_shape))
        return _correlate_banded(pad(x[0, 0], pads), weight[0, 0], work)[np.newaxis, np.newaxis]

    ho, wo = out_shape
    og = o // groups
    weight_matrix = weight.reshape(groups, og, -1)
    work = direct_cost(weight[0].size, n * o * ho * wo)
    if n * c == 1 and kh * kw * ho * wo * x.itemsize <= _parallel.TILE_BYTES:
        # One small plane: copying all its windows at once costs fewer calls than tap by tap.
        windows = window_view(pad(x, pads), (kh, kw), stride, dilation, out_shape)
        columns = windows.reshape(1, kh * kw, ho * wo)
        return map_tiles(lambda _: _matmul(weight_matrix, columns), [None], work)[0].reshape(
            1, o, ho, wo
        )
    if _channels_last_pays(c, kw, stride, dilation, groups, wo):
        return _correlate_channels_last(x, weight, stride, dilation, pads, groups, out_shape)
    out = np.empty((n, o, ho, wo), dtype=x.dtype)

    def run(tile: tuple[slice, int, int]) -> None:
        batch, r0, r1 = tile
        nb = batch.stop - batch.start
        columns = _columns(x, (kh, kw), stride, dilation, pads, groups, tile, wo)
        if nb == 1 and (r1 - r0 == ho or o == 1):
            # The tile's outputs are contiguous in ``out``: let BLAS write them in place.
            target = out[batch, :, r0:r1].reshape(groups, og, (r1 - r0) * wo)
            _matmul(weight_matrix, columns, out=target)
        else:
            product = _matmul(weight_matrix, columns).reshape(o, nb, r1 - r0, wo)
            out[batch, :, r0:r1] = product.transpose(1, 0, 2, 3)

    map_tiles(run, _tiles(n, ho, c * kh * kw * wo * x.itemsize), work)
    return out


def correlate_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    pads: Pads,
    groups: int,
    *,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Gradients of :func:`correlate` with respect to ``x`` (None when ``input_grad`` is false:
    its work is skipped) and ``weight``.

    The weight gradient is the grad-output matrix times the columns of ``x``
    (:func:`_weight_gradient`). At stride 1 the input gradient is itself a correlation: the
    grad-output, padded by ``dilation * (k - 1)`` less the forward padding, correlated with the
    weight flipped in both spatial axes and with its input and output channels swapped, so it
    runs on the forward's channels-last path. Otherwise (a stride, a forward padding wider than
    the kernel, or few input channels, where that correlation would have few output channels)
    the transposed weight matrix times the grad-output gives columns that are scattered back
    tap by tap (:func:`_input_gradient_col2im`).
    """
    o, cg, kh, kw = weight.shape
    extents = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    grad_pads = tuple((extent - before, extent - after) for extent, (before, after) in zip(
        extents, pads))
    grad_weight = _weight_gradient(grad_output, x, weight.shape, stride, dilation, pads, groups)
    if not input_grad:
        return None, grad_weight
    as_correlation = (
        stride == (1, 1)
        and min(min(pair) for pair in grad_pads) >= 0
        and _channels_last_pays(x.shape[1], kw, stride, dilation, groups, grad_output.shape[3])
    )
    if not as_correlation:
        grad_x = _input_gradient_col2im(grad_output, x, weight, stride, dilation, pads, groups)
        return grad_x, grad_weight
    flipped = weight.reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)
    flipped = np.ascontiguousarray(flipped[..., ::-1, ::-1]).reshape(groups * cg, o // groups,
                                                                     kh, kw)
    grad_x = correlate(grad_output, flipped, (1, 1), dilation, grad_pads, groups, x.shape[2:],
                       method="direct")
    return grad_x, grad_weight


def _weight_gradient(grad_output, x, weight_shape, stride, dilation, pads, groups) -> np.ndarray:
    """The weight gradient: per tile, the grad-output times the tile's columns of ``x``.

    The tiles' sums are added in tile order, so the result does not depend on the thread count.
    """
    n, c = x.shape[:2]
    o, cg, kh, kw = weight_shape
    og = o // groups
    ho, wo = grad_output.shape[2:]
    channels_last = _channels_last_pays(c, kw, stride, dilation, groups, wo)
    if channels_last:
        padded = _padded_channels_last(x, pads)
        grad_last = np.ascontiguousarray(grad_output.transpose(0, 2, 3, 1))

    def run(tile: tuple[slice, int, int]) -> np.ndarray:
        batch, r0, r1 = tile
        nb = batch.stop - batch.start
        if channels_last:
            columns = _columns_last(padded, (kh, kw), stride, dilation, groups, tile, wo)
            grad_tile = grad_last[batch, r0:r1].reshape(-1, groups, og).transpose(1, 2, 0)
            return _matmul(grad_tile, columns)
        columns = _columns(x, (kh, kw), stride, dilation, pads, groups, tile, wo)
        grad_tile = grad_output[batch, :, r0:r1].transpose(1, 0, 2, 3)
        grad_tile = grad_tile.reshape(groups, og, nb * (r1 - r0) * wo)
        return _matmul(grad_tile, columns.transpose(0, 2, 1))

    work = direct_cost(cg * kh * kw, n * o * ho * wo)
    tiles = _tiles(n, ho, c * kh * kw * wo * x.itemsize)
    grad_weight = functools.reduce(np.add, map_tiles(run, tiles, work))
    if channels_last:
        # (groups, og, kh * kw * cg) in (kh, kw, cg) order, back to (O, C//groups, kh, kw)
        return grad_weight.reshape(o, kh, kw, cg).transpose(0, 3, 1, 2).copy()
    return grad_weight.reshape(weight_shape)


def _input_gradient_col2im(grad_output, x, weight, stride, dilation, pads, groups) -> np.ndarray:
    """The input gradient by scattering columns ("col2im"), the adjoint of gathering them.

    The transposed weight matrix times the grad-output gives each tile's columns, which are
    added back tap by tap; reads of the zero padding have no input to send their gradient to,
    and are skipped. Tiles of whole images write separate parts of the input gradient and run
    in the thread pool; tiles of rows of one image overlap in the input and run one after the
    other.
    """
    n = x.shape[0]
    o, cg, kh, kw = weight.shape
    og = o // groups
    ho, wo = grad_output.shape[2:]
    weight_matrix_t = weight.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1)
    grad_x = np.zeros_like(x)
    grad_grouped = grad_x.reshape(n, groups, cg, *x.shape[2:])

    def run(tile: tuple[slice, int, int]) -> None:
        batch, r0, r1 = tile
        nb = batch.stop - batch.start
        grad_tile = grad_output[batch, :, r0:r1].transpose(1, 0, 2, 3)
        grad_tile = grad_tile.reshape(groups, og, nb * (r1 - r0) * wo)
        grad_columns = np.matmul(weight_matrix_t, grad_tile).reshape(
            groups, cg, kh, kw, nb, r1 - r0, wo
        )
        windows = tap_windows(
            x.shape[2:], (kh, kw), stride, dilation, pads, ((r0, r1), (0, wo))
        )
        target_grad = grad_grouped[batch]
        for (i, j), target, source in windows:
            if target is not None:
                taken = grad_columns[(slice(None), slice(None), i, j, slice(None), *target)]
                target_grad[(slice(None), slice(None), slice(None), *source)] += (
                    taken.transpose(2, 0, 1, 3, 4)
                )

    tiles = _tiles(n, ho, x.shape[1] * kh * kw * wo * x.itemsize)
    whole_images = all(r0 == 0 and r1 == ho for _, r0, r1 in tiles)
    work = 2 * direct_cost(weight[0].size, n * o * ho * wo) if whole_images else 0
    map_tiles(run, tiles, work)
    return grad_x

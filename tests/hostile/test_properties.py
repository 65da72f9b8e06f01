"""Random architectures and random bytes: every reader gives a correct result or a cnnkit error.

Anything else (a KeyError, an IndexError, numpy's own ValueError, a MemoryError) is a bug.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.arch import Architecture, load_architecture, trace
from cnnkit.data import read_idx, write_idx
from cnnkit.engines.checkpoint import load_checkpoint
from cnnkit.errors import CnnkitError
from cnnkit.filters import parse_kernel
from cnnkit.imageio import read_image

_LAYER_TYPES = ["conv2d", "max_pool2d", "avg_pool2d", "relu", "tanh", "sigmoid", "flatten",
                "linear", "dropout", "batch_norm2d", "global_avg_pool2d", "softmax", None, 3]
_VALUES = st.one_of(
    st.integers(-3, 40), st.just(10**12), st.floats(allow_nan=True), st.booleans(),
    st.none(), st.text(max_size=5), st.just("num_classes"), st.lists(st.integers(0, 5),
                                                                      max_size=3),
)
_KEYS = ["out_channels", "kernel_size", "stride", "padding", "dilation", "bias", "out_features",
         "p", "groups", "padding_mode", "ceil_mode", "count_include_pad", "eps", "momentum",
         "affine", "bogus"]

layer_specs = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(_LAYER_TYPES)},
                          optional={key: _VALUES for key in _KEYS}),
    st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2),
)


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="cnnkit-property-"))


@settings(max_examples=300)
@given(layers=st.lists(layer_specs, max_size=6),
       shape=st.tuples(st.integers(-1, 4), st.integers(-1, 40), st.integers(-1, 40)),
       num_classes=st.integers(-1, 12))
def test_random_architecture_specs(layers, shape, num_classes):
    """A random spec is either traced to positive shapes or refused with a cnnkit error."""
    try:
        rows = trace(Architecture("random", layers), shape, num_classes)
    except CnnkitError:
        return
    assert all(size > 0 for row in rows for size in row.output_shape)
    assert all(row.parameters >= 0 for row in rows)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_random_bytes_as_a_spec_file(content):
    """Random bytes in a spec file: a cnnkit error, or a valid architecture."""
    path = _scratch() / "spec.json"
    path.write_bytes(content)
    try:
        load_architecture(str(path))
    except CnnkitError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_as_idx(content, compress):
    """Random bytes (plain or gzip-compressed) read as IDX: an array or a cnnkit error."""
    path = _scratch() / "x.idx"
    path.write_bytes(gzip.compress(content) if compress else content)
    try:
        array = read_idx(path)
    except CnnkitError:
        return
    assert array.nbytes <= len(content)


@settings(max_examples=200)
@given(shape=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=4),
       code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
       payload=st.binary(max_size=64))
def test_random_idx_headers(shape, code, payload):
    """Any declared shape, however large, is read exactly or refused without allocating it."""
    path = _scratch() / "x.idx"
    path.write_bytes(bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
                     + payload)
    try:
        array = read_idx(path)
    except CnnkitError:
        return
    assert array.shape == tuple(shape)


@settings(max_examples=100)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=30))
def test_idx_round_trip(values):
    """What write_idx writes, read_idx reads back exactly (the correct-result side)."""
    path = _scratch() / "x.idx.gz"
    array = np.asarray(values, dtype=np.uint8)
    write_idx(path, array, compress=True)
    np.testing.assert_array_equal(read_idx(path), array)


_PNG_HEADER = b"\x89PNG\r\n\x1a\n"


@settings(max_examples=300)
@given(st.binary(max_size=400), st.sampled_from([b"", _PNG_HEADER, b"\xff\xd8\xff", b"GIF89a",
                                                  b"BM", b"II*\x00", b"RIFF"]))
def test_random_bytes_as_an_image(content, magic):
    """Random bytes behind an image file's magic number: pixels in [0, 1] or a cnnkit error."""
    path = _scratch() / "x.png"
    path.write_bytes(magic + content)
    try:
        image = read_image(path)
    except CnnkitError:
        return
    assert image.size > 0 and 0.0 <= image.min() and image.max() <= 1.0


@settings(max_examples=150)
@given(st.binary(max_size=400),
       st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", struct.pack("<Q", 60) + b'{"a":']),
       st.sampled_from(["checkpoint.safetensors", "checkpoint.pt"]))
def test_random_bytes_as_a_checkpoint(content, magic, name):
    """Random bytes (bare, zip-like, pickle-like or behind a safetensors header length) as a
    checkpoint of either format: always a cnnkit error."""
    folder = _scratch()
    (folder / name).write_bytes(magic + content)
    try:
        load_checkpoint(folder)
    except CnnkitError:
        return
    raise AssertionError("random bytes were accepted as a checkpoint")


@settings(max_examples=300)
@given(st.one_of(
    st.text(alphabet="[]0123456789.,-+e :=abcdefghilmnorstuwxyz;\n", max_size=40),
    st.sampled_from(["gaussian:sigma=1e9", "box:size=99999999", "sobel:axis=7",
                     "gaussian:sigma=nan", "[[1,2],[3]]", "[[]]", "[[1e400]]"]),
))
def test_random_kernel_text(text):
    """Random kernel text: a finite 2-D kernel or a cnnkit error, quickly and without a huge
    allocation."""
    try:
        kernel = parse_kernel(text)
    except CnnkitError:
        return
    assert kernel.ndim == 2 and kernel.size > 0 and np.all(np.isfinite(kernel))

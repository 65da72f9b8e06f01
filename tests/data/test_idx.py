"""The IDX reader against bytes built by hand, and its refusals."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.data.idx import read_idx, write_idx


def _hand_made(array: np.ndarray, code: int, big_endian: str) -> bytes:
    """The IDX bytes of ``array``, assembled with struct independently of the writer."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(big_endian).tobytes()


def test_reads_a_hand_made_mnist_style_file(tmp_path):
    """A uint8 image file made byte by byte reads back to the same array and shape."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(_hand_made(images, 0x08, ">u1"))
    np.testing.assert_array_equal(read_idx(path), images)


@settings(max_examples=20, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    dtype=st.sampled_from([(">u1", 0x08), (">i1", 0x09), (">i2", 0x0B), (">i4", 0x0C),
                           (">f4", 0x0D), (">f8", 0x0E)]),
    compress=st.booleans(),
)
def test_every_type_code_reads_back(tmp_path_factory, shape, dtype, compress):
    """Each IDX type code, plain or gzip, reads back to the values and native byte order."""
    big, code = dtype
    rng = np.random.default_rng(len(shape))
    array = (rng.standard_normal(shape) * 100).astype(np.dtype(big).newbyteorder("="))
    raw = _hand_made(array, code, big)
    path = tmp_path_factory.mktemp("idx") / "x"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    result = read_idx(path)
    np.testing.assert_array_equal(result, array)
    assert result.dtype.isnative


def test_writer_matches_hand_made_bytes(tmp_path):
    """write_idx produces exactly the bytes assembled by hand."""
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    write_idx(tmp_path / "a", array)
    assert (tmp_path / "a").read_bytes() == _hand_made(array, 0x0C, ">i4")


def test_wrong_magic_is_refused(tmp_path):
    """A file whose first bytes are not an IDX magic number is refused, naming the bytes."""
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="wrong magic number 01020801"):
        read_idx(path)


def test_unknown_type_code_is_refused(tmp_path):
    """An unknown type code counts as a wrong magic number."""
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)


def test_truncated_data_is_refused(tmp_path):
    """A file with fewer data bytes than its header promises is refused as truncated."""
    array = np.zeros((10, 4, 4), dtype=np.uint8)
    path = tmp_path / "short"
    path.write_bytes(_hand_made(array, 0x08, ">u1")[:-5])
    with pytest.raises(ValueError, match="truncated: header shape \\(10, 4, 4\\) needs 160"):
        read_idx(path)


def test_truncated_header_is_refused(tmp_path):
    """A file cut inside its header is refused as truncated."""
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_extra_bytes_are_refused(tmp_path):
    """A file longer than its header says is refused."""
    array = np.zeros((2, 2), dtype=np.uint8)
    path = tmp_path / "long"
    path.write_bytes(_hand_made(array, 0x08, ">u1") + b"\x00")
    with pytest.raises(ValueError, match="longer than its header says"):
        read_idx(path)


def test_truncated_gzip_is_refused(tmp_path):
    """A gzip file cut short (an interrupted copy) is refused with the file named."""
    array = np.arange(1000, dtype=np.uint8)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_hand_made(array, 0x08, ">u1"))[:-20])
    with pytest.raises(ValueError, match="damaged or truncated gzip"):
        read_idx(path)


def test_empty_file_is_refused(tmp_path):
    """An empty file is not an IDX file."""
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_idx(path)


def test_writer_refuses_unsupported_dtype(tmp_path):
    """Arrays whose dtype has no IDX code (uint16, complex) are refused."""
    with pytest.raises(TypeError, match="no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))

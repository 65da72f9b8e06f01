"""Memory of preparing a picture for a model follows the model's input, not the picture.

A picture goes through ``load_image`` as ``predict``, ``explain`` and ``POST /api/predict``
prepare it (pad to the input's aspect ratio, resize). Its peak memory is measured in a worker
process: the resident set's high-water mark, reset before each picture (Linux
``/proc/self/clear_refs``), with every allocation above 64 KiB made as a fresh mapping (glibc's
``mallopt``), so that numpy's and Pillow's buffers are both counted and none hides in memory
freed by an earlier picture.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                reason="measures memory through Linux's /proc")

# Reads one request per line, {"path", "shape"}, and answers the peak bytes above the resident
# set before the picture, or the cnnkit error that refused it.
_WORKER = r"""
import ctypes, json, resource, sys
from cnnkit.data.imagefolder import load_image
from cnnkit.errors import CnnkitError

libc = ctypes.CDLL("libc.so.6")
libc.mallopt(-3, 64 * 1024)   # M_MMAP_THRESHOLD: large blocks are mappings, freed at once
libc.mallopt(-1, 64 * 1024)   # M_TRIM_THRESHOLD: give freed heap back to the system
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

def kib(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key))

for line in sys.stdin:
    request = json.loads(line)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = kib("VmRSS:")
    try:
        load_image(request["path"], request["shape"], fit="pad")
        answer = {"peak": (kib("VmHWM:") - before) * 1024}
    except CnnkitError as exc:
        answer = {"refused": type(exc).__name__, "message": str(exc)}
    print(json.dumps(answer), flush=True)
"""

#: Bytes a picture may take beyond its decoded pixels, per element of the model's input:
#: the reduced picture padded to the input's aspect ratio stays within a few times the input
#: a side (``REDUCING_GAP``), in a few floating-point copies (about 1,000 measured at most).
BYTES_PER_INPUT_ELEMENT = 4096
#: The interpreter's own noise in the resident set (first use of a code path, small objects).
NOISE = 2 << 20


class _Worker:
    def __init__(self) -> None:
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=environment)

    def measure(self, path: Path, shape: tuple[int, int, int]) -> dict:
        self.process.stdin.write(json.dumps({"path": str(path), "shape": shape}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the measuring process ended"
        return json.loads(line)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    from PIL import Image

    measuring = _Worker()
    warm = tmp_path_factory.mktemp("warm") / "warm.png"
    Image.new("RGB", (300, 200)).save(warm)
    for shape in ((1, 28, 28), (3, 28, 28)):  # import and first use of every code path
        measuring.measure(warm, shape)
    yield measuring
    measuring.process.stdin.close()
    measuring.process.wait(timeout=30)
    measuring.process.stdout.close()


def _png_declaring(path: Path, rows: int, columns: int) -> None:
    """A tiny PNG file whose header declares ``columns x rows`` pixels (and holds almost none)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", columns, rows, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


_SIDES = st.integers(1, 60000)
pictures = st.one_of(
    st.tuples(st.just(1), _SIDES),                                  # 1xN strips
    st.tuples(_SIDES, st.just(1)),                                  # Nx1 strips
    st.tuples(st.integers(1, 4), st.integers(1, 4)),                # tiny files
    st.tuples(st.integers(1, 1500), st.integers(1, 1500)),          # ordinary pictures
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(picture=pictures, colour=st.sampled_from(["L", "RGB", "P", "I;16"]),
       input_shape=st.sampled_from([(1, 28, 28), (3, 32, 32), (1, 64, 20)]))
def test_peak_memory_follows_the_models_input(worker, tmp_path, picture, colour, input_shape):
    """Preparing any picture (1xN, Nx1, tiny, ordinary; gray, colour, palette, 16-bit) takes
    memory for its decoded pixels and a bounded multiple of the model's input, nothing more:
    a 1x20000 strip is not padded to a 20000x20000 square."""
    from PIL import Image

    rows, columns = picture
    path = tmp_path / f"picture-{rows}x{columns}-{colour.replace(';', '')}.png"
    Image.new(colour, (columns, rows)).save(path)
    answer = worker.measure(path, input_shape)
    assert "peak" in answer, answer
    inputs = input_shape[0] * input_shape[1] * input_shape[2]
    decoded = 2 * 4 * rows * columns  # Pillow's pixels (at most four bytes each) and one copy
    assert answer["peak"] <= decoded + BYTES_PER_INPUT_ELEMENT * inputs + NOISE, (
        picture, colour, input_shape, answer["peak"])


@pytest.mark.parametrize(("rows", "columns"), [(20000, 20000), (1, 2**31 - 1), (2**31 - 1, 1),
                                               (100000, 100000)])
def test_a_huge_declared_size_is_refused_before_decoding(worker, tmp_path, rows, columns):
    """A 100-byte file declaring billions of pixels is refused from its header, with the
    number, and allocates nothing of that size."""
    path = tmp_path / "declared.png"
    _png_declaring(path, rows, columns)
    answer = worker.measure(path, (1, 28, 28))
    assert answer.get("refused") == "TooLarge", answer
    assert str(rows * columns) in answer["message"]


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
@pytest.mark.parametrize("fit", ["stretch", "pad"])
def test_a_reduced_picture_is_turned_as_its_exif_says(tmp_path, orientation, fit):
    """A picture stored turned, with the EXIF orientation that turns it back, reads exactly as
    the upright picture when it is reduced first (the whole factors swap with the axes)."""
    import numpy as np
    from PIL import Image

    from cnnkit.imageio import read_image

    upright = np.random.default_rng(0).integers(0, 256, (600, 300, 3), dtype=np.uint8)
    stored = {3: np.rot90(upright, 2), 5: upright.transpose(1, 0, 2),
              6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(upright).save(tmp_path / "upright.png")
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "turned.png", exif=exif)
    expected = read_image(tmp_path / "upright.png", size=(20, 20), fit=fit)
    turned, header = read_image(tmp_path / "turned.png", size=(20, 20), fit=fit,
                                with_header=True)
    np.testing.assert_array_equal(turned, expected)
    assert (header.rows, header.columns) == (600, 300)


def test_reducing_first_stays_within_a_few_grey_levels_of_a_direct_resize(tmp_path):
    """A 900x600 picture read at 28x28 (box-averaged by a whole factor, then resized) differs
    from Pillow's direct antialiased resize of the whole picture by a few grey levels."""
    import numpy as np
    from PIL import Image

    from cnnkit.imageio import read_image

    rows, columns = np.mgrid[0:900, 0:600]
    noise = np.random.default_rng(0).normal(0, 5, (900, 600))
    picture = (127 + 100 * np.sin(rows / 40) * np.cos(columns / 30) + noise).clip(0, 255)
    Image.fromarray(picture.astype(np.uint8)).save(tmp_path / "waves.png")
    direct = np.asarray(Image.fromarray(picture.astype(np.uint8).astype(np.float32) / 255)
                        .resize((28, 28), Image.Resampling.BILINEAR))
    difference = np.abs(read_image(tmp_path / "waves.png", size=(28, 28)) - direct) * 255
    assert difference.max() < 8 and difference.mean() < 2

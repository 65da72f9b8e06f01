"""Warps (affine maps, elastic distortions) and random erasing of training batches: against
scipy's interpolation and Gaussian filter, by hand on known maps, the same batches on both
engines, the draws' seeding, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter, gaussian_filter1d, map_coordinates

from cnnkit.cli import main
from cnnkit.engines.augment import (
    ERASE_AREA,
    Augmentation,
    Warp,
    apply_numpy,
    bilinear_taps,
    crop_indices,
    gaussian_matrix,
    sample_points,
    warp_numpy,
)
from cnnkit.engines.loaders import Batch
from cnnkit.engines.numpy_engine import NumpyBatch, NumpyEngine
from cnnkit.engines.torch_engine import TorchEngine
from cnnkit.engines.training import TrainConfig
from cnnkit.errors import InvalidArgument

WARPS = ["affine", "affine-flip", "elastic", "affine-elastic"]


def _map(height, width, count=1, *, angle=0.0, zoom=1.0, shear=0.0, shift=(0.0, 0.0),
         flip=False):
    """Sampling points of one map, the same for ``count`` images."""
    return sample_points(height, width, angles=np.full(count, angle),
                         zooms=np.full(count, zoom), shears=np.full(count, shear),
                         shifts=np.tile(np.asarray(shift, float), (count, 1)),
                         flips=np.full(count, flip))


def _warped(images, points, fill=0.0):
    rows, columns = points
    return warp_numpy(images, bilinear_taps(rows, columns, *images.shape[2:]), fill=fill)


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 3), channels=st.integers(1, 3), height=st.integers(1, 9),
       width=st.integers(1, 9), seed=st.integers(0, 2**31), fill=st.floats(-2, 2))
def test_bilinear_reading_equals_scipy_map_coordinates(count, channels, height, width, seed,
                                                       fill):
    """Random points, inside and outside the image: scipy's order-1 interpolation with the
    outside held at the fill (mode 'grid-constant'), within float32 rounding."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((count, channels, height, width)).astype(np.float32)
    rows = rng.uniform(-2.5, height + 1.5, (count, height, width))
    columns = rng.uniform(-2.5, width + 1.5, (count, height, width))
    got = _warped(images, (rows, columns), np.float32(fill))
    for n in range(count):
        for c in range(channels):
            expected = map_coordinates(images[n, c].astype(np.float64), [rows[n], columns[n]],
                                       order=1, mode="grid-constant", cval=np.float32(fill))
            np.testing.assert_allclose(got[n, c], expected, atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize(("size", "sigma"), [(28, 4.0), (9, 0.5), (32, 6.0), (5, 3.0)])
def test_gaussian_matrix_is_scipy_gaussian_filter(size, sigma):
    """G @ v is gaussian_filter1d(mode='constant'); G F G^T is the 2-D gaussian_filter."""
    rng = np.random.default_rng(size)
    vector, field = rng.standard_normal(size), rng.standard_normal((size, size))
    blur = gaussian_matrix(size, sigma)
    np.testing.assert_allclose(blur @ vector, gaussian_filter1d(vector, sigma, mode="constant"),
                               atol=1e-12)
    np.testing.assert_allclose(blur @ field @ blur.T,
                               gaussian_filter(field, sigma, mode="constant"), atol=1e-12)


def test_known_maps_by_hand():
    """No move is the identity; a quarter turn is np.rot90; a flip mirrors; a whole-pixel
    translation is the shift gather; a zoom by 2 reads every pixel at half its distance from
    the centre."""
    image = np.arange(25.0, dtype=np.float32).reshape(1, 1, 5, 5)
    np.testing.assert_array_equal(_warped(image, _map(5, 5)), image)
    np.testing.assert_allclose(_warped(image, _map(5, 5, angle=np.pi / 2))[0, 0],
                               np.rot90(image[0, 0]), atol=1e-5)
    np.testing.assert_array_equal(_warped(image, _map(5, 5, flip=True))[0, 0],
                                  image[0, 0, :, ::-1])
    rows, columns = crop_indices([1], [-2], [False], 5, 5, padding=2)
    np.testing.assert_array_equal(_warped(image, _map(5, 5, shift=(1.0, -2.0)), fill=-1.0),
                                  apply_numpy(image, rows, columns, padding=2, fill=-1.0))
    zoomed = _warped(image, _map(5, 5, zoom=2.0))[0, 0]
    # The corner (-2, -2) from the centre reads (-1, -1): pixel (1, 1); (-2, -1) reads between.
    assert zoomed[2, 2] == 12.0 and zoomed[0, 0] == 6.0 and zoomed[0, 1] == 6.5


def test_shear_moves_rows_in_proportion_to_their_distance_from_the_centre():
    """A shear of 45°: the row k below the centre is read k columns to the right."""
    rows, columns = _map(5, 5, shear=np.pi / 4)
    np.testing.assert_allclose(rows[0], np.repeat(np.arange(5.0)[:, None], 5, 1), atol=1e-12)
    expected = np.repeat(np.arange(-2.0, 3.0)[:, None], 5, 1)
    np.testing.assert_allclose(columns[0] - np.arange(5.0), expected, atol=1e-12)


@pytest.mark.parametrize("policy", [*WARPS, "shift-flip", "none"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_both_engines_augment_a_batch_identically(policy, channels_last):
    """Same draws, same batch: the torch engine's device gather and sums equal the NumPy
    engine's bit for bit, warps and erasing included."""
    images = np.random.default_rng(0).standard_normal((6, 3, 7, 5)).astype(np.float32)
    augmentation = Augmentation(policy, seed=4, fill=-0.4, erase=0.5)
    config = TrainConfig(channels_last=channels_last)
    by_torch = TorchEngine(config).augment(
        Batch(torch.from_numpy(images), torch.zeros(6, dtype=torch.int64), 6),
        augmentation, 2, 7)
    by_numpy = NumpyEngine(TrainConfig(engine="numpy")).augment(
        NumpyBatch(images, np.zeros(6, np.int64), 6), augmentation, 2, 7)
    np.testing.assert_array_equal(by_torch.images.numpy(), by_numpy.images)
    assert not np.array_equal(by_numpy.images, images)
    assert by_torch.images.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_warp_draws_depend_on_seed_epoch_and_step_alone():
    """Equal for equal (seed, epoch, step), different otherwise; 'affine-elastic' without
    strength is 'affine'; 'elastic' alone moves no pixel on average; each process gets its
    rows of the global draw."""
    one = Augmentation("affine-elastic", seed=1, fill=0.0)
    np.testing.assert_array_equal(one.points(3, 5, 8, 28, 28)[0],
                                  Augmentation("affine-elastic", 1, 0.0).points(3, 5, 8, 28, 28)[0])
    assert not np.array_equal(one.points(3, 5, 8, 28, 28)[0], one.points(3, 6, 8, 28, 28)[0])
    calm = Augmentation("affine-elastic", 1, 0.0, warp=Warp(elastic_alpha=0.0))
    np.testing.assert_array_equal(calm.points(0, 0, 8, 28, 28)[1],
                                  Augmentation("affine", 1, 0.0).points(0, 0, 8, 28, 28)[1])
    rows, _ = Augmentation("elastic", 1, 0.0).points(0, 0, 64, 28, 28)
    moved = rows - np.arange(28.0)[None, :, None]
    assert 0.3 < np.abs(moved).mean() < 3.0 and abs(moved.mean()) < 0.2
    whole = one.points(0, 1, 10, 12, 12)[1]
    for rank in (0, 1):
        shard = Augmentation("affine-elastic", 1, 0.0, rank=rank, world=2)
        np.testing.assert_array_equal(shard.points(0, 1, 10, 12, 12)[1], whole[rank::2])


def test_affine_draws_stay_within_their_bounds():
    """With a rotation alone of at most 10°, a pixel at distance r from the centre moves at
    most 2 r sin(5°); with a translation alone of 2 pixels, at most 2 along each axis."""
    turn = Augmentation("affine", 3, 0.0, warp=Warp(rotate=10, scale=0, shear=0, translate=0))
    rows, columns = turn.points(0, 0, 200, 9, 9)
    y, x = np.meshgrid(np.arange(9.0) - 4, np.arange(9.0) - 4, indexing="ij")
    moved = np.hypot(rows - 4 - y, columns - 4 - x)
    assert (moved <= 2 * np.hypot(y, x) * np.sin(np.deg2rad(5)) + 1e-9).all()
    slide = Augmentation("affine", 3, 0.0, warp=Warp(rotate=0, scale=0, shear=0, translate=2))
    rows, columns = slide.points(0, 0, 200, 9, 9)
    assert np.abs(rows - np.arange(9.0)[None, :, None]).max() <= 2
    assert np.abs(columns - np.arange(9.0)[None, None, :]).max() <= 2


def test_erasing_sets_one_rectangle_of_the_chosen_images_to_the_background():
    """About the asked-for share of images is erased; each erased region is one rectangle of
    2% to 40% of the image (up to rounding); the rest of the image is untouched."""
    erase = Augmentation("none", seed=2, fill=-9.0, erase=0.3)
    mask = erase.erased(0, 0, 2000, 28, 28)
    chosen = mask.any(axis=(1, 2))
    assert 0.26 < chosen.mean() < 0.34
    for image in mask[chosen][:200]:
        rows, columns = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
        assert image.sum() == len(rows) * len(columns)  # a full rectangle
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
        assert ERASE_AREA[0] * 784 * 0.6 <= image.sum() <= ERASE_AREA[1] * 784 * 1.4
    images = np.random.default_rng(0).standard_normal((2000, 1, 28, 28)).astype(np.float32)
    out = erase.apply_numpy(images, 0, 0, 2000)
    np.testing.assert_array_equal(out[:, 0][mask], -9.0)
    np.testing.assert_array_equal(out[:, 0][~mask], images[:, 0][~mask])


@pytest.mark.parametrize(("kw", "message"), [
    ({"augment": "shift", "rotate": 5.0}, "--rotate is not used by --augment shift"),
    ({"augment": "affine", "elastic_alpha": 5.0}, "--elastic-alpha is not used"),
    ({"augment": "elastic", "shear": 5.0, "scale": 0.1}, "--scale, --shear are not used"),
    ({"augment": "affine", "rotate": 200.0}, r"rotate must be a number in \[0, 180\]"),
    ({"augment": "elastic", "elastic_sigma": 0.0}, "elastic_sigma"),
    ({"augment": "affine", "scale": True}, "scale"),
    ({"erase": 1.5}, r"erase must be a probability in \[0, 1\]"),
    ({"dataset": "mnist", "augment": "affine-flip"}, "mirrors images"),
])
def test_bad_warp_and_erase_settings_are_refused(kw, message):
    """Settings the policy would ignore, amounts out of range and flips of digits."""
    with pytest.raises(InvalidArgument, match=message):
        TrainConfig(**kw)


def test_data_show_draws_the_training_runs_augmentation(tmp_path, capsys):
    """cnnkit data show writes a PNG of originals and augmented copies; a bad amount is one
    line and exit 2, with no file written."""
    out = tmp_path / "augmented.png"
    assert main(["data", "show", "synthetic-digits", "--augment", "affine-elastic",
                 "--erase", "0.5", "--images", "3", "--copies", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 training images of synthetic-digits, 2 augmented versions" in capsys.readouterr().out
    bad = tmp_path / "bad.png"
    assert main(["data", "show", "synthetic-digits", "--augment", "shift", "--rotate", "3",
                 "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rotate" in err[0] and not bad.exists()
    assert main(["data", "show", "synthetic-digits", "--out", str(bad)]) == 2
    assert "--augment POLICY" in capsys.readouterr().err

"""Where the downloadable data sets live: lookup order, download, SHA-256 verification.

Two kinds are registered: the IDX data sets (MNIST, Fashion-MNIST: four files each, see
:mod:`cnnkit.data.idx`) and the data sets that come as one archive (CIFAR-10's binary version,
see :mod:`cnnkit.data.cifar`). Files are looked for, in this order, in

1. the folder given as ``data_dir`` (``--data-dir``),
2. ``$CNNKIT_DATA/NAME``,
3. the user cache ``~/.cache/cnnkit/NAME`` (``$XDG_CACHE_HOME`` is honoured),
4. ``/usr/share/datasets/NAME`` (where Debian's ``dataset-fashion-mnist`` package puts its files).

Each file may be stored gzip-compressed (``name.gz``, the official form) or plain (``name``,
``cifar-10-binary.tar`` for the archive). When a file is in none of them, :func:`fetch`
downloads the official file into the user cache (unless ``$CNNKIT_OFFLINE`` is set): it
streams into a temporary file in the same folder, checks the SHA-256 digest of what arrived,
and only then renames it into place, so an interrupted or corrupted download never leaves a
file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnkit._files import atomic_write
from cnnkit.errors import CnnkitError, InvalidArgument, NotFound

__all__ = [
    "ARCHIVE_DATASETS",
    "IDX_DATASETS",
    "ArchiveDataset",
    "DataFile",
    "DatasetNotFoundError",
    "DownloadError",
    "IdxDataset",
    "dataset_names",
    "dataset_spec",
    "download",
    "fetch",
    "locate",
    "search_folders",
]


@dataclass(frozen=True)
class DataFile:
    """One official file: its name (``.gz``) and the SHA-256 digest of that file."""

    name: str
    sha256: str

    @property
    def stem(self) -> str:
        """The name without ``.gz``."""
        return self.name[: -len(".gz")] if self.name.endswith(".gz") else self.name


@dataclass(frozen=True)
class IdxDataset:
    """An IDX data set: four files, the mirrors serving them, the class names, and what its
    images are: ``digits`` (light handwritten digits on a dark background, as MNIST) and
    ``flips_allowed`` (a left-right mirrored image still shows its class: not so for digits)."""

    name: str
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile
    test_labels: DataFile
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    digits: bool = False
    flips_allowed: bool = True

    @property
    def files(self) -> tuple[DataFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


IDX_DATASETS = {
    "mnist": IdxDataset(
        name="mnist",
        train_images=DataFile(
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        train_labels=DataFile(
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        test_images=DataFile(
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        test_labels=DataFile(
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        class_names=tuple(str(digit) for digit in range(10)),
        digits=True,
        flips_allowed=False,
    ),
    "fashion-mnist": IdxDataset(
        name="fashion-mnist",
        train_images=DataFile(
            "train-images-idx3-ubyte.gz",
            "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        ),
        train_labels=DataFile(
            "train-labels-idx1-ubyte.gz",
            "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        ),
        test_images=DataFile(
            "t10k-images-idx3-ubyte.gz",
            "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        ),
        test_labels=DataFile(
            "t10k-labels-idx1-ubyte.gz",
            "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


@dataclass(frozen=True)
class ArchiveDataset:
    """A data set that comes as one archive (read by :mod:`cnnkit.data.cifar`), the mirrors
    serving it and its class names; ``digits`` and ``flips_allowed`` as for
    :class:`IdxDataset`."""

    name: str
    archive: DataFile
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    digits: bool = False
    flips_allowed: bool = True

    @property
    def files(self) -> tuple[DataFile, ...]:
        return (self.archive,)


ARCHIVE_DATASETS = {
    "cifar-10": ArchiveDataset(
        name="cifar-10",
        # The official site publishes the MD5 c32a1d4ab5d03f1284b67883e8d87530 of this file.
        archive=DataFile(
            "cifar-10-binary.tar.gz",
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        ),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        class_names=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
    ),
}

_SYSTEM_FOLDER = Path("/usr/share/datasets")


class DatasetNotFoundError(NotFound):
    """The files of a data set are nowhere on disk and could not be downloaded."""


class DownloadError(CnnkitError, OSError):
    """A download failed or delivered something other than the official file."""


def dataset_names() -> tuple[str, ...]:
    """The names of the registered data sets, IDX ones first.

    >>> dataset_names()
    ('mnist', 'fashion-mnist', 'cifar-10')
    """
    return (*IDX_DATASETS, *ARCHIVE_DATASETS)


def dataset_spec(name: str) -> IdxDataset | ArchiveDataset | None:
    """The registry's entry for ``name``, or None when it is not a registered data set."""
    return IDX_DATASETS.get(name) or ARCHIVE_DATASETS.get(name)


def _dataset(name: str) -> IdxDataset | ArchiveDataset:
    spec = dataset_spec(name)
    if spec is None:
        allowed = ", ".join(repr(n) for n in dataset_names())
        raise InvalidArgument(f"dataset must be one of {allowed}, got {name!r}")
    return spec


def cache_folder(name: str) -> Path:
    """The user cache folder for data set ``name``: ``~/.cache/cnnkit/NAME``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnkit" / name


def search_folders(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for data set ``name``, in lookup order.

    >>> [str(p) for p in search_folders("mnist", "/data")][0]
    '/data'
    """
    _dataset(name)
    folders = []
    if data_dir is not None:
        folders.append(Path(data_dir))
    if os.environ.get("CNNKIT_DATA"):
        folders.append(Path(os.environ["CNNKIT_DATA"]) / name)
    folders.append(cache_folder(name))
    folders.append(_SYSTEM_FOLDER / name)
    return folders


def _find_in(folder: Path, spec: IdxDataset | ArchiveDataset) -> dict[str, Path] | None:
    """The data set's files in ``folder`` (gz or plain), or None when any is missing."""
    found = {}
    for data_file in spec.files:
        for candidate in (folder / data_file.name, folder / data_file.stem):
            if candidate.is_file():
                found[data_file.stem] = candidate
                break
        else:
            return None
    return found


def locate(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """The paths of the files of ``name`` in the first folder that holds all of them.

    Returns a dict from the plain file name (``train-images-idx3-ubyte`` ...,
    ``cifar-10-binary.tar``) to the path, or ``None`` when no folder has them all.
    """
    spec = _dataset(name)
    for folder in search_folders(name, data_dir):
        found = _find_in(folder, spec)
        if found is not None:
            return found
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    destination: str | os.PathLike,
    sha256: str,
    *,
    progress: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``destination``, verified by its SHA-256 digest.

    The bytes go to a temporary file in the destination's folder; only when all of them arrived
    and their digest equals ``sha256`` is the file renamed to ``destination`` (atomically). On any
    failure the temporary file is removed and :class:`DownloadError` is raised, so nothing
    half-written or unverified is ever left under the final name.

    Parameters
    ----------
    url : str
        Where to download from.
    destination : path-like
        The final file.
    sha256 : str
        The expected hex digest.
    progress : bool
        Show a progress bar (tqdm) on stderr.
    timeout : float
        Seconds to wait for the server on each read.

    Returns
    -------
    pathlib.Path
        ``destination``.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)

    def fetch(temporary: Path) -> None:
        """Stream the file into ``temporary``; raise unless it is complete and its hash matches."""
        digest = hashlib.sha256()
        with open(temporary, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(f"could not download {url}: {reason}") from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = _progress_bar(total, destination.name, progress)
                received = 0
                try:
                    while True:
                        block = response.read(1 << 16)
                        if not block:
                            break
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, ValueError) as exc:
                    raise DownloadError(
                        f"download of {url} was interrupted after {received} bytes: {exc}"
                    ) from None
                finally:
                    bar.close()
            if total is not None and received != total:
                raise DownloadError(
                    f"download of {url} was cut short: {received} of {total} bytes arrived"
                )
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                "the file was discarded"
            )

    # Only a complete file whose digest matches is renamed into place.
    atomic_write(destination, fetch, overwrite=True)
    return destination


def _progress_bar(total: int | None, label: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not enabled
    )


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download_missing: bool = True,
    progress: bool = False,
    mirrors: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """The files of data set ``name``, found on disk or downloaded into the user cache.

    Parameters
    ----------
    name : str
        ``'mnist'``, ``'fashion-mnist'`` or ``'cifar-10'``.
    data_dir : path-like, optional
        A folder searched first.
    download_missing : bool
        Download from the official mirrors when the files are not found.
    progress : bool
        Show a progress bar while downloading.
    mirrors : sequence of str, optional
        Base URLs to try instead of the official ones.
    log : callable, optional
        Called with a line of text for each mirror that failed.
    timeout : float
        Seconds to wait for a mirror on each read (see :func:`download`).

    Returns
    -------
    dict
        Plain file name -> path.

    Raises
    ------
    DatasetNotFoundError
        When the files are not on disk and cannot be downloaded; the message lists where they
        were looked for and how to get them.
    """
    spec = _dataset(name)
    found = locate(name, data_dir)
    if found is not None:
        return found
    folders = search_folders(name, data_dir)
    failures = []
    offline = bool(os.environ.get("CNNKIT_OFFLINE"))
    if download_missing and not offline:
        target = cache_folder(name)
        for data_file in spec.files:
            if (target / data_file.name).is_file():
                continue
            for base in mirrors if mirrors is not None else spec.mirrors:
                try:
                    download(
                        base + data_file.name,
                        target / data_file.name,
                        data_file.sha256,
                        progress=progress,
                        timeout=timeout,
                    )
                    break
                except DownloadError as exc:
                    failures.append(str(exc))
                    if log is not None:
                        log(str(exc))
            else:
                break
        found = _find_in(target, spec)
        if found is not None:
            return found
    where = ", ".join(str(folder) for folder in folders)
    names = ", ".join(f.name for f in spec.files)
    plural = "s" if len(spec.files) > 1 else ""
    hint = f"put the file{plural} {names} in one of them or pass --data-dir"
    if name == "fashion-mnist":
        hint += " (on Debian: apt-get install dataset-fashion-mnist)"
    reason = f"; the download failed: {failures[-1]}" if failures else ""
    if download_missing and offline:
        reason = "; downloads are off because CNNKIT_OFFLINE is set"
    raise DatasetNotFoundError(
        f"dataset {name!r} not found; looked in {where}; {hint}{reason}"
    )

"""A cache of decoded image folders: memory-mapped uint8 arrays and a JSON manifest.

The first load of an image folder at a given input shape decodes every file (in parallel) and
writes, in one folder of the cache:

- ``images.npy``: uint8 ``(N, C, H, W)``, the readable images in the order of the listing
  (split by split, class by class, file by file);
- ``labels.npy``: int64 ``(N,)``;
- ``manifest.json``: the source folder, the input shape, the class names, cnnkit's version, the
  format version, and every file with its size, modification time and row (or the reason it
  could not be read).

The next load lists the folder, compares sizes and modification times with the manifest and, when
nothing changed, opens the arrays with ``numpy.load(mmap_mode='r')``: no pixel is read until it is
used. When files were changed, added or removed, only those are decoded; the rest is copied from
the old arrays, and the report says how many of each. A cache made by another cnnkit version, or
one that fails its checks (manifest unreadable, array shapes, sizes or labels that disagree with
it), is rebuilt whole, and the report says why.

A cache is built in a temporary folder beside its final place and renamed into place, under a
lock file (``fcntl.flock``, removed by its holder), so that a reader never sees half a cache and
two processes building the same cache take turns (the second then finds the first one's result).

The cache folder is marked as cnnkit's (a ``.cnnkit-cache`` file) when cnnkit creates it; a
folder that holds other files and no mark is never written into (the images are decoded into
memory instead, as they are when the folder is read-only or the disk is full), and
:func:`clear_cache` refuses it. Even in a marked folder, clearing removes only what cnnkit can
prove it wrote: folders and files whose names follow its pattern and that hold only the file
names above.

The cache lives in ``$XDG_CACHE_HOME/cnnkit/imagefolder`` (default ``~/.cache/cnnkit/imagefolder``)
unless ``cache_dir`` is given.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit._files import atomic_write, display_name
from cnnkit._json import read_json
from cnnkit._validate import check_choice
from cnnkit.budget import check_disk
from cnnkit.data.imagefolder import (
    FolderListing,
    _check_shape,
    decode_images,
    decode_listing,
    list_image_folder,
    settle_errors,
)
from cnnkit.errors import CnnkitError, DiskFull, InvalidArgument, NotAFolder

__all__ = [
    "FORMAT_VERSION",
    "CacheEntry",
    "FolderImages",
    "clear_cache",
    "default_cache_dir",
    "list_cache",
    "load_image_folder",
]

#: Bumped whenever the layout of a cache folder or the decoding of its pixels changes.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Rows copied from an old cache to a new one at a time (bounds the memory of an update).
COPY_ROWS = 4096
#: The file that marks a folder as a cache cnnkit made.
MARKER = ".cnnkit-cache"
_MARKER_TEXT = ("A cache of decoded image folders, made by cnnkit. `cnnkit data cache clear` "
                "removes the folders cnnkit wrote here and nothing else.\n")
#: The largest manifest read (a million files take about 100 MB).
MAX_MANIFEST_BYTES = 1 << 30
#: The files a cache folder (or a folder being built) holds, and atomic_write's temporaries.
_ENTRY_FILES = re.compile(r"(manifest\.json|images\.npy|labels\.npy|decoded\.npy"
                          r"|\.(manifest\.json|labels\.npy)\.\w+\.(json|npy))")
#: A cache folder's name (:func:`_entry_path`), and the names of its lock file and of a
#: builder's temporary folders (``tempfile.mkdtemp``: 8 random letters, digits or ``_``).
_ENTRY = r".+-\d+x\d+x\d+-[0-9a-f]{16}"
_ENTRY_NAME = re.compile(_ENTRY)
_LOCK_NAME = re.compile(_ENTRY + r"\.lock")
_BUILDING_NAME = re.compile(r"\." + _ENTRY + r"\.\w{8}")
_ASIDE_NAME = re.compile(r"\." + _ENTRY + r"\.old\.\w{8}")
#: Errors that say the cache folder cannot be written (then images are decoded into memory).
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnnkit/imagefolder``, or ``~/.cache/cnnkit/imagefolder``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnkit" / "imagefolder"


def _cnnkit_version() -> str:
    from cnnkit import __version__

    return __version__


@dataclass
class FolderImages:
    """An image folder's decoded images, as :func:`load_image_folder` returns them.

    Attributes
    ----------
    listing : FolderListing
        The folder's files, classes and splits.
    images : numpy.ndarray
        uint8 ``(N, C, H, W)`` of the readable files: a read-only memory map when cached.
    labels : numpy.ndarray
        int64 ``(N,)``.
    files : list of str
        The file (relative to the folder) of each row.
    splits : dict
        ``'train'``, and where the folder came split ``'validation'`` and ``'test'``: the slice of
        rows each split holds.
    unreadable : list of str
        One line per file that could not be read.
    cache_path : pathlib.Path or None
        The cache folder used, if any.
    cache_state : str
        ``'off'``, ``'opened'`` (used as it was), ``'updated'``, ``'built'`` or
        ``'not written'`` (the disk had no room).
    """

    listing: FolderListing
    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    splits: dict[str, slice]
    unreadable: list[str]
    cache_path: Path | None
    cache_state: str


@dataclass(frozen=True)
class CacheEntry:
    """One cached folder, as :func:`list_cache` finds it."""

    path: Path
    source: str
    input_shape: tuple[int, ...]
    images: int
    bytes: int
    version: str
    problem: str | None


def _entry_path(cache_dir: Path, root: Path, shape: tuple[int, int, int]) -> Path:
    shape_text = "x".join(map(str, shape))
    digest = hashlib.sha256(f"{root}\n{shape_text}".encode()).hexdigest()[:16]
    return cache_dir / f"{root.name or 'root'}-{shape_text}-{digest}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created empty if missing, removed on release).

    The holder removes the file before it lets go; a waiter that then gets the lock finds its
    file gone (another inode, or none, at ``path``) and locks a fresh one, so that no ``.lock``
    file outlives the processes that use it.
    """
    import fcntl

    while True:
        handle = open(path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _stat_files(listing: FolderListing) -> list[tuple[int, int]]:
    """``(size, mtime_ns)`` of each file; a file gone since the listing gets ``(-1, -1)``."""
    stats = []
    root = os.fspath(listing.root)
    for name in listing.files:
        try:
            info = os.stat(os.path.join(root, name))
            stats.append((info.st_size, info.st_mtime_ns))
        except FileNotFoundError:
            stats.append((-1, -1))
    return stats


class _Damaged(Exception):
    """A cache folder that fails its checks (internal: always turned into a rebuild)."""


def _open_entry(path: Path, shape: tuple[int, int, int]) -> tuple[dict, np.ndarray, np.ndarray]:
    """The manifest and the memory-mapped arrays of a cache folder, each checked against the
    others; :class:`_Damaged` says what is wrong."""
    try:
        manifest = read_json(path / MANIFEST, "cache manifest", max_bytes=MAX_MANIFEST_BYTES)
    except (OSError, CnnkitError) as exc:
        raise _Damaged(f"manifest unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise _Damaged("manifest of another format")
    try:
        classes = manifest["class_names"]
        files = manifest["files"]
        if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise _Damaged("class names malformed")
        if not isinstance(files, list) or not all(
            isinstance(f, list) and len(f) == 4 and isinstance(f[0], str)
            and isinstance(f[1], int) and isinstance(f[2], int)
            and (f[3] is None or isinstance(f[3], (int, str)))
            for f in files
        ):
            raise _Damaged("file list malformed")
        if tuple(manifest["input_shape"]) != shape:
            raise _Damaged("input shape differs from the folder name")
        rows = [f[3] for f in files if isinstance(f[3], int)]
        if rows != list(range(len(rows))):
            raise _Damaged("rows out of order")
        images = np.load(path / "images.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(path / "labels.npy", allow_pickle=False)
    except _Damaged:
        raise
    except (KeyError, TypeError, ValueError, OSError, EOFError) as exc:
        raise _Damaged(f"{exc.__class__.__name__}: {exc}") from None
    if images.dtype != np.uint8 or images.shape != (len(rows), *shape):
        raise _Damaged(f"images.npy is {images.dtype} {images.shape}, not {len(rows)} images")
    if os.path.getsize(path / "images.npy") != images.offset + images.nbytes:
        raise _Damaged("images.npy has the wrong length")
    presplit = bool(manifest.get("presplit"))
    expected = [_class_index(f[0], presplit, classes) for f in files if isinstance(f[3], int)]
    if labels.dtype != np.int64 or labels.tolist() != expected:
        raise _Damaged("labels.npy disagrees with the file list")
    return manifest, images, labels


def _class_index(name: str, presplit: bool, classes: list[str]) -> int:
    """The class of a file from its path: the first folder (the second in a split folder)."""
    parts = name.split("/")
    folder = display_name(parts[1 if presplit else 0]) if len(parts) > 1 + presplit else None
    return classes.index(folder) if folder in classes else -1


def load_image_folder(
    root: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
    on_error: str = "skip",
    report: Callable[[str], None] | None = None,
) -> FolderImages:
    """Decode an image folder, or open its cache.

    Parameters
    ----------
    root : path-like
        One sub-folder per class, or ``train/``, ``val/``, ``test/`` each holding them.
    input_shape : sequence of 3 ints
        ``(C, H, W)``, C 1 or 3.
    cache : bool
        Use and keep the cache; False decodes into memory and writes nothing.
    cache_dir : path-like, optional
        Where the cache lives; default :func:`default_cache_dir`.
    workers : int, optional
        Decoding processes; default all the CPUs available.
    progress : bool
        Show a progress bar while decoding.
    on_error : {'skip', 'raise'}
        Unreadable files: reported and left out, or refused (also when the cache remembers them).
    report : callable, optional
        Receives a line for each skipped file and for what the cache did.

    Returns
    -------
    FolderImages
    """
    check_choice(on_error, "on_error", ("skip", "raise"))
    shape = _check_shape(input_shape)
    listing = list_image_folder(root)
    root_path = listing.root.resolve()
    stats = _stat_files(listing)
    if not cache:
        return _decode_in_memory(listing, shape, workers, progress, on_error, report, "off")
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise NotAFolder(f"cache_dir {cache_dir} exists and is not a folder")
    entry = _entry_path(cache_dir, root_path, shape)
    say = report if report is not None else (lambda line: None)

    found = _try_open(entry, shape, listing, stats)
    if found is not None and found[0] == "current":
        return _result(listing, entry, found[1], found[2], found[3], "opened", on_error, report)
    needed = len(listing.files) * int(np.prod(shape))
    try:
        refusal = _claim(cache_dir)
        if refusal is None:
            check_disk(cache_dir, 2 * needed + (1 << 20), f"the cache of {listing.root}")
            state = _build_locked(entry, listing, shape, stats, workers, progress, say)
    except (DiskFull, OSError) as exc:
        if not isinstance(exc, DiskFull) and exc.errno not in _UNWRITABLE:
            raise
        refusal = str(exc)
    if refusal is not None:
        say(f"cache: not written ({refusal}); decoding into memory")
        return _decode_in_memory(
            listing, shape, workers, progress, on_error, report, "not written"
        )
    manifest, images, labels = _open_entry(entry, shape)
    return _result(listing, entry, manifest, images, labels, state, on_error, report)


def _build_locked(
    entry: Path,
    listing: FolderListing,
    shape: tuple[int, int, int],
    stats: list,
    workers: int | None,
    progress: bool,
    say: Callable[[str], None],
) -> str:
    """Build or update the cache folder ``entry`` under its lock; ``'opened'`` when another
    process built it while this one waited, else ``'built'`` or ``'updated'``."""
    with _locked(entry.with_name(entry.name + ".lock")):
        found = _try_open(entry, shape, listing, stats)
        if found is not None and found[0] == "current":
            return "opened"
        old = None
        if found is None:
            say(f"cache: building {entry} for {listing.root}")
        elif found[0] == "damaged":
            say(f"cache: {entry} is damaged ({found[1]}); rebuilding it whole")
        elif found[0] == "other version":
            say(f"cache: {entry} was made by cnnkit {found[1]}; rebuilding it whole")
        else:
            old = found[1:]
        return _build(entry, listing, shape, stats, old, workers, progress, say)


def _claim(cache_dir: Path) -> str | None:
    """Make ``cache_dir`` a cnnkit cache folder (create it, and mark it); None when it is one,
    else why it is not used: it holds files cnnkit did not write and no mark."""
    if (cache_dir / MARKER).is_file():
        return None
    if cache_dir.is_dir():
        refusal = _not_a_cache(cache_dir)
        if refusal:
            return f"{refusal}; give an empty or new --cache-dir"
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Created in place (not renamed into it), so that a second process marking the folder at
    # the same time sees the mark, never a temporary file.
    with contextlib.suppress(FileExistsError), open(cache_dir / MARKER, "x",
                                                    encoding="utf-8") as mark:
        mark.write(_MARKER_TEXT)
    return None


def _not_a_cache(cache_dir: Path) -> str:
    """Why the existing folder ``cache_dir`` is not a cnnkit cache folder, or '' when it is:
    it has cnnkit's mark, or holds nothing but what cnnkit writes (a cache made before the
    mark existed, or an empty folder)."""
    if (cache_dir / MARKER).is_file():
        return ""
    foreign = [path.name for path in sorted(cache_dir.iterdir()) if not _removable(path)]
    if not foreign:
        return ""
    return (f"cache_dir {cache_dir} is not a cnnkit cache folder (it has no {MARKER} file and "
            f"holds files cnnkit did not write, such as {foreign[0]!r})")


def _try_open(
    entry: Path, shape: tuple[int, int, int], listing: FolderListing, stats: list
) -> tuple | None:
    """None (no cache), ``('damaged', why)``, ``('other version', version)``,
    ``('stale', manifest, images, labels)`` or ``('current', manifest, images, labels)``."""
    if not entry.exists():
        return None
    try:
        manifest, images, labels = _open_entry(entry, shape)
    except _Damaged as exc:
        return ("damaged", str(exc))
    if manifest.get("cnnkit_version") != _cnnkit_version():
        return ("other version", manifest.get("cnnkit_version"))
    current = (
        manifest.get("class_names") == listing.class_names
        and [tuple(f[:3]) for f in manifest["files"]]
        == [(name, size, mtime) for name, (size, mtime) in zip(listing.files, stats)]
    )
    return ("current" if current else "stale", manifest, images, labels)


def _build(
    entry: Path,
    listing: FolderListing,
    shape: tuple[int, int, int],
    stats: list,
    old: tuple | None,
    workers: int | None,
    progress: bool,
    say: Callable[[str], None],
) -> str:
    """Write the cache of ``listing`` to a temporary folder, reusing the rows of ``old`` whose
    file is unchanged, and rename it into place. Returns ``'built'`` or ``'updated'``."""
    known: dict[str, list] = {}
    if old is not None:
        old_manifest = old[0]
        if old_manifest["class_names"] == listing.class_names:
            known = {f[0]: f for f in old_manifest["files"]}
        else:
            say("cache: the classes changed; decoding every file again")
    # Which files keep their old row (or their old error) and which are decoded again.
    reuse: list = []
    for name, (size, mtime) in zip(listing.files, stats):
        previous = known.get(name)
        reuse.append(previous[3] if previous and previous[1:3] == [size, mtime] else False)
    fresh = [index for index, kept in enumerate(reuse) if kept is False]
    if old is not None and known:
        changed = sum(1 for index in fresh if listing.files[index] in known)
        removed = len(set(known) - set(listing.files))
        say(
            f"cache: {changed} changed, {len(fresh) - changed} added, {removed} removed "
            f"file(s) in {listing.root}; decoding {len(fresh)}, reusing "
            f"{len(listing.files) - len(fresh)}"
        )
    temporary = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        decoded = np.lib.format.open_memmap(
            temporary / "decoded.npy", mode="w+", dtype=np.uint8, shape=(len(fresh), *shape)
        )
        errors = decode_images(
            [listing.root / listing.files[index] for index in fresh], shape, decoded,
            workers=workers, progress=progress,
        )
        # Each file's source: ('old', row) / ('new', row) / its error message.
        outcome: list = list(reuse)
        for position, index in enumerate(fresh):
            error = errors[position]
            outcome[index] = ("new", position) if error is None else str(error)
        sources = [
            item if isinstance(item, tuple) else ("old", item)
            for item in outcome if not isinstance(item, str)
        ]
        if len(sources) == len(fresh) and all(kind == "new" for kind, _ in sources):
            decoded.flush()
            del decoded
            os.replace(temporary / "decoded.npy", temporary / "images.npy")
        else:
            old_images = decoded if old is None else old[1]
            _gather(temporary / "images.npy", sources, decoded, old_images, shape)
            del decoded
            os.unlink(temporary / "decoded.npy")
        labels = np.array(
            [label for label, item in zip(listing.labels, outcome) if not isinstance(item, str)],
            dtype=np.int64,
        )
        atomic_write(temporary / "labels.npy", lambda tmp: np.save(tmp, labels))
        rows = iter(range(len(labels)))
        manifest = {
            "format": FORMAT_VERSION,
            "cnnkit_version": _cnnkit_version(),
            "source": str(listing.root.resolve()),
            "input_shape": list(shape),
            "class_names": listing.class_names,
            "presplit": listing.presplit,
            "files": [
                [name, size, mtime, item if isinstance(item, str) else next(rows)]
                for name, (size, mtime), item in zip(listing.files, stats, outcome)
            ],
        }
        atomic_write(
            temporary / MANIFEST,
            lambda tmp: tmp.write_text(json.dumps(manifest), encoding="utf-8"),
        )
        _publish(temporary, entry)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return "built" if old is None else "updated"


def _gather(
    path: Path, sources: list, decoded: np.ndarray, old_images: np.ndarray, shape: tuple
) -> None:
    """Write ``images.npy`` row by row from the new and old arrays, a block at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(sources), *shape))
    kinds = np.array([kind == "new" for kind, _ in sources], dtype=bool)
    rows = np.array([row for _, row in sources], dtype=np.int64)
    for start in range(0, len(sources), COPY_ROWS):
        block = slice(start, start + COPY_ROWS)
        new, index = kinds[block], rows[block]
        target = out[block]
        target[new] = decoded[index[new]]
        target[~new] = old_images[index[~new]]
    out.flush()
    del out


def _publish(temporary: Path, entry: Path) -> None:
    """Rename the finished folder into place; an old one is moved aside first, then removed."""
    aside = None
    if entry.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=entry.parent))
        os.replace(entry, aside / "entry")
    os.replace(temporary, entry)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _result(
    listing: FolderListing,
    entry: Path | None,
    manifest: dict,
    images: np.ndarray,
    labels: np.ndarray,
    state: str,
    on_error: str,
    report: Callable[[str], None] | None,
) -> FolderImages:
    errors = [item if isinstance(item, str) else None for *_, item in manifest["files"]]
    settle_errors(listing, errors, on_error=on_error, report=report)
    readable = [index for index, error in enumerate(errors) if error is None]
    files = [listing.files[index] for index in readable]
    split_of = [listing.splits[index] for index in readable]
    splits = {}
    for split in ("train", "validation", "test"):
        rows = [row for row, name in enumerate(split_of) if name == split]
        if rows:
            splits[split] = slice(rows[0], rows[-1] + 1)
    unreadable = [error for error in errors if error is not None]
    return FolderImages(listing, images, labels, files, splits, unreadable, entry, state)


def _decode_in_memory(
    listing: FolderListing,
    shape: tuple[int, int, int],
    workers: int | None,
    progress: bool,
    on_error: str,
    report: Callable[[str], None] | None,
    state: str,
) -> FolderImages:
    images, errors, readable = decode_listing(listing, shape, workers=workers,
                                              progress=progress, on_error=on_error,
                                              report=report)
    manifest = {
        "files": [[name, 0, 0, None if error is None else str(error)]
                  for name, error in zip(listing.files, errors)]
    }
    labels = np.asarray(listing.labels, dtype=np.int64)[readable]
    return _result(listing, None, manifest, images[readable], labels, state, "skip", None)


def list_cache(cache_dir: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The cached folders under ``cache_dir`` (default :func:`default_cache_dir`), with what
    is wrong with each (a damaged cache, a source folder that is gone), if anything."""
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise NotAFolder(f"cache_dir {cache_dir} exists and is not a folder")
    if not cache_dir.is_dir():
        return []
    entries = []
    for path in sorted(cache_dir.iterdir()):
        if not path.is_dir() or path.name.startswith(".") or not (path / MANIFEST).exists():
            continue
        size = sum(item.stat().st_size for item in path.iterdir() if item.is_file())
        try:
            manifest = read_json(path / MANIFEST, "cache manifest", max_bytes=MAX_MANIFEST_BYTES)
            shape = tuple(int(n) for n in manifest["input_shape"])
            _, images, _ = _open_entry(path, shape)  # type: ignore[arg-type]
            problem = None if Path(manifest["source"]).is_dir() else "source folder is gone"
            entries.append(CacheEntry(path, str(manifest["source"]), shape, len(images), size,
                                      str(manifest.get("cnnkit_version")), problem))
        except (_Damaged, CnnkitError, OSError, ValueError, KeyError, TypeError) as exc:
            entries.append(CacheEntry(path, "?", (), 0, size, "?", f"damaged ({exc})"))
    return entries


def clear_cache(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove the cached folders under ``cache_dir`` (each under its lock), and the temporary
    folders and lock files that killed builders left; returns the cache folders removed.

    Only what cnnkit can prove it wrote goes: a folder named as :func:`load_image_folder`
    names them that holds nothing but a cache's own files (which are removed one by one). A
    folder without the ``.cnnkit-cache`` mark is refused, unless everything in it is such a
    cache folder (one made before the mark existed). Anything else is left where it is.
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise NotAFolder(f"cache_dir {cache_dir} exists and is not a folder")
    if not cache_dir.is_dir():
        return []
    refusal = _not_a_cache(cache_dir)
    if refusal:
        raise InvalidArgument(f"{refusal}; nothing was removed")
    removed = []
    for path in sorted(cache_dir.iterdir()):
        name = path.name
        if _ENTRY_NAME.fullmatch(name) and not name.startswith("."):
            entry_name = name
        elif _LOCK_NAME.fullmatch(name):
            entry_name = name.removesuffix(".lock")
        else:  # a builder's temporary folder: '.<entry>.<random>' or '.<entry>.old.<random>'
            entry_name = name[1:].rsplit(".", 1)[0].removesuffix(".old")
        if name == MARKER or not _removable(path):  # the mark stays: the folder is cnnkit's
            continue
        with _locked(cache_dir / f"{entry_name}.lock"):  # waits for a builder; then removed
            if path.exists() and _removable(path):  # checked again under the lock
                _remove_own(path)
                if path.parent == cache_dir and _ENTRY_NAME.fullmatch(name) and (
                    not name.startswith(".")
                ):
                    removed.append(path)
    return removed


def _removable(path: Path) -> bool:
    """Whether ``path`` (in a cache folder) is something cnnkit wrote there: its mark, a cache
    folder, a builder's temporary folder or a lock file, each named as cnnkit names them and
    holding only what cnnkit puts there. Symbolic links never are."""
    name = path.name
    if path.is_symlink():
        return False
    if name == MARKER or _LOCK_NAME.fullmatch(name):
        return path.is_file()
    if _ASIDE_NAME.fullmatch(name):  # '.<entry>.old.<random>/entry/...' while publishing
        return path.is_dir() and all(
            item.name == "entry" and _holds_own_files(item) for item in path.iterdir()
        )
    if _BUILDING_NAME.fullmatch(name) or (_ENTRY_NAME.fullmatch(name)
                                          and not name.startswith(".")):
        return _holds_own_files(path)
    return False


def _holds_own_files(folder: Path) -> bool:
    """A real folder holding only regular files with a cache folder's own names."""
    return (folder.is_dir() and not folder.is_symlink() and all(
        _ENTRY_FILES.fullmatch(item.name) and item.is_file() and not item.is_symlink()
        for item in folder.iterdir()
    ))


def _remove_own(path: Path) -> None:
    """Remove a file or folder that :func:`_removable` approved, file by file."""
    if path.is_file():
        path.unlink()
        return
    for item in path.iterdir():
        if item.is_dir() and not item.is_symlink():
            _remove_own(item)
        else:
            item.unlink()
    path.rmdir()

"""CIFAR-10's binary version, read straight from its archive with numpy.

The archive ``cifar-10-binary.tar.gz`` holds one folder, ``cifar-10-batches-bin/``, with

- ``data_batch_1.bin`` .. ``data_batch_5.bin``: the 50,000 training images, 10,000 a file;
- ``test_batch.bin``: the 10,000 test images;
- ``batches.meta.txt``: the ten class names, one a line, in label order;
- ``readme.html``: a link to the data set's page (not read).

A batch file is a run of 3,073-byte records: one label byte (0..9), then the 1,024 red, 1,024
green and 1,024 blue bytes of a 32×32 image, each plane row by row; so a record's last 3,072
bytes are a ``(3, 32, 32)`` uint8 array in C order, the ``(C, H, W)`` layout every cnnkit data
set has.

The members are read from the (compressed) stream into memory; nothing is written to disk. Each
member is still checked before a byte of it is read, as an archive found on disk has no digest
to vouch for it: its name must be one of the above (so ``../x`` or an absolute path is refused),
it must be a regular file (no link, device or folder other than the one folder), it must appear
once, and its size must be a whole number of records and at most 10,000 of them (the meta file
at most 4 KiB). A damaged archive, a missing member and a label outside 0..9 are refused with
:class:`~cnnkit.errors.BadFile` naming the archive and the member.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass

import numpy as np

from cnnkit.budget import check_memory
from cnnkit.data.idx import open_decompressed
from cnnkit.errors import BadFile

__all__ = ["IMAGE_SHAPE", "RECORD_BYTES", "CifarSplits", "read_cifar10"]

#: ``(C, H, W)`` of one image.
IMAGE_SHAPE = (3, 32, 32)
#: One label byte, then the pixels.
RECORD_BYTES = 1 + 3 * 32 * 32
#: Records in each official batch file, the most a member may hold.
RECORDS_PER_BATCH = 10_000

#: The one folder of the archive and the members in it.
FOLDER = "cifar-10-batches-bin"
TRAIN_MEMBERS = tuple(f"data_batch_{number}.bin" for number in range(1, 6))
TEST_MEMBER = "test_batch.bin"
META_MEMBER = "batches.meta.txt"
README_MEMBER = "readme.html"
#: The largest meta file and readme accepted; the official ones are a few hundred bytes.
MAX_TEXT_BYTES = 4096
MAX_README_BYTES = 1 << 16
#: The most bytes accepted after the end of the tar archive (tar pads to 10 KiB).
MAX_TRAILING_BYTES = 1 << 20


@dataclass(frozen=True)
class CifarSplits:
    """The arrays of the archive: uint8 images ``(N, 3, 32, 32)``, uint8 labels ``(N,)``, and
    the class names of ``batches.meta.txt``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]


def read_cifar10(path: str | os.PathLike, class_names: tuple[str, ...]) -> CifarSplits:
    """Read CIFAR-10's binary archive (``.tar.gz`` or plain ``.tar``) into uint8 arrays.

    Parameters
    ----------
    path : path-like
        The archive.
    class_names : tuple of str
        The names ``batches.meta.txt`` must list, in order; the labels must be below their
        number.

    Returns
    -------
    CifarSplits
        The five training batches concatenated in order, and the test batch.

    Raises
    ------
    cnnkit.errors.BadFile
        When the archive is damaged, holds an unexpected or misshapen member, lacks one, or
        its class names or labels are not CIFAR-10's.
    cnnkit.errors.TooLarge
        When a member would not fit in memory.

    Examples
    --------
    >>> import io, tarfile, tempfile
    >>> record = bytes([7]) + bytes(range(256)) * 12
    >>> archive = tempfile.mkdtemp() + "/cifar-10-binary.tar"
    >>> names = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
    >>> members = {name: record for name in TRAIN_MEMBERS + (TEST_MEMBER,)}
    >>> members[META_MEMBER] = "\\n".join(names).encode()
    >>> with tarfile.open(archive, "w") as tar:
    ...     for name, data in members.items():
    ...         info = tarfile.TarInfo(f"{FOLDER}/{name}")
    ...         info.size = len(data)
    ...         tar.addfile(info, io.BytesIO(data))
    >>> splits = read_cifar10(archive, names)
    >>> splits.train_images.shape, splits.train_labels.tolist(), splits.test_images[0, 2, 31, 31]
    ((5, 3, 32, 32), [7, 7, 7, 7, 7], np.uint8(255))
    """
    path = os.fspath(path)
    members = _read_members(path)
    missing = [name for name in (*TRAIN_MEMBERS, TEST_MEMBER, META_MEMBER) if name not in members]
    if missing:
        raise BadFile(f"{path} is not CIFAR-10's binary archive: it lacks "
                      + ", ".join(f"{FOLDER}/{name}" for name in missing))
    _check_class_names(members[META_MEMBER], class_names, f"{path}: {FOLDER}/{META_MEMBER}")
    train = [_records(members[name], len(class_names), f"{path}: {FOLDER}/{name}")
             for name in TRAIN_MEMBERS]
    test_images, test_labels = _records(members[TEST_MEMBER], len(class_names),
                                        f"{path}: {FOLDER}/{TEST_MEMBER}")
    return CifarSplits(
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        test_images,
        test_labels,
        tuple(class_names),
    )


def _read_members(path: str) -> dict[str, bytes]:
    """The bytes of each expected member, each checked before it is read (see the module)."""
    members: dict[str, bytes] = {}
    with open_decompressed(path, "CIFAR-10 archive") as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = _member_name(member, path)
                    if name is None:
                        continue  # the folder itself
                    if name in members:
                        raise BadFile(f"{path} holds {member.name!r} twice")
                    _check_size(member, name, path)
                    if name == README_MEMBER:
                        continue
                    check_memory(2 * member.size, f"reading {member.name} of {path}")
                    source = tar.extractfile(member)
                    data = source.read(member.size) if source is not None else b""
                    if len(data) != member.size:
                        raise BadFile(f"{path} is truncated: {member.name} needs {member.size} "
                                      f"bytes, found {len(data)}")
                    members[name] = data
                # Read to the end, so that a gzip stream's checksum is verified: a damaged stream
                # can decompress to a block of zeros, which ends a tar archive early.
                if len(stream.read(MAX_TRAILING_BYTES + 1)) > MAX_TRAILING_BYTES:
                    raise BadFile(f"{path} goes on for more than {MAX_TRAILING_BYTES} bytes past "
                                  "the end of its tar archive")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BadFile(f"{path} is not a readable tar archive or is damaged ({exc})") from None
    return members


def _member_name(member: tarfile.TarInfo, path: str) -> str | None:
    """The name of ``member`` inside the folder; None for the folder; refuses everything else."""
    expected = (*TRAIN_MEMBERS, TEST_MEMBER, META_MEMBER, README_MEMBER)
    # Archives written with ``tar -C dir .`` spell names with a leading ./
    relative = member.name.removeprefix("./")
    if member.isdir() and relative in (FOLDER, "."):
        return None
    folder, _, name = relative.partition("/")
    if folder != FOLDER or name not in expected:
        raise BadFile(
            f"{path} holds the member {member.name!r}, which is not one of CIFAR-10's files "
            f"({FOLDER}/ with {', '.join(expected)}); the archive is refused"
        )
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise BadFile(f"{path}: member {member.name!r} is not a regular file (a link, folder "
                      "or device); the archive is refused")
    return name


def _check_size(member: tarfile.TarInfo, name: str, path: str) -> None:
    """Refuse a member whose declared size no CIFAR-10 file has, before reading it."""
    if name in (META_MEMBER, README_MEMBER):
        limit = MAX_TEXT_BYTES if name == META_MEMBER else MAX_README_BYTES
        if member.size > limit:
            raise BadFile(f"{path}: {member.name} declares {member.size} bytes, more than the "
                          f"{limit} allowed")
        return
    records, remainder = divmod(member.size, RECORD_BYTES)
    if remainder or not 1 <= records <= RECORDS_PER_BATCH:
        raise BadFile(
            f"{path}: {member.name} declares {member.size} bytes, which is not a whole number "
            f"of {RECORD_BYTES}-byte records between 1 and {RECORDS_PER_BATCH}"
        )


def _check_class_names(data: bytes, class_names: tuple[str, ...], where: str) -> None:
    """Refuse a meta file whose non-empty lines are not ``class_names`` in order."""
    try:
        found = tuple(line.strip() for line in data.decode("ascii").splitlines() if line.strip())
    except UnicodeDecodeError:
        raise BadFile(f"{where} is not ASCII text") from None
    if found != tuple(class_names):
        raise BadFile(f"{where} lists the classes {list(found)}, not CIFAR-10's "
                      f"{list(class_names)}")


def _records(data: bytes, num_classes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` and labels ``(N,)`` of one batch file's bytes."""
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        index = int(bad[0])
        raise BadFile(f"{where}: record {index} has the label {int(labels[index])}, outside "
                      f"0..{num_classes - 1}")
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels

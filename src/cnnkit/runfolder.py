"""A training run's folder: the one place that knows its file names, its lock and its history.

A run folder holds what training writes::

    config.json              the full configuration
    metrics.csv              one row per epoch
    checkpoint.safetensors   the last complete epoch (weights, optimizer, history, config)
    best.safetensors         the epoch with the best validation accuracy so far
    curves.png               loss and accuracy curves
    .lock                    while a process writes the run: its PID, host and start time

and what other commands write from its weights: ``report.html`` (``cnnkit report``, and
``cnnkit train`` at the end), ``model.onnx`` (``cnnkit export``), and the figures
``weights.png`` (``cnnkit weights``), ``confusion-SPLIT.png`` (``cnnkit evaluate``) and
``explain-IMAGE.png`` (``cnnkit explain``). Each name is spelled once, below; everyone else asks
a :class:`RunFolder`.

Safety rules, in the order a run applies them:

1. **Validate first.** Nothing here deletes or writes; the caller checks its arguments, data and
   architecture before it calls :meth:`RunFolder.open`.
2. **One writer.** :meth:`RunFolder.lock` creates ``.lock`` exclusively. A second process is
   refused with the holder's PID and host; a lock left by a process that no longer runs on this
   machine is taken over. Under torchrun the lock also names the job (its rendezvous id): a
   failed attempt keeps it, the next attempt of the same job takes it over (on whichever
   machine its rank 0 runs; torchrun starts an attempt only once every process of the one
   before has stopped), and :meth:`RunFolder.end_job` releases it when the job is over.
3. **Replace, don't delete.** With ``overwrite``, the earlier run's files (and only those: a
   note or a folder the user keeps in the run folder stays where it is) move into
   ``.previous-run/`` and are removed only by :meth:`RunFolder.commit` once the new run's first
   *complete* checkpoint (the end of an epoch) is written; a run that fails or is interrupted
   before that moves them back (:meth:`RunFolder.restore`). A run killed before that leaves them
   in ``.previous-run/``: ``--resume`` puts them back (or, when the killed run wrote a
   checkpoint, keeps them aside until the resumed run completes an epoch), a new
   ``--overwrite`` keeps them aside in place of the killed run's files, and the commands that
   read a run say where they are (:meth:`RunFolder.set_aside_note`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from cnnkit._files import atomic_write, file_mode
from cnnkit._json import read_json
from cnnkit.errors import AlreadyExists, CnnkitError, NotAFolder, NotFound, RunBusy

__all__ = [
    "BEST_NAME",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "CURVES_NAME",
    "INITIAL_NAME",
    "LOCK_NAME",
    "METRICS_NAME",
    "ONNX_NAME",
    "PATCHES_FIGURE_NAME",
    "PREVIOUS_NAME",
    "REPORT_NAME",
    "WEIGHTS_FIGURE_NAME",
    "RunFolder",
]

# -- the names of a run's files (the one place they are spelled) ------------------------------
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"
CURVES_NAME = "curves.png"
_CHECKPOINT_STEM, _BEST_STEM, _INITIAL_STEM = "checkpoint", "best", "initial"
CHECKPOINT_NAME = f"{_CHECKPOINT_STEM}.safetensors"
BEST_NAME = f"{_BEST_STEM}.safetensors"
#: The weights before the first step (kept to compare the learned kernels with).
INITIAL_NAME = f"{_INITIAL_STEM}.safetensors"
#: cnnkit 0.1 wrote its checkpoints with ``torch.save`` (``cnnkit convert-checkpoint``).
_LEGACY_CHECKPOINT_NAME, _LEGACY_BEST_NAME = f"{_CHECKPOINT_STEM}.pt", f"{_BEST_STEM}.pt"
REPORT_NAME = "report.html"
ONNX_NAME = "model.onnx"
WEIGHTS_FIGURE_NAME = "weights.png"
PATCHES_FIGURE_NAME = "patches.png"
#: The figures of one split (``cnnkit evaluate``) and of one image (``cnnkit explain``).
_CONFUSION_FIGURE, _EXPLAIN_FIGURE = "confusion-{}.png", "explain-{}.png"
LOCK_NAME = ".lock"
PREVIOUS_NAME = ".previous-run"

#: The files a run writes; ``overwrite`` replaces these and leaves every other file alone.
OWN_FILES = (CONFIG_NAME, METRICS_NAME, CURVES_NAME, REPORT_NAME, ONNX_NAME)
#: Figures that other commands draw from the run's weights (cnnkit weights, evaluate, explain):
#: out of date, and removed, once training writes new weights.
WEIGHT_FIGURES = (WEIGHTS_FIGURE_NAME, PATCHES_FIGURE_NAME, _CONFUSION_FIGURE.format("*"),
                  _EXPLAIN_FIGURE.format("*"))
#: The checkpoints in every format (and their half-written temporaries), and the figures.
OWN_PATTERNS = (f"{_CHECKPOINT_STEM}.*", f"{_BEST_STEM}.*", f"{_INITIAL_STEM}.*",
                *WEIGHT_FIGURES)


#: A temporary file of :func:`cnnkit._files.atomic_write` (``tempfile.mkstemp``'s names).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>(\.[^.]+)?)")


class RunFolder:
    """The files of one training run.

    >>> import tempfile
    >>> run = RunFolder(tempfile.mkdtemp())
    >>> run.config.name, run.metrics.name, run.checkpoint.name, run.best.name
    ('config.json', 'metrics.csv', 'checkpoint.safetensors', 'best.safetensors')
    >>> run.confusion_figure("test").name, run.explain_figure("cat").name
    ('confusion-test.png', 'explain-cat.png')
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._replaced: Path | None = None
        self._locked = False

    @classmethod
    def of(cls, source: str | os.PathLike) -> RunFolder:
        """The run folder of ``source``: the folder itself, or the folder holding a checkpoint
        file (where the figures drawn from it go)."""
        path = Path(source)
        return cls(path if path.is_dir() else path.parent)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- file names ---------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        """The run's configuration (JSON)."""
        return self.path / CONFIG_NAME

    @property
    def metrics(self) -> Path:
        """One row per epoch (CSV)."""
        return self.path / METRICS_NAME

    @property
    def checkpoint(self) -> Path:
        """The last complete epoch (:class:`cnnkit.engines.checkpoint.Checkpoint`)."""
        return self.path / CHECKPOINT_NAME

    @property
    def best(self) -> Path:
        """The epoch with the best validation accuracy so far."""
        return self.path / BEST_NAME

    @property
    def initial(self) -> Path:
        """The weights before the first training step (a checkpoint of epoch 0)."""
        return self.path / INITIAL_NAME

    @property
    def patches_figure(self) -> Path:
        """The image patches each filter responds to most (``cnnkit weights``)."""
        return self.path / PATCHES_FIGURE_NAME

    @property
    def legacy_checkpoint(self) -> Path:
        """Where cnnkit 0.1 wrote the last checkpoint (``torch.save``; to be converted)."""
        return self.path / _LEGACY_CHECKPOINT_NAME

    @property
    def legacy_best(self) -> Path:
        """Where cnnkit 0.1 wrote the best checkpoint."""
        return self.path / _LEGACY_BEST_NAME

    @property
    def curves(self) -> Path:
        """Loss and accuracy curves (PNG), drawn when training ends."""
        return self.path / CURVES_NAME

    @property
    def report(self) -> Path:
        """The HTML report (``cnnkit report``)."""
        return self.path / REPORT_NAME

    @property
    def onnx(self) -> Path:
        """The exported model (``cnnkit export``)."""
        return self.path / ONNX_NAME

    @property
    def weights_figure(self) -> Path:
        """The learned kernels of every convolution (``cnnkit weights``)."""
        return self.path / WEIGHTS_FIGURE_NAME

    def confusion_figure(self, split: str) -> Path:
        """The confusion matrix of ``split`` (``cnnkit evaluate``)."""
        return self.path / _CONFUSION_FIGURE.format(split)

    def explain_figure(self, stem: str) -> Path:
        """The explanation of the image named ``stem`` (``cnnkit explain``)."""
        return self.path / _EXPLAIN_FIGURE.format(stem)

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def previous(self) -> Path:
        return self.path / PREVIOUS_NAME

    def is_own(self, name: str) -> bool:
        """Whether ``name`` is one of the files a run writes (other files are left alone)."""
        return name in OWN_FILES or any(fnmatch.fnmatch(name, pattern) for pattern in OWN_PATTERNS)

    def remove_weight_figures(self) -> list[str]:
        """Remove the figures drawn from earlier weights (:data:`WEIGHT_FIGURES`), which new
        weights make wrong; returns their names."""
        removed = []
        for entry in sorted(self.path.iterdir()):
            if entry.is_file() and any(fnmatch.fnmatch(entry.name, pattern)
                                       for pattern in WEIGHT_FIGURES):
                entry.unlink()
                removed.append(entry.name)
        return removed

    def write_text(self, path: Path, text: str) -> None:
        """Write one of the run's text files atomically."""
        atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"),
                     overwrite=True)

    # -- opening ------------------------------------------------------------------------------
    def check_new(self, *, overwrite: bool, job: str | None = None) -> None:
        """Refuse, without changing anything, a folder that a new run (of torchrun job ``job``)
        may not use."""
        self.check_not_busy(job)
        if self.path.exists() and not self.path.is_dir():
            raise NotAFolder(f"output {self.path} exists and is not a folder")
        if self.path.is_dir() and not overwrite and self._holds_files():
            raise AlreadyExists(
                f"output folder {self.path} exists and is not empty; choose another folder, "
                "resume it with --resume, or pass --overwrite"
            )
        parent = self.path if self.path.is_dir() else self.path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(13, "cannot write into this folder", str(parent))

    def check_resumable(self, checkpoint: Path, *, job: str | None = None) -> str:
        """Refuse a folder that holds no run to resume; returns a line to show, or ''
        (:meth:`recover` may have tidied the folder first)."""
        self.check_not_busy(job)
        note = self.recover() if checkpoint == self.checkpoint else ""
        if not checkpoint.is_file():
            raise NotFound(f"cannot resume: {checkpoint} does not exist")
        return note

    def recover(self) -> str:
        """Tidy what a killed run left, before it is resumed: its half-written temporaries go,
        and the earlier run that an interrupted ``--overwrite`` set aside is put back when the
        interrupted run wrote no checkpoint (the earlier run is then the one to resume).
        Returns a line saying what was done, or ''. Nothing is touched while a live process
        holds the folder's lock (that is refused)."""
        if not self.path.is_dir():
            return ""
        temporaries = [entry.name for entry in self.path.iterdir() if self._is_temporary(entry)]
        put_back = not self.checkpoint.is_file() and (self.previous / CHECKPOINT_NAME).is_file()
        if not (temporaries or put_back):
            return ""
        with self.locked():  # refused while a live process writes the folder
            self._remove_temporaries()
            if put_back:
                self._replaced = self.previous
                self.restore()
        done = []
        if temporaries:
            done.append(f"removed {len(temporaries)} half-written file(s) a stopped run left")
        if put_back:
            done.append(f"put back the earlier run that an interrupted --overwrite had set "
                        f"aside in {self.previous}")
        return "; ".join(done)

    def check_not_busy(self, job: str | None = None) -> None:
        """Refuse a folder whose lock a live process holds (a stale lock, or one left by an
        earlier attempt of torchrun job ``job``, is no obstacle)."""
        if self.lock_file.exists() and not self._lock_is_stale(job):
            raise self._busy()

    def left_by_job(self, job: str | None) -> bool:
        """Whether the lock was left by an earlier attempt of torchrun job ``job``: this process
        is a restart, and the folder's files are its job's."""
        return job is not None and self._holder().get("job") == job

    def open(self, *, overwrite: bool, resume: bool = False, job: str | None = None) -> None:
        """Create and lock the folder; with ``overwrite`` set the earlier run aside.

        Call :meth:`check_new` (or :meth:`check_resumable`) first, and :meth:`commit` once the
        first checkpoint is written. A new run (neither ``overwrite`` nor ``resume``) checks
        again under the lock that the folder is still empty, so that of two runs started into
        one folder at once only one writes there. A restarted attempt of torchrun job ``job``
        (:meth:`left_by_job`) takes over its job's lock and files, and the earlier run that an
        attempt before it set aside.
        """
        restart = self.left_by_job(job)
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock(job=job)
        self._remove_temporaries()
        if restart:
            self._replaced = self.previous if self.previous.is_dir() else None
            return
        if not overwrite and not resume and self._holds_files():
            # Another run wrote here between check_new and the lock: refuse, touch nothing.
            self.unlock()
            raise AlreadyExists(
                f"output folder {self.path} was filled by another run while this one started; "
                "choose another folder, resume it with --resume, or pass --overwrite"
            )
        if self.previous.is_dir():
            # A run killed before its first complete checkpoint left the run it replaced here:
            # that run stays aside until this one completes an epoch. A new --overwrite
            # replaces the killed run's files.
            if overwrite:
                for entry in self._own_entries(self.path):
                    entry.unlink()
            self._replaced = self.previous
            return
        if not overwrite:
            return
        earlier = self._own_entries(self.path)
        if earlier:
            self.previous.mkdir()
            for entry in earlier:
                entry.rename(self.previous / entry.name)
            self._replaced = self.previous

    def _own_entries(self, folder: Path) -> list[Path]:
        """The run's own files in ``folder`` (never a folder: one the user keeps there, even
        under a name such as ``checkpoint.old``, stays out of reach)."""
        return [entry for entry in sorted(folder.iterdir())
                if self.is_own(entry.name) and (entry.is_symlink() or not entry.is_dir())]

    @property
    def replacing(self) -> bool:
        """Whether an earlier run is set aside until this run's first complete checkpoint."""
        return self._replaced is not None

    def set_aside_note(self) -> str:
        """Where an interrupted ``--overwrite`` left the earlier run, and how to get it back;
        empty when there is none."""
        if not (self.previous / CHECKPOINT_NAME).is_file():
            return ""
        return (f"the earlier run that an interrupted train --overwrite set aside is in "
                f"{self.previous}: cnnkit train --resume {self.path} puts it back and goes on "
                f"from it (or move its files back into {self.path})")

    def _holds_files(self) -> bool:
        """Whether anything but the lock and half-written temporaries is in the folder."""
        return any(entry.name != LOCK_NAME and not self._is_temporary(entry)
                   for entry in self.path.iterdir())

    def commit(self) -> None:
        """The new run has a complete checkpoint: the run it replaced may go (only its own
        files; anything else found in ``.previous-run/`` stays)."""
        if self._replaced is not None:
            for entry in self._own_entries(self._replaced):
                entry.unlink()
            with contextlib.suppress(OSError):  # not empty: something that is not the run's
                self._replaced.rmdir()
            self._replaced = None

    def restore(self) -> bool:
        """The new run failed before its first complete checkpoint: put the earlier run back.
        True if there was one to put back."""
        if self._replaced is None:
            return False
        for entry in self._own_entries(self.path):
            entry.unlink()
        for entry in self._own_entries(self._replaced):
            entry.rename(self.path / entry.name)
        with contextlib.suppress(OSError):
            self._replaced.rmdir()
        self._replaced = None
        return True

    def _remove_temporaries(self) -> None:
        """Remove the half-written files a killed run left (``.best.safetensors.x1y2.safetensors``).

        Only the temporaries of the run's own files, and only while holding the lock.
        """
        for entry in self.path.iterdir():
            if self._is_temporary(entry):
                entry.unlink()

    def _is_temporary(self, entry: Path) -> bool:
        """A half-written file of the run's own, exactly as :func:`atomic_write` names them:
        ``.NAME.XXXXXXXX.SUFFIX`` (``tempfile``'s 8 random characters, NAME's suffix); a dot
        file of the user's such as ``.metrics.csv.backup`` is not one."""
        match = _TEMPORARY.fullmatch(entry.name)
        return (match is not None and Path(match["name"]).suffix == match["suffix"]
                and self.is_own(match["name"]) and entry.is_file() and not entry.is_symlink())

    # -- the lock -----------------------------------------------------------------------------
    def lock(self, *, job: str | None = None) -> None:
        """Take the run's lock (for torchrun job ``job``), or refuse with
        :class:`~cnnkit.errors.RunBusy`."""
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        if job is not None:
            holder["job"] = job
        for _attempt in range(3):
            try:
                handle = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                                 file_mode())
            except FileExistsError:
                if not self._take_over_stale_lock(job):
                    raise self._busy() from None
                continue
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(holder, stream)
            self._locked = True
            return
        raise self._busy()

    def unlock(self) -> None:
        """Release the lock if this process holds it."""
        if self._locked:
            with contextlib.suppress(FileNotFoundError):
                if self._holder().get("pid") == os.getpid():
                    self.lock_file.unlink()
            self._locked = False

    def end_job(self, job: str) -> bool:
        """After torchrun job ``job`` ended: release the lock its failed attempts kept, and put
        back a run that ``overwrite`` set aside if no attempt wrote a checkpoint. Only a lock of
        this machine whose process has ended is touched; True if there was one."""
        holder = self._holder()
        if (holder.get("job") != job or holder.get("host") != socket.gethostname()
                or _alive(holder.get("pid"))):
            return False
        if self.previous.is_dir():
            self._replaced = self.previous
            self.restore()
        with contextlib.suppress(FileNotFoundError):
            self.lock_file.unlink()
        return True

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunFolder]:
        """``with run.locked():`` holds the lock for the block (for commands that only read)."""
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    def _holder(self) -> dict:
        try:
            data = read_json(self.lock_file, "lock file", max_bytes=1 << 16)
        except (OSError, CnnkitError):
            return {}
        return data if isinstance(data, dict) else {}

    def _lock_is_stale(self, job: str | None = None) -> bool:
        """The lock's process has ended (on this host), an earlier attempt of torchrun job
        ``job`` left it (its processes have all stopped), or the lock is gone."""
        holder = self._holder()
        if job is not None and holder.get("job") == job:
            return True
        if not holder:
            # Unreadable: a writer between create and write, or a damaged file. Only an old
            # one is stale.
            try:
                age = time.time() - self.lock_file.stat().st_mtime
            except FileNotFoundError:
                return True
            return age > 60
        return holder.get("host") == socket.gethostname() and not _alive(holder.get("pid"))

    def _take_over_stale_lock(self, job: str | None = None) -> bool:
        """Remove a lock whose process is gone (same host) or that an earlier attempt of job
        ``job`` left; True if one was removed."""
        if not self._lock_is_stale(job):
            return False
        # Rename first so that two processes taking over the same stale lock cannot both win.
        claimed = self.lock_file.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
        try:
            self.lock_file.rename(claimed)
        except FileNotFoundError:
            return True
        claimed.unlink()
        return True

    def _busy(self) -> RunBusy:
        holder = self._holder()
        since = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
            if isinstance(holder.get("started"), (int, float)) else "an unknown time"
        )
        return RunBusy(
            f"run folder {self.path} is being written by process {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} (since {since}); wait for it to finish, choose another "
            f"folder, or delete {self.lock_file} if that process is gone"
        )


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True

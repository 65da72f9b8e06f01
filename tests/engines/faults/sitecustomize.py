"""A worker killed with SIGKILL in the middle of an epoch, for the elastic tests.

Not a test module. A test puts this folder first on ``PYTHONPATH``, so every Python process it
starts (torchrun's launchers and the training processes they start) imports this file at
startup, and sets ``CNNKIT_TEST_KILL=RANK:EPOCH:STEP:MARKER``. The training process of rank RANK
then kills itself with SIGKILL just before step STEP (counted from 0) of epoch EPOCH (counted
from 1), once: it creates the file MARKER first, and a process that finds MARKER is left alone,
so the restarted attempt runs to the end.
"""

from __future__ import annotations

import os
import signal


def _arm() -> None:
    fault = os.environ.get("CNNKIT_TEST_KILL")
    if not fault or "RANK" not in os.environ:
        return
    rank, epoch, step, marker = fault.split(":", 3)
    if os.environ["RANK"] != rank or os.path.exists(marker):
        return
    from cnnkit.engines import loaders

    original = loaders.BatchLoader.batches

    def batches(self, seed=None, epoch_index=0, *, start_batch=0):
        for index, batch in enumerate(original(self, seed, epoch_index, start_batch=start_batch),
                                      start=start_batch):
            if seed is not None and (epoch_index + 1, index) == (int(epoch), int(step)):
                with open(marker, "x"):
                    pass
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    loaders.BatchLoader.batches = batches


_arm()

"""``cnnkit train`` in which rank 1 fails in its fourth batch (run by torchrun in a test).

Not a test module: the distributed tests start it as torchrun's script to check that one failing
process ends the whole job with an error instead of leaving the others waiting.
"""

from __future__ import annotations

import os
import sys


def _break_rank_one() -> None:
    from cnnkit.engines import loaders

    original = loaders.BatchLoader.batches

    def failing(self, seed=None, epoch=0, **options):
        for index, batch in enumerate(original(self, seed, epoch, **options)):
            if index == 3:
                raise OSError("simulated read failure on rank 1")
            yield batch

    loaders.BatchLoader.batches = failing


if __name__ == "__main__":
    from cnnkit.cli import main

    if os.environ.get("RANK") == "1":
        _break_rank_one()
    sys.exit(main(sys.argv[1:]))

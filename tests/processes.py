"""Running cnnkit in a fresh interpreter, as a user does, with or without PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cnnkit

#: The folder that holds the cnnkit package, for the child's PYTHONPATH.
SOURCE_ROOT = str(Path(cnnkit.__file__).resolve().parents[1])

# `cnnkit ARGS` in an interpreter where `import torch` fails, as without PyTorch installed.
WITHOUT_TORCH = (
    "import sys\n"
    "sys.modules['torch'] = None\n"
    "from cnnkit.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "assert sys.modules['torch'] is None\n"
    "sys.exit(status)\n"
)

WITH_TORCH = "import sys\nfrom cnnkit.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def child_environment(**extra: str) -> dict[str, str]:
    """This environment, offline, with cnnkit's source first on the path."""
    path = SOURCE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "CNNKIT_OFFLINE": "1", "PYTHONPATH": path, **extra}


def cnnkit_process(*arguments, cwd, torch: bool = False, check: bool = True,
                   timeout: float = 300) -> subprocess.CompletedProcess:
    """``cnnkit ARGUMENTS`` in a fresh interpreter on two threads; without ``torch`` an import
    of torch fails there. With ``check`` a non-zero exit fails the test with its stderr."""
    command = [sys.executable, "-c", WITH_TORCH if torch else WITHOUT_TORCH,
               *map(str, arguments)]
    result = subprocess.run(command, cwd=cwd, env=child_environment(OMP_NUM_THREADS="2"),
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result

"""Running cnnkit as a user would, under a memory limit, and checking what it leaves behind."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30
#: Address-space limit of a command that imports torch; enough for the tutorial CNN's training
#: on a few hundred images, far below what any refused request would take.
TORCH_MEMORY = 3 * GIB
#: Address-space limit of a command that needs only numpy and Pillow.
NUMPY_MEMORY = 1 * GIB


# `cnnkit ARGS` in a fresh interpreter that records its own peak resident memory on the way out.
_MEASURED_MAIN = (
    "import os, resource, sys\n"
    "from cnnkit.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "with open(os.environ['PEAK_FILE'], 'w') as f:\n"
    "    f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "sys.exit(status)\n"
)


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int  # the child's largest resident set


def run_cnnkit(
    *arguments: str,
    cwd: Path,
    memory: int = TORCH_MEMORY,
    timeout: float = 60.0,
    env: dict | None = None,
) -> Outcome:
    """Run ``python -m cnnkit ARGUMENTS`` with an address-space limit; measure time and memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    usage_file = cwd / f".peak-{time.monotonic_ns()}"
    environment = {**os.environ, "CNNKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                   "PEAK_FILE": str(usage_file), **(env or {})}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _MEASURED_MAIN, *arguments], cwd=cwd, env=environment,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=limit,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"cnnkit {' '.join(arguments)} ran past {timeout} s") from None
    seconds = time.perf_counter() - started
    peak = int(usage_file.read_text()) * 1024 if usage_file.exists() else 0
    usage_file.unlink(missing_ok=True)
    return Outcome(process.returncode, stdout.decode(), stderr.decode(), seconds, peak)


def assert_refused(outcome: Outcome, pattern: str) -> None:
    """Exit status 2, exactly one line on stderr holding ``pattern``, and no traceback."""
    lines = outcome.stderr.strip().splitlines()
    assert outcome.status == 2, (outcome.status, outcome.stderr[-2000:])
    assert "Traceback" not in outcome.stderr
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("cnnkit: error: "), lines[0]
    assert pattern in lines[0], lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with a digest of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }

"""Which module may import which: the floors of the package, checked in the source and at run
time."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cnnkit

PACKAGE = Path(cnnkit.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from cnnkit import nn``
    counts as ``cnnkit.nn``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_under(module: str, floor: str) -> bool:
    return module == floor or module.startswith(floor + ".")


@pytest.mark.parametrize(("files", "forbidden"), [
    # The registry describes layers; the engines build them.
    (["layers.py"], ["cnnkit.nn", "cnnkit.engines", "torch"]),
    # Data sets know nothing of architectures.
    (["data/*.py"], ["cnnkit.arch", "cnnkit.layers", "cnnkit.nn", "cnnkit.engines"]),
    # The training loop is handed its observers.
    (["engines/training.py"], ["cnnkit.engines.tensorboard"]),
])
def test_modules_do_not_import_what_stands_above_them(files, forbidden):
    """No import of a forbidden module, not even one inside a function."""
    paths = [path for pattern in files for path in sorted(PACKAGE.glob(pattern))]
    assert paths
    wrong = sorted(f"{path.relative_to(PACKAGE)} imports {module}" for path in paths
                   for module in _imports(path)
                   if any(_is_under(module, floor) for floor in forbidden))
    assert wrong == []


def test_importing_the_layer_registry_loads_no_engine():
    """Importing cnnkit.layers and cnnkit.arch loads neither cnnkit.nn nor cnnkit.engines nor
    PyTorch."""
    script = textwrap.dedent("""
        import sys
        import cnnkit.arch, cnnkit.layers
        engines = ("cnnkit.nn", "cnnkit.engines", "torch")
        print(sorted(name for name in sys.modules
                     if any(name == top or name.startswith(top + ".") for top in engines)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

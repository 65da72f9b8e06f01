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


#: The floors of the package, lowest first (README, "How cnnkit is built"): a module imports
#: only modules of its own floor or of floors below it.
FLOORS = [
    ["cnnkit.errors", "cnnkit._validate", "cnnkit._files", "cnnkit._json", "cnnkit.budget"],
    ["cnnkit.shapes", "cnnkit.ops", "cnnkit.filters", "cnnkit.schedule"],
    ["cnnkit.imageio", "cnnkit.data", "cnnkit.plots"],
    ["cnnkit.layers", "cnnkit.arch", "cnnkit.modelinfo", "cnnkit.runfolder"],
    ["cnnkit.nn", "cnnkit.engines"],
    ["cnnkit.model", "cnnkit.pictures", "cnnkit.featuremaps"],
    ["cnnkit.evidence"],
    ["cnnkit.evaluation", "cnnkit.explain", "cnnkit.report", "cnnkit.serve", "cnnkit.export",
     "cnnkit.commands", "cnnkit.cli", "cnnkit.__main__"],
]


def _floor(module: str) -> int | None:
    """The floor of ``module`` (its longest matching prefix), None for the package itself."""
    matches = [(len(prefix), number) for number, prefixes in enumerate(FLOORS)
               for prefix in prefixes if _is_under(module, prefix)]
    return max(matches)[1] if matches else None


def test_every_import_goes_to_the_same_floor_or_below():
    """Engines never import the model or the views, the model never imports the views, and
    so on down; every module of the package has a floor."""
    wrong, homeless = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(("cnnkit", *parts)).removesuffix(".__init__")
        own = _floor(module)
        if own is None:
            homeless += [] if module == "cnnkit" else [module]
            continue
        wrong += [f"{module} (floor {own}) imports {name} (floor {_floor(name)})"
                  for name in _imports(path)
                  if _floor(name) is not None and _floor(name) > own]
    assert homeless == [] and wrong == []


def test_views_use_public_names_of_other_packages():
    """serve, report, explain and export import no private name (``_x``) of another module."""
    wrong = []
    for pattern in ("serve/*.py", "report.py", "explain.py", "export.py", "evaluation.py"):
        for path in sorted(PACKAGE.glob(pattern)):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                        "cnnkit") and not (node.module or "").startswith("cnnkit.serve"):
                    wrong += [f"{path.name}: {node.module}.{alias.name}" for alias in node.names
                              if alias.name.startswith("_")]
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

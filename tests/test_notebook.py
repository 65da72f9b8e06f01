"""The tutorial notebook runs from top to bottom, checks every number it prints, and draws."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "cnn-part1.ipynb"

#: What the notebook's ``check`` prints under every value it checked.
CHECKED = "  ✓ "


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _stream_text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs
                   if output.output_type == "stream")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook after running it once (in a fresh kernel, figures inline)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        client = nbclient.NotebookClient(
            notebook, timeout=180, kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path_factory.mktemp("notebook"))}})
        client.execute()
    return notebook


def test_notebook_is_stored_without_outputs():
    """The stored notebook has no outputs or execution counts (they are made by running it)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in _code_cells(notebook):
        assert cell.outputs == [] and cell.execution_count is None


def test_check_helper_refuses_a_mismatch():
    """The notebook's ``check`` raises when a value differs from a reference, and prints
    nothing then (so a wrong number can never be printed as checked)."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    source = next(cell.source for cell in _code_cells(notebook) if "def check(" in cell.source)
    definition = source[source.index("def check("):]
    namespace = {"np": np}
    exec(definition, namespace)  # the notebook's own helper, from the repository
    check = namespace["check"]
    with pytest.raises(AssertionError, match="stride 2"):
        check("stride 2", np.array([1.5, 5.0, 7.25]), {"the textbook": [7, 9, 8]})
    with pytest.raises(AssertionError):  # a length mismatch, as cell 5's bug had
        check("stride 2", np.array([7.0, 9.0, 8.0, 1.0]), {"the textbook": [7, 9, 8]})


def test_notebook_runs_and_draws(executed):
    """Every cell runs without an error (each check is an assertion), and its figures are PNGs."""
    text = "".join(_stream_text(cell) for cell in _code_cells(executed))
    assert "test accuracy" in text
    images = [output for cell in _code_cells(executed) for output in cell.outputs
              if "image/png" in output.get("data", {})]
    assert len(images) >= 3


def test_every_printed_number_is_checked(executed):
    """Each cell that prints a number prints it through ``check`` (a line of what it was
    compared with follows), and every ``check`` in the source ran."""
    calls = 0
    for cell in _code_cells(executed):
        text = _stream_text(cell)
        calls += len(re.findall(r"^\s*check\(", cell.source, flags=re.MULTILINE))
        if re.search(r"\d", text):
            assert CHECKED in text, f"cell {cell.id} prints numbers without checking them:\n{text}"
    printed = "".join(_stream_text(cell) for cell in _code_cells(executed))
    assert calls >= 15
    assert printed.count(CHECKED) >= calls


def test_textbook_examples_are_printed_as_the_textbook_gives_them(executed):
    """The worked examples appear with the textbook's numbers; regression: the stride-2 cell
    printed [7. 9. 8.] beside a 'full' result [1.5 5. 7.25 ...] without comparing them."""
    printed = "".join(_stream_text(cell) for cell in _code_cells(executed))
    assert "padding 0, stride 2: [7. 9. 8.]\n  ✓ the textbook" in printed
    assert "[[4.6 1.6]\n [7.5 2.9]]\n  ✓ the textbook" in printed
    assert "padding 2, stride 1: [ 5. 14. 16. 26. 24. 34. 19. 22.]\n  ✓ the textbook" in printed


def test_notebook_json_is_tidy():
    """The file keeps nbformat's layout (JSON with sorted keys and indent 1, characters such as
    ✓ unescaped, one trailing newline), so that edits show as small diffs."""
    text = NOTEBOOK.read_text(encoding="utf-8")
    layout = json.dumps(json.loads(text), indent=1, ensure_ascii=False, sort_keys=True)
    assert text == layout + "\n"

"""The README's Python examples run and print what they show."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    """Every ```pycon block in README.md passes as a doctest."""
    blocks = re.findall(r"```pycon\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no pycon examples"
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(blocks), {}, "README.md", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 5


def test_readme_opens_with_the_two_commands():
    """The README's first code block holds exactly the demo and test commands."""
    first = re.search(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.DOTALL).group(1)
    assert first.split("\n")[:2] == ["make demo", "make test"]
    assert len([line for line in first.splitlines() if line.strip()]) == 2

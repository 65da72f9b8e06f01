"""``python -m cnnkit``: the same as the ``cnnkit`` command."""

from cnnkit.cli import entry

if __name__ == "__main__":
    entry()

"""Subcommands of the ``cnnkit`` command line, one module each.

Each module provides ``register(subparsers)``; the order here is the order in ``--help``.
"""

from cnnkit.commands import demo

COMMANDS = [
    demo.register,
]

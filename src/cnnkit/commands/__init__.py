"""Subcommands of the ``cnnkit`` command line, one module each.

Each module provides ``register(subparsers)``; the order here is the order in ``--help``.
"""

from cnnkit.commands import demo, edges, filter, kernel, outsize

COMMANDS = [
    demo.register,
    filter.register,
    edges.register,
    kernel.register,
    outsize.register,
]

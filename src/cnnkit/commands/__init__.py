"""Subcommands of the ``cnnkit`` command line, one module each.

Each module provides ``register(subparsers)``; the order here is the order in ``--help``.
"""

from cnnkit.commands import (
    convert,
    data,
    demo,
    edges,
    evaluate,
    filter,
    kernel,
    outsize,
    predict,
    summary,
    train,
)

COMMANDS = [
    demo.register,
    filter.register,
    edges.register,
    kernel.register,
    outsize.register,
    summary.register,
    data.register,
    train.register,
    evaluate.register,
    predict.register,
    convert.register,
]

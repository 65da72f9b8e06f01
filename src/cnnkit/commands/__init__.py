"""Subcommands of the ``cnnkit`` command line, one module each.

Each module provides ``register(subparsers)``; the order here is the order in ``--help``.
"""

from cnnkit.commands import (
    convert,
    data,
    demo,
    edges,
    evaluate,
    explain,
    export,
    filter,
    kernel,
    outsize,
    predict,
    report,
    serve,
    summary,
    train,
    weights,
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
    explain.register,
    weights.register,
    report.register,
    serve.register,
    export.register,
    convert.register,
]
